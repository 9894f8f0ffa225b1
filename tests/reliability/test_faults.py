"""Unreachable and frozen managers, PID reuse, and one user kept out of another's."""

from __future__ import annotations

import signal
import time
import uuid

from tests.integration.conftest import PYTHON, Orch


def test_no_user_manager_is_one_line_naming_the_way_out(user_orch: Orch) -> None:
    done = user_orch("ps", env={"XDG_RUNTIME_DIR": "/nonexistent"})
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
    assert "no user manager is running" in done.stderr and "linger" in done.stderr


def test_a_frozen_manager_gives_a_clear_error_within_the_call_timeout(
        user_orch: Orch) -> None:
    manager_pid = int(user_orch.machine.sh(
        f"systemctl show -p MainPID --value user@{user_orch.uid}.service").strip())
    user_orch.spawn("sleep", "60")  # the state file names a unit, so ps must ask the manager
    # The host sees the box's PIDs under other numbers: signal it from inside.
    user_orch.machine.sh(f"kill -STOP {manager_pid}")
    try:
        started = time.monotonic()
        done = user_orch("ps", env={"ORCH_CALL_TIMEOUT": "2"}, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        user_orch.machine.sh(f"kill -CONT {manager_pid}")
    assert done.returncode == 3, done.stderr
    assert "did not answer" in done.stderr and done.stderr.count("\n") == 1
    assert elapsed < 30  # bounded by the call timeout, not hung


def test_a_reused_pid_never_reads_as_running(user_orch: Orch) -> None:
    # A record whose unit is gone, while its PID now belongs to an unrelated process.
    unrelated = user_orch.machine.popen(["sh", "-c", "echo $$; exec sleep 120"],
                                        user=user_orch.user)
    try:
        assert unrelated.stdout is not None
        pid_inside = int(unrelated.stdout.readline())
        sid = str(uuid.uuid4())
        # Creates the state file; its exit hook writes it too: let that finish first.
        user_orch.ok("wait", user_orch.spawn("/bin/true"))
        user_orch.edit_records(lambda records: records.append(dict(
            records[0], id=sid, name="reused", unit=f"orch-reused-{sid[:8]}.service",
            invocation_id="ab" * 16, main_pid=pid_inside, result=None, exit_code=None,
            ended_at=None)))
        assert user_orch.show(sid)["status"] == "lost"
        assert user_orch.show(sid)["main_pid"] is None
    finally:
        unrelated.send_signal(signal.SIGTERM)
        unrelated.wait(timeout=10)


def test_the_start_time_check_matches_systemds_own_stamp(root_orch: Orch) -> None:
    sid = root_orch.spawn("sleep", "60")
    unit = root_orch.show(sid)["unit"]
    probe = (
        "import subprocess, sys\n"
        "from orch.procs import started_at\n"
        f"out = subprocess.run(['systemctl', 'show', '-p', 'MainPID', '-p',"
        f" 'ExecMainStartTimestampMonotonic', '{unit}'], capture_output=True, text=True).stdout\n"
        "props = dict(l.split('=', 1) for l in out.split())\n"
        "pid, mono = int(props['MainPID']), int(props['ExecMainStartTimestampMonotonic'])\n"
        "print(started_at(pid, mono), started_at(pid, mono - 5_000_000),"
        " started_at(pid, mono + 5_000_000), started_at(pid + 100000, mono))\n"
    )
    assert root_orch.machine.sh(f"{PYTHON} -c \"{probe}\"").split() == \
        ["True", "False", "False", "False"]


def test_a_user_cannot_reach_system_sessions(root_orch: Orch, user_orch: Orch) -> None:
    sid = root_orch.spawn("sleep", "60")
    intruder = {"ORCH_STATE_DIR": str(root_orch.state_dir)}
    for args in (["ps", "--system"], ["show", "--system", sid], ["stop", "--system", sid],
                 ["kill", "--system", sid]):
        done = user_orch(*args, env=intruder)
        assert done.returncode != 0, args
        assert "permission denied" in done.stderr.lower(), (args, done.stderr)
    # And with a state directory of its own, it may look but not change the unit.
    unit = root_orch.show(sid)["unit"]
    denied = user_orch.machine.run(
        [PYTHON, "-c", "from orch.systemd import Manager; from orch.scope import Scope\n"
         f"with Manager(Scope.SYSTEM) as m: m.kill({unit!r}, 15)"],
        user=user_orch.user, env=user_orch.env)
    assert denied.returncode != 0 and "refused the kill" in denied.stderr
    assert root_orch.show(sid)["status"] == "running"



def test_sessions_survive_a_daemon_reload_and_still_record_their_end(orch: Orch) -> None:
    flag = orch.state_dir.parent / "go"
    sid = orch.spawn("/bin/sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.05; done; exit 6")
    before = orch.show(sid)
    assert orch.systemctl("daemon-reload").returncode == 0
    after = orch.show(sid)
    assert after["status"] == "running"
    assert (after["invocation_id"], after["main_pid"]) == \
        (before["invocation_id"], before["main_pid"])
    flag.write_text("")
    assert orch("wait", sid).returncode == 1
    ended = orch.show(sid)
    # Recorded by the exit hook, as re-read from the unit file the reload parsed.
    assert ended["status"] == "failed" and ended["exit_code"] == 6
