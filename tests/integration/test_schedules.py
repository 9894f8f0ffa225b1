"""Schedules against real managers: timer units installed in the scope's unit
directory, a calendar the manager refuses in one line, runs tagged schedule:NAME, runs
that never overlap, and removal."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.conftest import Orch, wait_for


@contextmanager
def _schedule(orch: Orch, name: str, *args: str) -> Iterator[None]:
    orch.ok("schedule", "add", name, *args)
    try:
        yield
    finally:
        orch("schedule", "remove", name)


def _runs(orch: Orch, name: str) -> list[dict[str, object]]:
    return orch.ps("--tag", f"schedule:{name}")


def test_a_schedule_fires_on_its_calendar_and_runs_now_on_demand(orch: Orch) -> None:
    log = orch.owned_file("ticks.log")
    name = f"tick{orch.scope}"
    with _schedule(orch, name, "--on-calendar", "*:*:0/2", "--tag", "mine", "--",
                   "/bin/sh", "-c", f"echo tick >> {log}", ""):
        [listed] = json.loads(orch.ok("schedule", "list", "--json"))
        assert listed["name"] == name and listed["on_calendar"] == "*:*:0/2"
        # Its runs start where it was added (before: in the home directory).
        assert listed["spawn_args"] == ["--tag=mine", "--cwd=/", "--", "/bin/sh", "-c",
                                        f"echo tick >> {log}", ""]
        assert listed["next_run"] is not None
        home = orch.env.get("HOME", "/root")
        units = Path(home) / ".config/systemd/user" if orch.scope == "user" \
            else Path("/etc/systemd/system")
        modes = orch.machine.run(["stat", "-c", "%a", str(units / f"orch-schedule-{name}.timer"),
                                  str(units / f"orch-schedule-{name}.service")])
        assert modes.stdout.split() == ["600", "600"]  # its prompt and --env are private
        wait_for(lambda: any(r["status"] == "exited" for r in _runs(orch, name)),
                 timeout=30, what="a run on the calendar")
        run = _runs(orch, name)[-1]
        assert run["name"] == name and set(run["tags"]) == {f"schedule:{name}", "mine"}
        assert run["cwd"] == "/"  # where `orch schedule add` ran
        # Its argv verbatim, an empty word too (before, dropped from the unit's ExecStart=).
        assert run["argv"] == ["/bin/sh", "-c", f"echo tick >> {log}", ""]
        table = orch.ok("schedule", "list")
        assert name in table and "*:*:0/2" in table
        assert json.loads(orch.ok("schedule", "list", "--json"))[0]["last_run"] is not None
    assert orch.ok("schedule", "list", "--json").strip() == "[]"
    none = orch("schedule", "list")  # said on stderr: a script finds the table empty
    assert (none.returncode, none.stdout) == (0, "")
    assert none.stderr.startswith("orch: no schedules (`orch schedule add NAME")
    listed_units = orch.systemctl("list-unit-files", f"orch-schedule-{name}.*").stdout
    assert f"orch-schedule-{name}" not in listed_units


def test_runs_never_overlap_unless_asked(orch: Orch) -> None:
    gate = orch.state_dir.parent / "gate"
    os.mkfifo(gate, 0o600)
    os.chown(gate, orch.uid, orch.uid)
    name = f"slow{orch.scope}"
    with _schedule(orch, name, "--on-calendar", "2099-01-01", "--", "/bin/sh", "-c",
                   f"read _ < {gate}"):
        orch.ok("schedule", "run", name)
        wait_for(lambda: [r["status"] for r in _runs(orch, name)] == ["running"],
                 what="the first run's session")
        # While the first runs: refused in one line (before: "runs now", and nothing).
        again = orch("schedule", "run", name)
        assert again.returncode == 1 and again.stdout == "" and again.stderr == (
            f"orch: schedule {name}: a run is under way, and runs do not overlap; nothing "
            f"started (orch ps --tag schedule:{name})\n")
        service = f"orch-schedule-{name}.service"
        assert orch.systemctl("is-active", service).stdout.strip() == "activating"
        with gate.open("w") as opened:  # the session reads it: a line, so it exits 0
            opened.write("go\n")
        wait_for(lambda: orch.systemctl("is-active", service).stdout.strip() == "inactive",
                 what="the run to end")
        assert [r["status"] for r in _runs(orch, name)] == ["exited"]
        # Its LAST counts the run its timer did not trigger (before: none, ever).
        [listed] = json.loads(orch.ok("schedule", "list", "--json"))
        assert listed["last_run"] == _runs(orch, name)[0]["created_at"]


def test_a_bad_calendar_or_name_is_one_line_and_leaves_nothing(orch: Orch) -> None:
    done = orch("schedule", "add", "bad", "--on-calendar", "every tuesday-ish", "--",
                "/bin/true")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("orch: --on-calendar 'every tuesday-ish': the ")
    assert done.stderr.count("\n") == 1
    assert orch.ok("schedule", "list", "--json").strip() == "[]"
    named = orch("schedule", "add", "no/slash", "--on-calendar", "daily", "--", "/bin/true")
    assert named.returncode == 2 and "expected up to 64 letters" in named.stderr
    missing = orch("schedule", "remove", "nothing")
    assert missing.returncode == 2 and missing.stderr == (
        "orch: no schedule nothing (orch schedule list shows them)\n")
    unchecked = orch("schedule", "add", "x", "--on-calendar", "daily", "--memory-max",
                     "lots", "--", "/bin/true")
    assert unchecked.returncode == 2 and "--memory-max" in unchecked.stderr
    # What every run would be refused for (before: added, then failing at each run).
    for words, says in ((["--queue", "nosuch"], "orch: --queue nosuch: no [queues.nosuch]"),
                        (["--cwd", "/nonexistent"], "orch: --cwd /nonexistent: no such")):
        refused = orch("schedule", "add", "x", "--on-calendar", "daily", *words, "--",
                       "/bin/true")
        assert refused.returncode == 2 and refused.stderr.startswith(says), refused.stderr
    assert orch.ok("schedule", "list", "--json").strip() == "[]"


def test_runs_find_their_program_on_the_path_it_was_added_with(orch: Orch) -> None:
    # A program outside the manager's own PATH (as ~/.local/bin or npm's directory is):
    # before, it was added and every run failed in the journal.
    tools = orch.state_dir.parent / "tools"
    tools.mkdir()
    tool = tools / "mytool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    path = {"PATH": f"{tools}:{orch.env['PATH']}"}
    name = f"tool{orch.scope}"
    done = orch("schedule", "add", name, "--on-calendar", "2099-01-01", "--", "mytool",
                env=path)
    assert done.returncode == 0, done.stderr
    try:
        orch.ok("schedule", "run", name)
        wait_for(lambda: [r["status"] for r in _runs(orch, name)] == ["exited"],
                 what="the run of a program on the adder's PATH")
        assert "tool ran" in orch.ok("logs", _runs(orch, name)[0]["id"])
    finally:
        orch("schedule", "remove", name)
    missing = orch("schedule", "add", name, "--on-calendar", "daily", "--", "mytool")
    assert missing.returncode == 1 and missing.stderr == (
        "orch: cannot run mytool: not found on PATH\n")
    assert orch.ok("schedule", "list", "--json").strip() == "[]"
    agent = orch("schedule", "add", name, "--on-calendar", "daily", "--provider", "claude",
                 "review the code", env={"PATH": "/usr/bin:/bin"})
    assert agent.returncode == 1 and agent.stderr == (
        "orch: cannot run claude: not found on PATH\n")
    assert orch.ok("schedule", "list", "--json").strip() == "[]"


def test_removing_a_schedule_whose_run_failed_leaves_no_unit_behind(orch: Orch) -> None:
    name = f"broken{orch.scope}"
    unit = f"orch-schedule-{name}.service"
    program = orch.owned_file("program", "#!/bin/sh\n")
    os.chmod(program, 0o755)
    with _schedule(orch, name, "--on-calendar", "2099-01-01", "--", str(program)):
        program.unlink()  # gone since: the run cannot spawn it, and fails
        orch.ok("schedule", "run", name)
        wait_for(lambda: "ActiveState=failed" in orch.systemctl(
            "show", "-p", "ActiveState", unit).stdout, timeout=30, what="the run to fail")
    # Before, the failed unit stayed listed after its files were gone.
    listed = orch.systemctl("list-units", "--all", "--no-legend", f"orch-schedule-{name}.*")
    assert listed.stdout.strip() == ""
