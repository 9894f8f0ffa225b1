"""What sessions use, read from their cgroups against real managers: `ps` and `show`
agree with the manager's own accounting, show the session's processes, and say nothing
(never zero) once a session has ended."""

from __future__ import annotations

import os
import sys
from typing import Any

from orch.usecases.measure import READ_AHEAD_MIN
from tests.integration.conftest import Orch
from tests.waiting import wait_for

MIB = 1 << 20
# 64 MiB held and some CPU time spent, then idle: a program whose use stays put.
HOG = ("import time\nheld = bytearray(64 << 20)\nfor i in range(len(held) // 4096):\n"
       "    held[i * 4096] = 1\nsum(range(3_000_000))\ntime.sleep(600)\n")
UNSET = 2**64 - 1


def _manager_says(orch: Orch, unit: str, name: str) -> int | None:
    value = orch.systemctl("show", "-p", name, "--value", unit).stdout.strip()
    return None if not value.isdigit() or int(value) == UNSET else int(value)


def test_ps_and_show_read_what_the_sessions_cgroup_uses(orch: Orch) -> None:
    sid = orch.spawn(sys.executable, "-c", HOG, opts=["--name", "hog"])

    def grown() -> dict[str, Any] | None:
        shown = orch.show("hog")
        held = [p for p in shown["processes"] or [] if p["memory_rss"] >= 64 * MIB]
        return shown if held else None

    shown = wait_for(grown, 30, "the session's program to hold its memory")
    [process] = shown["processes"]
    assert process["pid"] == shown["main_pid"]
    assert process["command"][:2] == [sys.executable, "-c"]
    assert process["cpu_usage_nsec"] > 0

    [listed] = orch.ps()
    # The cgroup counts the process's CPU time to the nanosecond; the kernel gives the
    # process's own in clock ticks: the two may differ by less than one (a CI run saw
    # 99.881 ms in the cgroup against the process's 100 ms).
    tick_nsec = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert listed["id"] == sid
    assert listed["cpu_usage_nsec"] > process["cpu_usage_nsec"] - tick_nsec
    # What the manager counts, orch shows, from the same cgroup; what it does not (a
    # user manager's units on a hybrid cgroup v1 host have no memory cgroup), orch
    # does not make up either.
    unit = str(listed["unit"])
    memory = _manager_says(orch, unit, "MemoryCurrent")
    assert (listed["memory_current"] is None) == (memory is None)
    if memory is not None:
        assert abs(memory - listed["memory_current"]) < 8 * MIB
        assert listed["memory_current"] >= 64 * MIB
    assert listed["tasks_current"] == _manager_says(orch, unit, "TasksCurrent")
    assert (listed["io_read_bytes"] is None) == (_manager_says(orch, unit, "IOReadBytes")
                                                 is None)

    table = orch.ok("ps")
    header, row = table.splitlines()[:2]
    assert header.split()[4:7] == ["MEM", "CPU", "COST"]
    cells = row.split()
    assert cells[4] == ("-" if memory is None else cells[4]) and cells[4][-1] in "-KMG"
    assert cells[5].endswith("s") and cells[6] == "-"  # CPU time; no agent, no cost
    text = orch.ok("show", "hog")
    assert "CPU: " in text and f"Processes: {process['pid']}" in text

    orch.ok("stop", sid)
    [ended] = orch.ps()
    assert ended["status"] == "stopped"
    assert ended["cpu_usage_nsec"] is None and ended["tasks_current"] is None
    assert orch.show(sid)["processes"] is None


def test_a_crowded_listing_reads_every_sessions_cgroup_ahead(orch: Orch) -> None:
    # Past READ_AHEAD_MIN units in the slice, ps reads them in a forked child while it
    # reads its records and asks for the units (orch.aside); what it shows is the same.
    count = READ_AHEAD_MIN + 6
    spawn_many = f"import orch\nfor _ in range({count}): orch.spawn(['sleep', '600'])\n"
    done = orch.machine.run([sys.executable, "-c", spawn_many], user=orch.user, env=orch.env)
    assert done.returncode == 0, done.stderr
    listed = orch.ps()
    assert len(listed) == count and {s["status"] for s in listed} == {"running"}
    assert all(s["cpu_usage_nsec"] is not None for s in listed)
    # What the manager counts for one (a user's units on a hybrid v1 host: no memory
    # or pids cgroup), orch shows for all of them.
    unit = str(listed[0]["unit"])
    assert {s["tasks_current"] for s in listed} == {_manager_says(orch, unit, "TasksCurrent")}
    memory = _manager_says(orch, unit, "MemoryCurrent")
    assert {s["memory_current"] is None for s in listed} == {memory is None}
