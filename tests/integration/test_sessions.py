"""The session life cycle against real managers, as root (system) and as a user."""

from __future__ import annotations

import fcntl
import json
import os
import stat

from tests.integration.conftest import ORCH, PYTHON, VENV_BIN, Orch, wait_for

CONTRACT_KEYS = {
    "id", "name", "unit", "scope", "status", "main_pid", "invocation_id", "argv", "cwd",
    "tags", "description", "created_at", "started_at", "ended_at", "exit_code",
    "exit_signal", "result", "final_result", "parent_id", "persistent", "restarts",
    "invocations", "provider", "provider_session_id", "usage", "cost_usd", "options",
    "worktree", "after", "blocked", "placement", "queue", "priority", "position", "resumes_at",
    "waiting_for", "memory_current", "cpu_usage_nsec", "tasks_current", "io_read_bytes",
    "io_write_bytes", "processes",
}
PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


def test_spawn_ps_wait_show_a_running_then_exited_session(orch: Orch) -> None:
    sid = orch.spawn("sleep", "2", opts=["--name", "napper", "--tag", "t1", "--tag", "t2",
                                         "--description", "naps"])
    running = orch.show(sid)
    assert set(running) == CONTRACT_KEYS
    assert running["status"] == "running"
    assert running["scope"] == orch.scope
    assert running["main_pid"] > 0 and running["invocation_id"]
    assert running["unit"].startswith("orch-napper-") and running["unit"].endswith(".service")
    assert running["tags"] == ["t1", "t2"] and running["description"] == "naps"
    assert orch.systemctl("is-active", running["unit"]).stdout.strip() == "active"

    listed = orch.ps("--running")
    assert [s["id"] for s in listed] == [sid]
    assert [s["id"] for s in orch.ps("--tag", "t2", "--tag", "t1")] == [sid]  # with both
    assert orch.ps("--tag", "t1", "--tag", "t3") == []
    none = orch("ps", "--running", "--tag", "t1", "--tag", "t3")  # the table: empty, said
    assert (none.returncode, none.stdout) == (0, "")
    assert none.stderr == "orch: no running sessions tagged t1 and t3\n"

    assert orch("wait", sid).returncode == 0
    ended = orch.show("napper")
    assert ended["status"] == "exited"
    assert ended["exit_code"] == 0 and ended["result"] == "success"
    assert ended["main_pid"] is None and ended["ended_at"] >= ended["started_at"]
    assert orch.ps("--running") == []


def test_the_unit_carries_the_session_and_a_path_to_this_orch(orch: Orch) -> None:
    sid = orch.spawn("/bin/sh", "-c", "env")
    assert orch("wait", sid).returncode == 0
    env = dict(line.split("=", 1) for line in wait_for(
        lambda: orch.logs_text(sid).strip(), what="the env lines").splitlines() if "=" in line)
    assert env["ORCH_SESSION_ID"] == sid
    assert env["ORCH_UNIT"] == orch.show(sid)["unit"]
    assert env["ORCH_SCOPE"] == orch.scope
    assert env["PATH"].split(":")[0] == str(VENV_BIN)


def test_the_unit_alone_names_its_session(orch: Orch) -> None:
    sid = orch.spawn("sleep", "60")
    unit = orch.show(sid)["unit"]
    shown = orch.systemctl("show", "-p", "Description", "-p", "Environment", "-p", "Type",
                           unit).stdout
    assert f"orch session {sid}" in shown
    assert f"ORCH_SESSION_ID={sid}" in shown
    assert "Type=exec" in shown


def test_argv_with_shell_metacharacters_arrives_verbatim(orch: Orch) -> None:
    canary = orch.state_dir.parent / "canary"
    hostile = [f"$(touch {canary})", f"`touch {canary}`", f"; touch {canary}",
               "'single' \"double\"", "line1\nline2", "tab\there", "*", "$HOME", "\\x41",
               "&& echo pwned", "| cat", "ünïcödé ✓"]
    sid = orch.spawn(PYTHON, "-c", PRINT_ARGV, *hostile)
    assert orch("wait", sid).returncode == 0
    printed = wait_for(lambda: orch.logs_text(sid).strip(), what="the argv line")
    assert json.loads(printed) == hostile
    assert orch.show(sid)["argv"] == [PYTHON, "-c", PRINT_ARGV, *hostile]
    assert not canary.exists()


def test_a_quick_exit_line_is_in_the_logs_every_time(orch: Orch) -> None:
    ids = [orch.spawn("/bin/echo", f"only-line-{i}") for i in range(15)]
    assert orch("wait", *ids).returncode == 0
    for i, sid in enumerate(ids):
        assert wait_for(lambda sid=sid: orch.logs_text(sid).strip(),
                        what=f"line {i}") == f"only-line-{i}"


def test_logs_options(orch: Orch) -> None:
    sid = orch.spawn("/bin/sh", "-c", "for i in 1 2 3 4 5; do echo n$i; done")
    assert orch("wait", sid).returncode == 0
    wait_for(lambda: "n5" in orch.logs_text(sid), what="all five lines")
    assert orch.ok("logs", "-o", "cat", "-n", "2", sid).split() == ["n4", "n5"]
    short = orch.ok("logs", sid)
    assert "n1" in short and f"orch-sh-{sid[:8]}[" in short
    entries = [json.loads(line) for line in orch.ok("logs", "-o", "json", sid).splitlines()]
    assert [e["MESSAGE"] for e in entries] == ["n1", "n2", "n3", "n4", "n5"]
    assert orch("logs", "-n", "-1", sid).returncode != 0


def test_logs_follow_streams_new_lines(orch: Orch) -> None:
    sid = orch.spawn("/bin/sh", "-c", "echo first; sleep 30")
    follower = orch.machine.popen([str(VENV_BIN / "orch"), "logs", "-f", "-o", "cat", sid],
                                  user=orch.user, env=orch.env)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "first"
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_a_missing_program_fails_the_spawn_cleanly(orch: Orch) -> None:
    done = orch("spawn", "--", "/no/such/program")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["orch: cannot run /no/such/program: no such file"]
    done = orch("spawn", "--", "no-such-program-anywhere")
    assert done.returncode == 1 and "not found on PATH" in done.stderr
    assert orch.ps() == []


def test_a_non_executable_program_fails_the_spawn(orch: Orch) -> None:
    script = orch.state_dir.parent / "not-exec.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    os.chown(script, orch.uid, orch.uid)
    done = orch("spawn", "--", str(script))
    assert done.returncode == 1 and "not executable" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_exec_failure_is_reported_and_never_claims_to_run(orch: Orch) -> None:
    # Executable bit set but no valid format: only the kernel's exec can refuse it.
    bogus = orch.state_dir.parent / "bogus"
    bogus.write_bytes(b"\x00\x01not a program\n")
    bogus.chmod(0o755)
    os.chown(bogus, orch.uid, orch.uid)
    done = orch("spawn", "--name", "bogus", "--", str(bogus))
    assert done.returncode == 1
    assert "exec failed (exit status 203)" in done.stderr and "Traceback" not in done.stderr
    [session] = orch.ps()
    assert session["status"] == "failed" and session["exit_code"] == 203


def test_wait_exit_codes(orch: Orch) -> None:
    failing = orch.spawn("/bin/sh", "-c", "exit 3")
    assert orch("wait", failing).returncode == 1
    assert orch.show(failing)["status"] == "failed"
    assert orch.show(failing)["exit_code"] == 3

    sleeper = orch.spawn("sleep", "60")
    assert orch("wait", "--timeout", "0.3", sleeper).returncode == 124

    unknown = orch("wait", "--timeout", "30", "ffffffff-0000")
    assert unknown.returncode == 2 and "no session matches" in unknown.stderr

    quick = orch.spawn("/bin/true")
    assert orch("wait", "--any", quick, sleeper).returncode == 0
    assert orch.show(sleeper)["status"] == "running"

    # An end `wait` sees before its exit hook records it has its time: the manager's.
    # Before, `ended_at` was null (5 waits of 5).
    for _ in range(3):
        brief = orch.spawn("sleep", "0.5")
        [waited] = json.loads(orch.ok("wait", "--json", brief))
        assert waited["status"] == "exited" and waited["ended_at"] is not None
        assert waited["invocations"][-1]["ended_at"] == waited["ended_at"]
        assert waited["ended_at"] >= waited["started_at"]


def test_wait_ends_once_nobody_reads_it(orch: Orch) -> None:
    # `orch --host H wait` whose ssh client was gone kept waiting on the host (for as
    # long as the session ran: hours, for an agent).
    sid = orch.spawn("sleep", "300")
    waiting = orch.machine.popen([ORCH, "wait", sid], user=orch.user, env=orch.env)
    try:
        assert waiting.stdout is not None
        waiting.stdout.close()  # its reader leaves
        assert waiting.wait(timeout=30) == 0
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def test_stop_ends_a_session_as_stopped(orch: Orch) -> None:
    sid = orch.spawn("sleep", "300", opts=["--name", "victim"])
    unit = orch.show(sid)["unit"]
    done = orch("stop", "victim")
    assert done.returncode == 0 and "stopped" in done.stderr
    shown = orch.show(sid)
    assert shown["status"] == "stopped" and shown["exit_signal"] == "SIGTERM"
    assert orch.systemctl("is-active", unit).stdout.strip() in ("inactive", "unknown")
    assert orch("wait", sid).returncode == 1  # ended, but not successfully


def test_stop_waits_as_long_as_the_unit_may_take_to_stop(orch: Orch) -> None:
    # The stop of a program that takes 3 s to end after SIGTERM, with a call bound
    # (ORCH_CALL_TIMEOUT) of 1 s: before, the wait for the stop job had that bound too,
    # and orch stop said "did not finish the stop within 1s" (exit 3) of a healthy
    # manager still well within the unit's TimeoutStopSec.
    sid = orch.spawn("/bin/sh", "-c", "trap 'sleep 3; exit 0' TERM; while :; do sleep 0.1; "
                     "done", opts=["--name", "slow-stop"])
    done = orch("stop", "slow-stop", env={"ORCH_CALL_TIMEOUT": "1s"})
    assert done.returncode == 0, done.stderr
    shown = orch.show(sid)  # its trap ran to its end: exit 0, not SIGKILL
    assert (shown["status"], shown["exit_code"], shown["exit_signal"]) == ("stopped", 0, None)


def test_kill_records_the_result_before_signalling(orch: Orch) -> None:
    sid = orch.spawn("sleep", "300")
    assert orch("kill", sid[:6], "the verdict").returncode == 0
    assert orch("wait", sid).returncode == 1
    shown = orch.show(sid)
    assert shown["status"] == "killed" and shown["final_result"] == "the verdict"
    assert shown["exit_signal"] == "SIGTERM"

    other = orch.spawn("sleep", "300")
    result_file = orch.state_dir.parent / "result.txt"
    result_file.write_text("from a file\n")
    os.chown(result_file, orch.uid, orch.uid)
    assert orch("kill", "--signal", "KILL", "--file", str(result_file), other).returncode == 0
    assert orch("wait", other).returncode == 1
    shown = orch.show(other)
    assert shown["final_result"] == "from a file" and shown["exit_signal"] == "SIGKILL"

    again = orch("kill", other, "late")
    assert again.returncode != 0 and "already ended" in again.stderr
    assert orch.show(other)["final_result"] == "from a file"


def test_a_kill_never_reaches_the_exit_hook_recording_the_end(orch: Orch) -> None:
    from tests.integration.test_after import _gate, _open

    gate = _gate(orch, "exit")
    sid = orch.spawn("/bin/sh", "-c", f"read _ < {gate}; exit 0")
    unit = orch.show(sid)["unit"]
    lock = os.open(orch.state_dir / "sessions.lock", os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the exit hook waits for it to record the end
        _open(gate)  # the program exits 0
        wait_for(lambda: orch.systemctl("show", "-P", "SubState", unit).stdout.strip()
                 == "stop-post", what="the exit hook to run")
        # What `orch kill` asks of the manager, now: before, KillUnit "all" reached the
        # hook (the unit's control process), and the end went unrecorded: lost.
        asked = orch.machine.run(
            [PYTHON, "-c", "import sys\nfrom orch.scope import Scope\n"
             "from orch.systemd import Manager\nwith Manager(Scope(sys.argv[1])) as m:\n"
             "    print(m.kill(sys.argv[2], 15))", orch.scope, unit],
            user=orch.user, env=orch.env)
        assert asked.stdout.strip() == "False", asked.stderr  # no program left to signal
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    assert orch("wait", "--timeout", "60", sid).returncode == 0
    assert orch.show(sid)["status"] == "exited"


def test_a_unit_collected_after_it_was_listed_reads_as_gone(orch: Orch) -> None:
    sid = orch.spawn("/bin/true")
    assert orch("wait", "--timeout", "60", sid).returncode == 0
    unit = orch.show(sid)["unit"]
    wait_for(lambda: orch.systemctl("show", "-P", "LoadState", unit).stdout.strip()
             in ("not-found", ""), what="the unit to be collected")
    # As a listing taken while its exit hook ran, and read after it was collected: the
    # reads find the manager's not-found stand-in. Before, that was a unit deactivating
    # with no invocation, and `ps` said `running` beside the recorded end.
    read = orch.machine.run(
        [PYTHON, "-c", "import sys\nfrom orch.scope import Scope\n"
         "from orch.systemd import GONE, Manager\nfrom orch.units import object_path\n"
         "with Manager(Scope(sys.argv[1])) as m:\n    print(m.view(object_path(sys.argv[2]), "
         "sys.argv[2], ('loaded', 'deactivating', 'stop-post', 0)) == GONE)",
         orch.scope, unit], user=orch.user, env=orch.env)
    assert read.stdout.strip() == "True", read.stderr
    assert orch.show(sid)["status"] == "exited"


def test_kill_self_from_inside_a_session(orch: Orch) -> None:
    sid = orch.spawn("/bin/sh", "-c", 'orch kill self "done: 42" && sleep 300')
    assert orch("wait", "--timeout", "60", sid).returncode == 1
    shown = orch.show(sid)
    assert shown["status"] == "killed" and shown["final_result"] == "done: 42"


def test_a_session_spawned_inside_another_records_its_parent(orch: Orch) -> None:
    parent = orch.spawn("/bin/sh", "-c", "orch spawn --name child -- /bin/true")
    assert orch("wait", parent).returncode == 0
    child = wait_for(lambda: [s for s in orch.ps() if s["name"] == "child"], what="the child")
    assert child[0]["parent_id"] == parent
    assert orch.show(parent)["parent_id"] is None


def test_a_corrupt_state_file_is_refused_and_left_untouched(orch: Orch) -> None:
    # Its exit hook writes the state file too: let it finish before the test corrupts it.
    orch.ok("wait", orch.spawn("/bin/true"))
    state = orch.state_dir / "sessions.json"
    state.write_bytes(b'{"version": 1, "sessions": [ garbage')
    before = state.read_bytes()
    for args in (["ps"], ["spawn", "--", "sleep", "100"], ["show", "anything"]):
        done = orch(*args)
        assert done.returncode == 5
        assert done.stderr.count("\n") == 1 and str(state) in done.stderr
        assert "Traceback" not in done.stderr
    assert state.read_bytes() == before
    assert "orch-sleep-" not in orch.systemctl("list-units", "--no-legend", "orch-*").stdout


def test_state_files_are_private(orch: Orch) -> None:
    orch.spawn("/bin/true")
    assert stat.S_IMODE(orch.state_dir.stat().st_mode) == 0o700
    for name in ("sessions.json", "sessions.log", "sessions.lock"):
        assert stat.S_IMODE((orch.state_dir / name).stat().st_mode) == 0o600, name
        assert (orch.state_dir / name).stat().st_uid == orch.uid, name


def test_references_resolve_or_fail_in_one_line(orch: Orch) -> None:
    first = orch.spawn("/bin/true", opts=["--name", "twin"])
    second = orch.spawn("/bin/true", opts=["--name", "twin"])
    assert orch.show(first[:8])["id"] == first
    assert orch.show(orch.show(second)["unit"])["id"] == second
    ambiguous = orch("show", "twin")
    assert ambiguous.returncode == 2 and first[:8] in ambiguous.stderr
    assert len(ambiguous.stderr.strip().splitlines()) == 1
    unknown = orch("show", "nope-nope")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    outside = orch("show", "self")
    assert outside.returncode == 2 and "inside" in outside.stderr


def test_bad_input_gets_one_line_and_no_traceback(orch: Orch) -> None:
    cases = [
        ["spawn"],
        ["spawn", "--env", "NOEQUALS", "--", "/bin/true"],
        ["spawn", "--env", "ORCH_SESSION_ID=x", "--", "/bin/true"],
        ["spawn", "--cwd", "/no/such/dir", "--", "/bin/true"],
        ["spawn", "--name", "", "--", "/bin/true"],
        ["kill", "nope", "--signal", "NOTASIGNAL"],
        ["ps", "--bogus-option"],
        ["spawn", "--user", "--system", "--", "/bin/true"],
    ]
    for args in cases:
        done = orch(*args)
        assert done.returncode != 0, args
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert done.stderr.startswith("orch: "), (args, done.stderr)
        assert done.stdout == "", args


def test_kill_signals_nothing_when_the_result_cannot_be_recorded(user_orch: Orch) -> None:
    sid = user_orch.spawn("sleep", "300")
    with user_orch.read_only_state():
        done = user_orch("kill", sid, "never recorded")
    assert done.returncode == 5 and "permission denied" in done.stderr
    shown = user_orch.show(sid)
    assert shown["status"] == "running" and shown["final_result"] is None


def test_the_python_api_embeds_without_the_cli(root_orch: Orch) -> None:
    program = (
        "import orch\n"
        "s = orch.spawn(['/bin/sh', '-c', 'echo api; exit 4'], name='embedded', tags=['x'])\n"
        "out = orch.wait([s.id], timeout=60)\n"
        "print(s.name, out.timed_out, out.succeeded, orch.show('embedded').status,\n"
        "      [x.id for x in orch.list_sessions(tag='x')] == [s.id])\n"
    )
    done = root_orch.machine.run([PYTHON, "-c", program], env=root_orch.env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["embedded", "False", "False", "failed", "True"]
