"""stop and kill over a fake manager: the intent is written before the manager acts,
and taken back when it cannot."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest

from orch import events
from orch.errors import OrchError, UsageError
from orch.runtime import Runtime
from orch.session import Ending, Intent, Status
from orch.spec import after_marker, after_unit
from orch.usecases import control
from tests.unit.fakemanager import FakeManager, exited, not_started, put, started


def test_stop_marks_then_stops(fake: FakeManager, rt: Runtime) -> None:
    record = started(fake, rt, "s")

    def stop_sees_the_intent(units: Sequence[str]) -> dict[str, str]:
        assert rt.store.load()[record.id].intent is Intent.STOP
        return FakeManager.stop_all(fake, units)

    fake.stop_all = stop_sees_the_intent  # type: ignore[method-assign]
    assert control.stop(rt, "s").status is Status.STOPPED
    assert fake.called("stop") == [record.unit]


def test_stopping_an_ended_session_changes_nothing(fake: FakeManager, rt: Runtime) -> None:
    record = started(fake, rt, "s")
    fake.set(record.unit, exited(fake.unit(record.unit)))
    assert control.stop(rt, "s").status is Status.EXITED
    assert fake.called("stop") == [] and rt.store.load()[record.id].intent is None


def test_a_failed_stop_takes_its_intent_back(fake: FakeManager, rt: Runtime) -> None:
    record = started(fake, rt, "s")
    fake.fail_stop = OrchError("the manager timed out")
    with pytest.raises(OrchError, match="timed out"):
        control.stop(rt, "s")
    assert rt.store.load()[record.id].intent is None


@pytest.mark.parametrize("act", [control.stop, control.kill])
def test_ending_one_that_waits_to_resume_settles_its_dependents(
        fake: FakeManager, rt: Runtime, act: object) -> None:
    # An agent the API failed waits for its timer (limited): no unit runs, no exit hook
    # comes. Ended here, its dependents can wait no longer: before, they did for ever.
    limited = put(rt, "limited", invocation_id="a" * 32, ended_at=rt.now_iso(),
                  exit_code=1, result="exit-code", resumes_at="2999-01-01T00:00:00+00:00",
                  wait_kind="usage-limit", waiting_for="usage limit")
    waiting = put(rt, "waiting", after=[limited.id])
    act(rt, "limited")  # type: ignore[operator]
    assert rt.store.load()[waiting.id].blocked == \
        f"dependency {limited.id[:8]} (limited) did not end successfully"
    told = [(e.session_id, e.status) for e in events.read(rt.store.directory)]
    assert (waiting.id, "failed") in told


def test_kill_records_the_result_then_signals(fake: FakeManager, rt: Runtime) -> None:
    record = started(fake, rt, "k")
    session = control.kill(rt, "k", "gave up", signum=signal.SIGINT)
    assert session.status is Status.KILLED and session.final_result == "gave up"
    assert fake.called("kill") == [(record.unit, signal.SIGINT)]
    with pytest.raises(OrchError, match="has already ended: killed"):
        control.kill(rt, "k")


def test_a_signal_that_ends_nothing_is_sent_and_no_kill_recorded(
        fake: FakeManager, rt: Runtime) -> None:
    record = started(fake, rt, "paused")
    fake.kill = lambda unit, signum: fake.calls.append(("kill", (unit, signum))) or True  # type: ignore[method-assign,func-returns-value]
    for signum in (signal.SIGSTOP, signal.SIGCONT):
        assert control.kill(rt, "paused", signum=signum).status is Status.RUNNING
    assert fake.called("kill") == [(record.unit, signal.SIGSTOP), (record.unit, signal.SIGCONT)]
    # Before, the kill was recorded: its later exit 0 read "killed (exit code 0)".
    now = rt.store.load()[record.id]
    assert now.intent is None and now.final_result is None
    with pytest.raises(UsageError, match="a RESULT ends the session; signal SIGSTOP"):
        control.kill(rt, "paused", "a result", signum=signal.SIGSTOP)


def test_a_kill_that_meets_an_end_recorded_meanwhile_says_so_and_signals_nothing(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.exithook import record_exit
    from orch.session import now_iso

    record = started(fake, rt, "quick")
    really_mark = control.mark

    def ended_first(*args: object) -> object:  # its exit hook takes the lock first
        record_exit(rt.store, record.id, record.invocation_id, Ending(now_iso(), 0, None,
                                                                     "success"))
        return really_mark(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(control, "mark", ended_first)
    # Before, kill said it signalled, and its result was never recorded.
    with pytest.raises(OrchError, match="has already ended"):
        control.kill(rt, "quick", "too late")
    assert fake.called("kill") == [] and rt.store.load()[record.id].final_result is None


def test_kill_self_outlives_its_own_signal(fake: FakeManager, rt: Runtime,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    record = started(fake, rt, "me")
    monkeypatch.setenv("ORCH_SESSION_ID", record.id)
    before = signal.getsignal(signal.SIGUSR1)
    try:
        control.kill(rt, "self", signum=signal.SIGUSR1)
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, before)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_dependent_waiting_for_its_dependencies_never_starts_after_a_stop_or_kill(
        fake: FakeManager, rt: Runtime, how: str) -> None:
    # --after: its unit created, not started, behind a path unit a dependency's end
    # would start it through. Before, stop and kill left that path unit armed.
    first = started(fake, rt, "first")
    second = put(rt, "second", after=[first.id])
    third = put(rt, "third", after=[second.id])
    fake.add(second.unit, not_started())
    fake.add(after_unit(second.unit), not_started())
    marker = after_marker(rt.scope, second.id)
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    if how == "stop":
        session = control.stop(rt, "second")
    else:
        session = control.kill(rt, "second", "not needed")
    assert session.status is (Status.STOPPED if how == "stop" else Status.KILLED)
    # The one blocked in turn has nothing left to start it either (before: its path unit
    # stayed armed, and its secrets in place).
    stopped = [after_unit(second.unit), second.unit, after_unit(third.unit), third.unit]
    assert fake.called("stop") == stopped
    assert fake.called("kill") == [] and not marker.exists()
    records = rt.store.load()
    assert records[second.id].result == "canceled" and records[second.id].ended_at
    assert records[third.id].blocked == f"dependency {second.id[:8]} (second) never ran"
    assert [(e.session_id, e.status, e.detail) for e in events.read(rt.store.directory)
            if e.event == "ended"] == [
        (second.id, session.status.value, "canceled while waiting for its dependencies"),
        (third.id, "failed", f"dependency {second.id[:8]} (second) never ran")]
    if how == "kill":
        assert session.final_result == "not needed"
        with pytest.raises(OrchError, match="has already ended: killed"):
            control.kill(rt, "second")
    else:
        assert control.stop(rt, "second").status is Status.STOPPED  # no second stop
        assert fake.called("stop") == stopped


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_session_between_restarts_ends_stopped_or_killed_and_says_so(
        fake: FakeManager, rt: Runtime, how: str) -> None:
    # Restart=always: its last run ended (its hook recorded that) and systemd waits out
    # RestartSec= to start it again. Before, stop left it `exited` with no ended event,
    # and kill signalled nothing, so systemd started it again.
    record = started(fake, rt, "again", options={"restart": "always"})
    last_run = exited(fake.unit(record.unit))
    rt.store.update(lambda s: s.__setitem__(record.id, s[record.id].with_ending(
        Ending(rt.now_iso(), 0, None, "success"), record.invocation_id)))
    fake.set(record.unit, dataclasses.replace(last_run, active_state="activating",
                                              sub_state="auto-restart"))
    session = control.stop(rt, "again") if how == "stop" else \
        control.kill(rt, "again", "enough")
    expected = Status.STOPPED if how == "stop" else Status.KILLED
    assert session.status is expected
    assert fake.called("stop") == [record.unit] and fake.called("kill") == []
    assert [(e.event, e.status, e.detail) for e in events.read(rt.store.directory)
            if e.event == "ended"] == [("ended", expected.value, f"{expected.value} between "
                                        "restarts")]


def test_kill_ends_a_restarting_session_rather_than_one_run(fake: FakeManager,
                                                             rt: Runtime) -> None:
    # Restart=always: a signal alone ended the run, and systemd started another.
    record = started(fake, rt, "again", options={"restart": "always"})
    assert control.kill(rt, "again", signum=signal.SIGINT).status is Status.KILLED
    assert fake.called("kill") == [(record.unit, signal.SIGINT)]
    assert fake.called("stop") == [record.unit]


@pytest.mark.parametrize(("text", "number"), [("15", 15), ("term", 15), ("SIGKILL", 9),
                                               (" hup ", 1)])
def test_signals_by_number_or_name(text: str, number: int) -> None:
    assert control.parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "999", "SIGNOPE", ""])
def test_what_is_not_a_signal(text: str) -> None:
    with pytest.raises(UsageError, match="not a signal"):
        control.parse_signal(text)


def test_a_result_file_loses_one_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "result.txt"
    path.write_text("done\n\n")
    assert control.read_result_file(str(path)) == "done\n"
