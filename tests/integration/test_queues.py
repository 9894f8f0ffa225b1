"""Queues against real managers: a cap systemd-started sessions keep, the next started by
the ending session's exit hook, cancel, wait, and recover after a crash mid-admission."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orch import box
from tests.integration.conftest import Machine, Orch, wait_for
from tests.integration.test_after import _gate, _log, _open
from tests.integration.test_recovery import _power_cut_and_boot


def _queue(orch: Orch, body: str = "[queues.q]\nmax_running = 2\n") -> Path:
    """A configuration with queue q, for orch and for the hooks of its sessions."""
    return orch.use_config(body)


def _gated(orch: Orch, name: str, log: Path) -> list[str]:
    gate = _gate(orch, name)
    return ["/bin/sh", "-c", f"echo +{name} >> {log}; read _ < {gate}; echo -{name} >> {log}"]


def _statuses(orch: Orch) -> dict[str, str]:
    return {s["name"]: s["status"] for s in orch.ps()}


def test_a_queue_keeps_its_cap_and_each_end_starts_the_next_in_order(orch: Orch) -> None:
    _queue(orch)
    log = _log(orch)
    names = ["a", "b", "c", "d", "e"]
    ids = {n: orch.spawn(*_gated(orch, n, log), opts=["--queue", "q", "--name", n])
           for n in names}
    listed = {s["name"]: s for s in orch.ps()}
    assert [listed[n]["status"] for n in names] == [
        "running", "running", "queued", "queued", "queued"]
    assert [listed[n]["position"] for n in names] == [None, None, 1, 2, 3]
    assert listed["c"]["queue"] == "q" and listed["c"]["main_pid"] is None
    table = orch.ok("ps")
    assert "queued #1" in table and "queued #3" in table
    waiting = orch.machine.popen(["orch", "wait", "--timeout", "120", ids["e"]],
                                 user=orch.user, env=orch.env)  # wait works on a queued one
    for name in names:
        wait_for(lambda n=name: f"+{n}\n" in log.read_text(), what=f"{name} to start")
        _open(orch.state_dir.parent / f"gate-{name}")
        assert orch("wait", "--timeout", "60", ids[name]).returncode == 0
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    lines = log.read_text().split()
    assert sorted(lines) == sorted([f"+{n}" for n in names] + [f"-{n}" for n in names])
    assert [line[1] for line in lines if line[0] == "+"] == names  # first come, first served
    running = peak = 0
    for line in lines:
        running += 1 if line[0] == "+" else -1
        peak = max(peak, running)
    assert peak == 2


def test_a_queue_short_of_memory_says_so_and_starts_once_it_is_not(orch: Orch) -> None:
    # Against the real slice and /proc/meminfo; its look again is a real timer.
    _queue(orch, "[queues.q]\nmax_running = 1\nmin_memory_available = \"1000T\"\n")
    done = orch("spawn", "--queue", "q", "--name", "big", "--", "/bin/sleep", "100")
    assert done.returncode == 0, done.stderr
    sid = done.stdout.strip()
    assert "queued in q, #1 in line; waiting for free memory (queue q asks for 1000.0T " \
        "available)" in done.stderr
    shown = orch.show(sid)
    assert shown["status"] == "queued" and shown["resumes_at"] is None
    assert shown["waiting_for"] == "free memory (queue q asks for 1000.0T available)"
    assert "(#1 in line); waiting for free memory (queue q" in orch.ok("show", sid)
    _queue(orch, "[queues.q]\nmax_running = 1\nmin_memory_available = \"1K\"\n")
    wait_for(lambda: orch.show(sid)["status"] == "running", timeout=60,
             what="the queue's next look to start it")
    assert orch.show(sid)["waiting_for"] is None
    orch.ok("stop", sid)


def test_stop_cancels_a_queued_session_and_kill_too(orch: Orch) -> None:
    _queue(orch, "[queues.q]\nmax_running = 1\n")
    log = _log(orch)
    first = orch.spawn(*_gated(orch, "first", log), opts=["--queue", "q"])
    queued = orch("spawn", "--queue", "q", "--", "/bin/sh", "-c", f"echo ran >> {log}")
    stopped = queued.stdout.strip()
    assert queued.stderr == f"orch: session {stopped[:8]} queued in q, #1 in line\n"
    killed = orch.spawn("/bin/sh", "-c", f"echo ran >> {log}", opts=["--queue", "q"])
    done = orch("stop", stopped)
    assert done.returncode == 0 and "stopped" in done.stderr
    done = orch("kill", killed)  # before: "signalled session", which it was not
    assert (done.returncode, done.stderr) == (
        0, f"orch: canceled before it ran: session {killed[:8]} (sh)\n")
    assert (orch.show(stopped)["status"], orch.show(killed)["status"]) == ("stopped", "killed")
    assert orch.show(stopped)["invocation_id"] is None
    _open(orch.state_dir.parent / "gate-first")
    assert orch("wait", first).returncode == 0
    assert "ran" not in log.read_text()


def test_a_member_systemd_starts_again_keeps_its_slot(orch: Orch) -> None:
    _queue(orch, "[queues.q]\nmax_running = 1\n")
    log = _log(orch)
    # Restart=on-failure: 5 runs, each failed, then its end. Before, its first run's end
    # gave its slot away while systemd ran it again: two ran at once in a queue of one.
    again = orch.spawn("/bin/sh", "-c", f"echo run >> {log}; exit 1",
                       opts=["--queue", "q", "--restart", "on-failure"])
    after = orch.spawn("/bin/sh", "-c", f"echo next >> {log}", opts=["--queue", "q"])
    assert orch("wait", "--timeout", "60", again).returncode == 1
    assert orch("wait", "--timeout", "60", after).returncode == 0
    assert log.read_text().split() == ["run"] * 5 + ["next"]
    # A restart asked of the manager (systemctl restart) is a new run, not an end: the
    # member keeps its slot, and no end is told. Before, both ran, and it was "stopped".
    busy = orch.spawn("sleep", "300", opts=["--queue", "q"])
    queued = orch.spawn("/bin/true", opts=["--queue", "q"])
    orch.systemctl("restart", orch.show(busy)["unit"])
    wait_for(lambda: orch.show(busy)["restarts"] == 1 and orch.show(busy)["status"] == "running",
             what="its second run")
    assert orch.show(queued)["status"] == "queued"
    told = [e["event"] for e in map(json.loads, orch.ok("events", "--json", busy).splitlines())]
    assert "ended" not in told
    orch.ok("stop", busy)
    assert orch("wait", "--timeout", "60", queued).returncode == 0


def test_a_queue_the_file_does_not_define_is_one_line(orch: Orch) -> None:
    path = _queue(orch)
    done = orch("spawn", "--queue", "nightly", "--", "/bin/true")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"orch: --queue nightly: no [queues.nightly] in {path} "
                           "(known queues: q)\n")
    assert orch.records() == []


def test_an_after_spawn_into_the_default_queue_waits_then_takes_a_slot(orch: Orch) -> None:
    # spawn.queue puts every spawn in q: before, every --after spawn was refused.
    _queue(orch, "[spawn]\nqueue = \"q\"\n\n[queues.q]\nmax_running = 2\n")
    log = _log(orch)
    dep = orch.spawn(*_gated(orch, "dep", log), opts=["--name", "dep"])
    then = orch.spawn("/bin/sh", "-c", f"echo +then >> {log}",
                      opts=["--name", "then", "--after", dep])
    failing = orch.spawn("/bin/false", opts=["--name", "failing"])
    blocked = orch.spawn("/bin/true", opts=["--name", "blocked", "--after", failing])
    listed = {s["name"]: s for s in orch.ps()}
    # A slot is free, but then waits for dep: not yet in the line.
    assert listed["then"]["status"] == "queued" and listed["then"]["position"] is None
    assert orch.systemctl("list-units", "--all", "--plain", "--no-legend",
                          f"orch-then-{then[:8]}*").stdout == ""  # no unit yet
    wait_for(lambda: orch.show(blocked)["status"] == "failed", what="the blocked one")
    assert orch.show(blocked)["blocked"].startswith(f"dependency {failing[:8]} (failing)")
    _open(orch.state_dir.parent / "gate-dep")  # dep ends well: its hook starts then
    assert orch("wait", "--timeout", "60", then).returncode == 0
    assert log.read_text().split() == ["+dep", "-dep", "+then"]
    told = [(e["event"], e.get("detail")) for e in
            map(json.loads, orch.ok("events", "--json", then).splitlines())]
    assert told[:2] == [("spawned", None), ("queued", "queue q after its dependencies")]
    assert ("started", None) in told


def test_recover_starts_a_session_a_crash_left_between_admission_and_start(
        orch: Orch) -> None:
    _queue(orch, "[queues.q]\nmax_running = 1\n")
    log = _log(orch)
    crashed = orch("spawn", "--queue", "q", "--", "/bin/sh", "-c", f"echo ran >> {log}",
                   env={"ORCH_CRASH_AT": "queue.admitted"})
    assert crashed.returncode == -9 or crashed.returncode == 137
    [record] = orch.records()
    assert record.admitted_at is not None and record.invocation_id is None
    assert orch.show(record.id)["status"] == "starting"  # in flight, as far as anyone knows
    orch.edit_records(lambda docs: docs[0].update(requested_at="2026-01-01T00:00:00+00:00"))
    report = orch.ok("recover", "--json")
    assert '"restarted"' in report
    assert orch("wait", "--timeout", "60", record.id).returncode == 0
    assert log.read_text() == "ran\n"
    orch.ok("recover")  # again: nothing starts twice
    assert log.read_text() == "ran\n"


@pytest.mark.skipif(box.systemd_is_pid1(), reason="a power cut needs a box")
def test_a_queued_session_survives_a_power_cut_and_runs_after_boot(
        orch: Orch, machine: Machine) -> None:
    _queue(orch, "[queues.q]\nmax_running = 1\n")
    log = _log(orch)
    installed = orch.ok("units", "install").split()  # recover at boot, with this config
    try:
        holder = orch.spawn("sleep", "600", opts=["--queue", "q"])
        waiting = orch.spawn("/bin/sh", "-c", f"echo ran >> {log}", opts=["--queue", "q"])
        assert orch.show(waiting)["status"] == "queued"
        _power_cut_and_boot(machine)
        # orch-recover.service at boot: the holder was cut off, its slot is free again.
        assert orch("wait", "--timeout", "60", waiting).returncode == 0
        assert log.read_text() == "ran\n"
        assert orch.show(holder)["status"] == "lost"
        assert any(p.endswith("orch-recover.service") for p in installed)
    finally:
        orch("units", "uninstall")
