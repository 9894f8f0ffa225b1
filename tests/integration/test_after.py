"""--after: dependents start through systemd once their dependencies succeeded."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from tests.integration.conftest import Orch, wait_for


def _log(orch: Orch) -> Path:
    path = orch.state_dir.parent / "order.log"
    path.write_text("")
    os.chown(path, orch.uid, orch.uid)
    return path


def _gate(orch: Orch, name: str) -> Path:
    """A FIFO a dependency blocks on until the test opens it: no race on timing."""
    path = orch.state_dir.parent / f"gate-{name}"
    if not path.exists():
        os.mkfifo(path, 0o600)
        os.chown(path, orch.uid, orch.uid)
    return path


def _open(gate: Path) -> None:
    """Let the session blocked on GATE go on: open the FIFO once it has a reader."""
    def opened() -> bool:
        try:
            os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            return False
        return True

    wait_for(opened, what=f"a reader on {gate.name}")


def _step(name: str, log: Path, gate: Path | None = None, code: int = 0) -> list[str]:
    wait = f"read _ < {gate}; " if gate else ""
    return ["/bin/sh", "-c", f"{wait}echo {name} >> {log}; exit {code}"]


def test_a_dependent_starts_only_after_all_its_dependencies_succeeded(orch: Orch) -> None:
    log = _log(orch)
    first = orch.spawn(*_step("first", log, _gate(orch, "first")), opts=["--name", "first"])
    second = orch.spawn(*_step("second", log, _gate(orch, "second")))
    after = orch.spawn(*_step("after", log), opts=["--after", "first", "--after", second])
    assert orch.show(after)["status"] == "starting"
    assert orch.show(after)["after"] == [first, second]
    _open(_gate(orch, "first"))
    assert orch("wait", first).returncode == 0
    assert orch.show(after)["status"] == "starting"  # still waiting for the second
    assert log.read_text() == "first\n"
    _open(_gate(orch, "second"))
    assert orch("wait", "--timeout", "60", after).returncode == 0
    assert log.read_text() == "first\nsecond\nafter\n"
    shown = orch.show(after)
    assert shown["status"] == "exited" and shown["invocation_id"]
    # systemd started it: a path unit triggered by the last dependency's exit hook.
    assert orch.systemctl("show", "-p", "Triggers", "--value",
                          shown["unit"].replace(".service", ".path")).returncode == 0


def test_a_dependents_start_is_recorded_and_told_as_it_starts(orch: Orch) -> None:
    told = orch.owned_file("told.txt")
    hook = ["/bin/sh", "-c", f'echo "$ORCH_NAME $ORCH_EVENT" >> {told}']
    orch.use_config(f"[hooks]\non_start = {json.dumps(hook)}\n")
    keys = orch.owned_file("keys.env", "TOKEN=not-for-long\n")
    log = _log(orch)
    first = orch.spawn(*_step("first", log, _gate(orch, "first")), opts=["--name", "first"])
    after = orch.spawn(*_step("after", log, _gate(orch, "after")),
                       opts=["--name", "after", "--after", first, "--env-file", str(keys)])
    _open(_gate(orch, "first"))
    assert orch("wait", first).returncode == 0
    # The dependent runs now, started by systemd: its start is recorded, told and its
    # hooks run as it starts, not at its end (before: at its end, with the end's time,
    # and no on_start at all), its secrets are removed and its path unit is gone.
    wait_for(lambda: "after started" in told.read_text(), 30, "its on_start hook")
    shown = orch.show(after)
    assert shown["status"] == "running" and shown["main_pid"] and shown["started_at"]
    assert [e["event"] for e in map(json.loads, orch.ok("events", "--json", after)
                                    .splitlines())] == ["spawned", "started"]
    runtime = Path(f"/run/user/{orch.uid}" if orch.user else "/run")
    assert not (runtime / "orch" / "secrets" / f"{after}.env").exists()
    path_unit = shown["unit"].replace(".service", ".path")
    wait_for(lambda: orch.systemctl("show", "-p", "LoadState", "--value", path_unit)
             .stdout.strip() == "not-found", 30, "its path unit to go")
    _open(_gate(orch, "after"))
    assert orch("wait", after).returncode == 0
    assert orch.show(after)["started_at"] == shown["started_at"]


def test_a_failed_dependency_blocks_its_dependents_which_never_run(orch: Orch) -> None:
    log = _log(orch)
    failing = orch.spawn(*_step("failing", log, _gate(orch, "f"), code=3),
                         opts=["--name", "failing"])
    child = orch.spawn(*_step("child", log), opts=["--after", failing])
    grandchild = orch.spawn(*_step("grandchild", log), opts=["--after", child])
    _open(_gate(orch, "f"))
    assert orch("wait", "--timeout", "60", child, grandchild).returncode == 1
    assert log.read_text() == "failing\n"
    shown = orch.show(child)
    assert shown["status"] == "failed" and shown["invocation_id"] is None
    assert shown["blocked"] == f"dependency {failing[:8]} (failing) did not end successfully"
    assert orch.show(grandchild)["blocked"] == f"dependency {child[:8]} (sh) never ran"
    # Their ends are told, for `orch events` and the on_end/on_failed hooks (before: none),
    # by the failing one's exit hook, just after it recorded them blocked.
    def ended() -> list[tuple[str, str, str]]:
        return [(e["session_id"], e["status"], e["detail"]) for e in map(
            json.loads, orch.ok("events", "--json").splitlines()) if e["event"] == "ended"]

    wait_for(lambda: (grandchild, "failed", f"dependency {child[:8]} (sh) never ran")
             in ended(), what="the blocked ones' ends to be told")
    assert (child, "failed", shown["blocked"]) in ended()
    assert "Blocked: dependency" in orch.ok("show", child)
    # Nothing is left to start them: their path units are gone (before: still armed).
    for blocked in (child, grandchild):
        path_unit = orch.show(blocked)["unit"].removesuffix(".service") + ".path"
        wait_for(lambda u=path_unit: orch.systemctl("is-active", u).stdout.strip()
                 in ("inactive", "unknown"), what=f"{path_unit} to be stopped")


def test_dependencies_already_ended_decide_at_once(orch: Orch) -> None:
    log = _log(orch)
    good = orch.spawn(*_step("good", log))
    bad = orch.spawn(*_step("bad", log, code=1))
    assert orch("wait", good).returncode == 0 and orch("wait", bad).returncode == 1
    runs = orch.spawn(*_step("runs", log), opts=["--after", good])
    assert orch("wait", "--timeout", "60", runs).returncode == 0
    never = orch.spawn(*_step("never", log), opts=["--after", good, "--after", bad])
    assert orch.show(never)["status"] == "failed" and orch.show(never)["blocked"]
    wait_for(lambda: "runs" in log.read_text(), what="the dependent's line")
    assert "never" not in log.read_text()
    unknown = orch("spawn", "--after", "nope-nope", "--", "/bin/true")
    assert unknown.returncode == 2 and "no session matches" in unknown.stderr


def test_reap_removes_a_waiting_dependent_and_its_path_unit(orch: Orch) -> None:
    log = _log(orch)
    holder = orch.spawn(*_step("holder", log, _gate(orch, "h")))
    waiting = orch.spawn(*_step("waiting", log), opts=["--after", holder])
    path_unit = orch.show(waiting)["unit"].replace(".service", ".path")
    assert orch.systemctl("is-active", path_unit).stdout.strip() == "active"
    reaped = orch.ok("reap", "--all").split()
    assert waiting in reaped
    assert orch.systemctl("is-active", path_unit).stdout.strip() in ("inactive", "unknown")
    # reap --all stopped the holder too, and its end released nothing.
    assert holder in reaped
    assert "waiting" not in log.read_text()


def test_a_stopped_or_killed_dependent_never_runs_and_blocks_its_own(orch: Orch) -> None:
    log = _log(orch)
    holder = orch.spawn(*_step("holder", log, _gate(orch, "hold")))
    stopped = orch.spawn(*_step("stopped", log), opts=["--after", holder])
    killed = orch.spawn(*_step("killed", log), opts=["--after", holder])
    behind = orch.spawn(*_step("behind", log), opts=["--after", stopped])
    path_unit = orch.show(stopped)["unit"].replace(".service", ".path")
    assert orch.show(stopped)["status"] == "starting"
    assert json.loads(orch.ok("stop", "--json", stopped))["status"] == "stopped"
    assert json.loads(orch.ok("kill", "--json", killed, "not needed"))["status"] == "killed"
    assert orch.systemctl("is-active", path_unit).stdout.strip() in ("inactive", "unknown")
    _open(_gate(orch, "hold"))
    assert orch("wait", "--timeout", "60", holder).returncode == 0
    # Its success released nobody: before, both ran now, as `stopped` and `killed`.
    assert orch("wait", "--timeout", "60", behind).returncode == 1
    assert orch.show(behind)["blocked"] == f"dependency {stopped[:8]} (sh) never ran"
    assert log.read_text() == "holder\n"
    shown = {s["id"]: s for s in orch.ps()}
    assert (shown[stopped]["status"], shown[killed]["status"]) == ("stopped", "killed")
    assert shown[killed]["final_result"] == "not needed"
    assert shown[stopped]["invocation_id"] is None and shown[killed]["invocation_id"] is None


def test_a_removed_working_directory_never_loses_an_end_nor_runs_elsewhere(orch: Orch) -> None:
    work = orch.state_dir.parent / "work"
    work.mkdir()
    os.chown(work, orch.uid, orch.uid)
    log = _log(orch)
    gate = _gate(orch, "first")
    first = orch.spawn("/bin/sh", "-c", f"read _ < {gate}; exit 0",
                       opts=["--name", "first", "--cwd", str(work)])
    then = orch.spawn("/bin/sh", "-c", f"echo then ran in $PWD >> {log}",
                      opts=["--name", "then", "--after", first])
    gone = orch.spawn("/bin/sh", "-c", f"echo gone ran in $PWD >> {log}",
                      opts=["--name", "gone", "--after", first, "--cwd", str(work)])
    work.rmdir()  # as a worktree or a temporary directory is, while the session runs
    _open(gate)
    # Its end is recorded: before, its exit hook could not start there ("Failed at step
    # CHDIR"), and the session that exited 0 was lost, its dependents blocked.
    assert orch("wait", "--timeout", "60", first).returncode == 0
    assert orch.show(first)["status"] == "exited"
    assert orch("wait", "--timeout", "60", then).returncode == 0
    # A dependent whose directory is gone fails to start, its end recorded and told; it
    # never runs anywhere else.
    assert orch("wait", "--timeout", "60", gone).returncode == 1
    shown = orch.show(gone)
    assert shown["status"] == "failed" and shown["ended_at"] is not None
    assert log.read_text().splitlines() == [f"then ran in {orch.show(then)['cwd']}"]
    told = [e["event"] for e in map(json.loads, orch.ok("events", "--json", gone).splitlines())]
    assert told[-1] == "ended"
