"""Events and hooks over a fake manager: each transition told once, in order, in the
event log; [hooks] commands run as transient units with the session in their
environment and its result in a 0600 file; following the log wakes on inotify."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from orch import events
from orch.errors import OrchError
from orch.events import Event, Kind
from orch.runtime import Runtime
from orch.session import Status
from orch.usecases import control, transitions
from orch.usecases import spawn as spawning
from tests.unit.fakemanager import FakeManager, put
from tests.waiting import wait_for


def _config(body: str) -> None:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "orch" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


def _told(rt: Runtime) -> list[tuple[str, str, str]]:
    return [(e.name, e.event, e.status) for e in events.read(rt.store.directory)]


def _hook_units(fake: FakeManager) -> list[str]:
    return [str(u) for u in fake.called("submit_transient") if str(u).startswith("orch-hook-")]


def test_a_spawn_tells_it_was_spawned_then_started(fake: FakeManager, rt: Runtime) -> None:
    spawning.spawn(rt, ["/bin/true"], name="one")
    assert _told(rt) == [("one", "spawned", "starting"), ("one", "started", "running")]
    log = rt.store.directory / events.EVENTS_FILE
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_queued_then_cancelled_is_told_with_why(fake: FakeManager, rt: Runtime) -> None:
    _config("[queues.q]\nmax_running = 1\n")
    spawning.spawn(rt, ["/bin/true"], name="first", queue="q")
    second = spawning.spawn(rt, ["/bin/true"], name="second", queue="q")
    control.stop(rt, second.id)
    mine = [e for e in events.read(rt.store.directory) if e.name == "second"]
    assert [(e.event, e.status, e.detail) for e in mine] == [
        ("spawned", "queued", None), ("queued", "queued", "queue q #1"),
        ("ended", "stopped", "canceled while queued")]


def test_hooks_run_as_units_with_the_session_in_their_environment(
        fake: FakeManager, rt: Runtime) -> None:
    _config('[hooks]\non_end = ["notify-send", "done"]\non_failed = ["/bin/echo", "bad"]\n'
            'on_start = ["/bin/true"]\n')
    record = put(rt, "job", exit_code=3, result="exit-code", final_result="it broke",
                 ended_at=rt.now_iso())
    problems = transitions.tell(rt, record, Kind.ENDED, Status.FAILED)
    assert problems == []
    end, failed = _hook_units(fake)
    assert end.startswith(f"orch-hook-end-{record.id[:8]}-")
    assert failed.startswith(f"orch-hook-failed-{record.id[:8]}-")
    props = {name: value for name, _, value in fake.units[end].properties}
    env = dict(item.split("=", 1) for item in props["Environment"])  # type: ignore[union-attr]
    assert env["ORCH_SESSION_ID"] == record.id and env["ORCH_NAME"] == "job"
    assert (env["ORCH_STATUS"], env["ORCH_EXIT_CODE"], env["ORCH_UNIT"]) == (
        "failed", "3", record.unit)
    assert env["ORCH_DETAIL"] == ""  # the event says no more than its status here
    result = Path(env["ORCH_RESULT_FILE"])
    assert result.read_text() == "it broke" and stat.S_IMODE(result.stat().st_mode) == 0o600
    assert props["ExecStart"] == [("notify-send", ["notify-send", "done"], False)]
    assert props["ExecStopPost"][0][1][1:] == ["-f", str(result)]  # type: ignore[index]
    assert props["RuntimeMaxUSec"] == 600_000_000  # a hook that hangs is ended: 10 min
    transitions.tell(rt, record, Kind.ENDED, Status.EXITED)  # not failed: on_end alone
    assert len(_hook_units(fake)) == 3
    assert [e.exit_code for e in events.read(rt.store.directory)] == [3, 3]


def test_a_hook_is_told_the_exit_code_its_event_tells(fake: FakeManager, rt: Runtime) -> None:
    # Before, a limited session's hook had the failed run's exit code ("1") while its
    # event said none; a resumed one's start hook, its last run's.
    _config('[hooks]\non_limited = ["/bin/true"]\non_start = ["/bin/true"]\n')
    record = put(rt, "job", exit_code=1, result="exit-code", ended_at=rt.now_iso())
    transitions.tell(rt, record, Kind.LIMITED, Status.LIMITED, "usage limit (five_hour)")
    transitions.tell(rt, record, Kind.STARTED, Status.RUNNING)
    told = [e.exit_code for e in events.read(rt.store.directory)]
    units = _hook_units(fake)
    assert len(units) == 2 and told == [None, None]
    for unit in units:
        props = {name: value for name, _, value in fake.units[unit].properties}
        env = dict(item.split("=", 1) for item in props["Environment"])  # type: ignore[union-attr]
        assert env["ORCH_EXIT_CODE"] == ""


@pytest.mark.parametrize(("limit", "usec"), [('"30s"', 30_000_000), ("5", 5_000_000),
                                            ('"infinity"', 2**64 - 1)])
def test_a_hooks_time_limit_is_the_configs(fake: FakeManager, rt: Runtime, limit: str,
                                           usec: int) -> None:
    _config(f'[hooks]\non_end = ["/bin/true"]\ntime_limit = {limit}\n')
    record = put(rt, "job", exit_code=0, result="success", ended_at=rt.now_iso())
    assert transitions.tell(rt, record, Kind.ENDED, Status.EXITED) == []
    [unit] = _hook_units(fake)
    assert dict((n, v) for n, _, v in fake.units[unit].properties)["RuntimeMaxUSec"] == usec


def test_a_hook_is_told_why_a_session_ended_without_running(
        fake: FakeManager, rt: Runtime) -> None:
    # Before, a blocked session's on_failed hook had only "failed", no exit code and an
    # empty result: nothing said it never ran, nor why.
    _config('[hooks]\non_failed = ["/bin/true"]\n')
    why = "dependency 0a0a0a0a (job) did not end successfully"
    blocked = put(rt, "dependent", blocked=why, ended_at=rt.now_iso())
    assert transitions.tell(rt, blocked, Kind.ENDED, Status.FAILED, why) == []
    [unit] = _hook_units(fake)
    told = {name: value for name, _, value in fake.units[unit].properties}
    assert f"ORCH_DETAIL={why}" in told["Environment"]  # type: ignore[operator]


def test_no_hook_without_a_config_and_a_refused_hook_is_a_problem_not_an_error(
        fake: FakeManager, rt: Runtime) -> None:
    record = put(rt, "job")
    assert transitions.tell(rt, record, Kind.STARTED, Status.RUNNING) == []
    assert fake.called("submit_transient") == [] and fake.calls == []  # no manager asked
    _config('[hooks]\non_start = ["/bin/true"]\n')

    def refuse(unit: str, props: object) -> None:
        raise OrchError("the manager said no")

    fake.on_submit = refuse
    [problem] = transitions.tell(rt, record, Kind.STARTED, Status.RUNNING)
    assert problem == f"hook on_start of session {record.id[:8]} not run: the manager said no"
    assert not list((Path(os.environ["XDG_RUNTIME_DIR"]) / "orch" / "results").iterdir())
    _config("[hooks\n")
    assert transitions.tell(rt, record, Kind.STARTED, Status.RUNNING)[0].startswith(
        "hooks not run: ")
    assert len(events.read(rt.store.directory)) == 3  # told all the same


def test_which_hooks_each_event_runs() -> None:
    assert transitions.hook_keys(Kind.ENDED, "lost") == ["on_end", "on_failed"]
    assert transitions.hook_keys(Kind.ENDED, "stopped") == ["on_end"]
    assert transitions.hook_keys(Kind.LIMITED, "limited") == ["on_limited"]
    assert transitions.hook_keys(Kind.IDLE, "idle") == ["on_idle"]
    assert transitions.hook_keys(Kind.RETRIED, "starting") == []


class _Done(Exception):
    pass


def test_following_wakes_on_each_append_and_skips_what_it_cannot_read(
        tmp_path: Path) -> None:
    def event(n: int) -> Event:
        return Event(f"2026-12-06T12:00:0{n}.000000+00:00", f"id{n}", "s", "spawned",
                     "starting")

    events.append(tmp_path, event(0))
    start = events.end(tmp_path)
    seen: list[Event] = []

    def emit(e: Event) -> None:
        seen.append(e)
        if len(seen) == 2:
            raise _Done

    with (tmp_path / events.EVENTS_FILE).open("ab") as file:
        file.write(b"not json\n[1]\n")
    events.append(tmp_path, event(1))
    ended: list[BaseException] = []

    def follow() -> None:
        try:
            events.follow(tmp_path, start, emit)
        except _Done as done:
            ended.append(done)

    follower = threading.Thread(target=follow)
    follower.start()
    wait_for(lambda: len(seen) == 1, what="the first event")
    events.append(tmp_path, event(2))  # only inotify can tell the follower of this one
    follower.join(timeout=10)
    assert not follower.is_alive() and ended
    assert seen == [event(1), event(2)]
    assert [e.session_id for e in events.read(tmp_path)] == ["id0", "id1", "id2"]
