"""`orch events` and [hooks] against real managers: the transitions told once each, a
follower woken as they come, and hooks run as units of the session's manager."""

from __future__ import annotations

import json
import os
import select
import time

from tests.integration.conftest import Orch, wait_for


def _events(orch: Orch, *args: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in orch.ok("events", "--json", *args).splitlines()]


def test_each_transition_is_told_once_and_hooks_run_with_the_session(orch: Orch) -> None:
    told = orch.owned_file("told.txt")
    script = (f'echo "$ORCH_NAME $ORCH_STATUS $ORCH_EXIT_CODE $(cat "$ORCH_RESULT_FILE")" '
              f'>> {told}')
    orch.use_config(f'[hooks]\non_end = ["/bin/sh", "-c", {json.dumps(script)}]\n'
                  'on_failed = ["/bin/false"]\n')
    ok = orch.spawn("/bin/true", opts=["--name", "good"])
    bad = orch.spawn("/bin/sh", "-c", "exit 3", opts=["--name", "bad"])
    assert orch("wait", ok).returncode == 0 and orch("wait", bad).returncode == 1
    wait_for(lambda: len(told.read_text().splitlines()) == 2, what="both on_end hooks")
    assert sorted(told.read_text().splitlines()) == ["bad failed 3 ", "good exited 0 "]
    assert orch.show(bad)["status"] == "failed"  # its failing on_failed hook changed nothing
    mine = _events(orch, bad)
    assert [(e["event"], e["status"]) for e in mine] == [
        ("spawned", "starting"), ("started", "running"), ("ended", "failed")]
    assert mine[-1]["exit_code"] == 3 and mine[-1]["result"] == "exit-code"
    assert len(_events(orch)) == 6
    orch.ok("recover")
    assert len(_events(orch)) == 6  # recover tells nothing twice
    text = orch.ok("events", bad)
    assert f"{bad[:8]} bad: ended, failed (exit code 3, exit-code)" in text
    assert _events(orch, "--since", "1h") == _events(orch)
    assert _events(orch, "--since", "2999-01-01T00:00:00") == []


def test_a_start_only_the_exit_hook_tells_runs_the_on_start_hooks(orch: Orch) -> None:
    told = orch.owned_file("told.txt")
    hook = ["/bin/sh", "-c", f'echo "$ORCH_NAME $ORCH_EVENT $ORCH_STATUS" >> {told}']
    orch.use_config(f"[hooks]\non_start = {json.dumps(hook)}\non_end = {json.dumps(hook)}\n")
    # The spawn dies after the start job, before it confirms the start: the program's
    # exit hook is the first to hear of it, and tells it. Before, without its hooks.
    died = orch("spawn", "--name", "quick", "--", "/bin/true",
                env={"ORCH_CRASH_AT": "launch.started"})
    assert died.returncode in (-9, 137)  # SIGKILL, seen directly or through a shell
    [record] = orch.records()
    assert orch("wait", record.id).returncode == 0
    wait_for(lambda: len(told.read_text().splitlines()) == 2, what="both hooks")
    assert sorted(told.read_text().splitlines()) == ["quick ended exited",
                                                     "quick started running"]
    assert [e["event"] for e in _events(orch)] == ["spawned", "started", "ended"]


def test_a_hook_that_hangs_is_ended_at_its_time_limit(orch: Orch) -> None:
    # Before, a hook that never ended (a notifier without network) ran for good, one
    # more each session, past the session's end and `reap --all`.
    started = orch.owned_file("started.txt")
    hang = ["/bin/sh", "-c", f"echo $$ > {started}; exec sleep 600"]
    orch.use_config(f'[hooks]\non_end = {json.dumps(hang)}\ntime_limit = "2s"\n')
    assert orch("wait", orch.spawn("/bin/true")).returncode == 0
    wait_for(lambda: started.read_text().strip(), what="the hook to start")

    def hooks_running() -> str:
        return orch.systemctl("list-units", "--no-legend", "orch-hook-end-*").stdout

    unit = wait_for(lambda: hooks_running().split()[:1], what="the hook's unit")[0]
    limit = orch.systemctl("show", "-p", "RuntimeMaxUSec", unit).stdout.strip()
    assert limit == "RuntimeMaxUSec=2s"
    wait_for(lambda: hooks_running().strip() == "", timeout=30,
             what="the manager to end it at its limit")  # not 600 s later


def test_a_follower_prints_each_event_as_it_comes(orch: Orch) -> None:
    follower = orch.machine.popen(["orch", "events", "--follow", "--json"], user=orch.user,
                                  env=orch.env)
    try:
        sid = orch.spawn("/bin/true", opts=["--name", "followed"])
        assert follower.stdout is not None
        out = follower.stdout.fileno()
        data = b""
        deadline = time.monotonic() + 30
        while data.count(b"\n") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], 1.0)
            if ready:
                data += os.read(out, 65536)
        lines = [json.loads(line) for line in data.splitlines()]
        assert [(e["session_id"], e["event"]) for e in lines] == [
            (sid, "spawned"), (sid, "started"), (sid, "ended")]
    finally:
        follower.terminate()  # ours, by its PID
        follower.wait(timeout=30)


def test_bad_since_is_one_line(orch: Orch) -> None:
    done = orch("events", "--since", "yesterday-ish")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("orch: --since 'yesterday-ish': expected an ISO 8601 time")
    assert done.stderr.count("\n") == 1

