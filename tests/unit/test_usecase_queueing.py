"""Queues over a fake manager: spawn into a queue, the next started when a slot frees,
cancel, memory, refusals, recover and reap. The real manager's side is proven by
tests/integration/test_queues.py."""

from __future__ import annotations

import dataclasses
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from orch import events, secrets
from orch.errors import SpawnFailed, UsageError
from orch.exithook import record_exit
from orch.recovery import Outcome
from orch.runtime import Runtime
from orch.scope import Scope
from orch.session import Ending, Status, now_iso
from orch.spec import after_dir, after_marker
from orch.usecases import control, query, queueing, reap, recover
from orch.usecases import spawn as spawning
from orch.usecases.transitions import release_dependents
from tests.unit.fakemanager import FakeManager, exited, put, runtime, started


def _config(body: str) -> None:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "orch" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)


@pytest.fixture(autouse=True)
def two_slots() -> None:
    _config("[queues.q]\nmax_running = 2\n")


def _spawn(rt: Runtime, name: str, **kwargs: object) -> Status:
    return spawning.spawn(rt, ["/bin/sleep", "100"], name=name, queue="q",
                          **kwargs).status  # type: ignore[arg-type]


def _end(fake: FakeManager, rt: Runtime, session_id: str) -> None:
    """The session's program exits: its unit ends, and its exit hook records it."""
    record = rt.store.load()[session_id]
    fake.set(record.unit, exited(fake.unit(record.unit)))
    record_exit(rt.store, session_id, record.invocation_id,
                Ending(now_iso(), 0, None, "success"))
    del fake.units[record.unit]


def _statuses(rt: Runtime) -> dict[str, str]:
    return {s.name: str(s.status) for s in query.list_sessions(rt)}


def test_a_queue_runs_at_most_its_cap_and_the_next_starts_when_one_ends(
        fake: FakeManager, rt: Runtime) -> None:
    assert [_spawn(rt, n) for n in ("a", "b", "c", "d")] == [
        Status.RUNNING, Status.RUNNING, Status.QUEUED, Status.QUEUED]
    listed = {s.name: s for s in query.list_sessions(rt)}
    assert (listed["c"].position, listed["d"].position) == (1, 2)
    assert listed["c"].queue == "q" and listed["a"].position is None
    assert len(fake.called("submit_transient")) == 2
    _end(fake, rt, listed["a"].id)
    started = queueing.admit(rt)
    assert [s.name for s in started.sessions] == ["c"] and started.problems == []
    assert _statuses(rt) == {"a": "exited", "b": "running", "c": "running", "d": "queued"}
    assert queueing.admit(rt).sessions == []  # no slot: nothing more


def test_priority_goes_first_and_the_position_says_so(fake: FakeManager,
                                                      rt: Runtime) -> None:
    _config("[queues.q]\nmax_running = 1\n")
    _spawn(rt, "running")
    low = spawning.spawn(rt, ["/bin/true"], name="low", queue="q")
    high = spawning.spawn(rt, ["/bin/true"], name="high", queue="q", priority=9)
    assert (low.position, high.position) == (1, 1)  # each as it was when spawned
    shown = query.result(rt, low.id)
    assert (shown.status, shown.position) == (Status.QUEUED, 2)


def test_a_queued_session_keeps_its_secrets_private_until_it_starts(
        fake: FakeManager, rt: Runtime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _config("[queues.q]\nmax_running = 1\n")
    first = spawning.spawn(rt, ["/bin/true"], name="first", queue="q")
    monkeypatch.setenv("TOKEN", "s3cret")
    later = spawning.spawn(rt, ["/bin/true"], name="later", queue="q", secret_env=["TOKEN"])
    saved = secrets.secrets_dir(Scope.USER) / f"{later.id}.env"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    monkeypatch.delenv("TOKEN")  # the hook that starts it has none of the caller's env
    _end(fake, rt, first.id)
    assert [s.name for s in queueing.admit(rt).sessions] == ["later"]
    props = dict((name, value) for name, _, value in fake.units[later.unit].properties)
    assert props["EnvironmentFiles"] == [(str(saved), True)]
    assert not saved.exists()  # read by the manager at start, then removed


def test_stop_and_kill_cancel_a_queued_session_that_never_runs(
        fake: FakeManager, rt: Runtime) -> None:
    _spawn(rt, "a"), _spawn(rt, "b"), _spawn(rt, "c"), _spawn(rt, "d")
    ids = {s.name: s.id for s in query.list_sessions(rt)}
    assert control.stop(rt, "c").status is Status.STOPPED
    assert control.kill(rt, "d").status is Status.KILLED
    _end(fake, rt, ids["a"])
    assert queueing.admit(rt).sessions == []
    assert len(fake.called("submit_transient")) == 2
    assert _statuses(rt)["c"] == "stopped"


def test_a_queued_session_canceled_blocks_its_dependents_and_keeps_kills_result(
        fake: FakeManager, rt: Runtime) -> None:
    from orch import events

    _spawn(rt, "a"), _spawn(rt, "b")
    queued = spawning.spawn(rt, ["/bin/true"], name="queued", queue="q")
    after = spawning.spawn(rt, ["/bin/true"], name="after", after=[queued.id])
    then = spawning.spawn(rt, ["/bin/true"], name="then", after=[after.id])
    killed = control.kill(rt, "queued", result="not wanted now")
    assert killed.status is Status.KILLED and killed.final_result == "not wanted now"
    records = rt.store.load()
    # Before, they waited on it for ever: `starting`, and `orch wait` never returned.
    assert records[after.id].blocked == f"dependency {queued.id[:8]} (queued) never ran"
    assert records[then.id].blocked == f"dependency {after.id[:8]} (after) never ran"
    assert _statuses(rt)["after"] == _statuses(rt)["then"] == "failed"
    ended = [(e.session_id, e.status) for e in events.read(rt.store.directory)
             if e.event == "ended"]
    assert ended == [(queued.id, "killed"), (after.id, "failed"), (then.id, "failed")]


def test_stopping_a_running_member_starts_the_next(fake: FakeManager, rt: Runtime) -> None:
    for name in "abc":
        _spawn(rt, name)
    ids = {s.name: s.id for s in query.list_sessions(rt)}

    def hook_records_the_stop(unit: str) -> None:
        record_exit(rt.store, ids["a"], rt.store.load()[ids["a"]].invocation_id,
                    Ending(now_iso(), None, "SIGTERM", "success"))

    original = fake.stop_all

    def stop_all(units: list[str]) -> dict[str, str]:
        results = original(units)
        for unit in units:
            hook_records_the_stop(unit)
            del fake.units[unit]
        return results

    fake.stop_all = stop_all  # type: ignore[method-assign,assignment]
    assert control.stop(rt, "a").status is Status.STOPPED
    assert _statuses(rt)["c"] == "running"


def test_a_queue_the_file_lacks_is_refused(fake: FakeManager, rt: Runtime) -> None:
    with pytest.raises(UsageError, match=r"--queue nope: no \[queues.nope\] in .*"
                                         r"\(known queues: q\)"):
        spawning.spawn(rt, ["/bin/true"], queue="nope")
    assert rt.store.load() == {}


def _ends(fake: FakeManager, rt: Runtime, session_id: str, status: int = 0) -> None:
    """What a session's exit hook does as it ends: record it, settle the sessions
    waiting on it, start what the queues can start."""
    record = rt.store.load()[session_id]
    fake.set(record.unit, exited(fake.unit(record.unit), status))
    record_exit(rt.store, session_id, record.invocation_id,
                Ending(now_iso(), status, None, "success" if status == 0 else "exit-code"))
    release_dependents(rt, session_id, after_dir(rt.scope))
    queueing.admit(rt)


def test_a_dependent_in_a_queue_joins_it_once_its_dependencies_have_succeeded(
        fake: FakeManager, rt: Runtime) -> None:
    # Before, --queue (or spawn.queue from the config) and --after were refused together.
    _config("[queues.q]\nmax_running = 1\n")
    dep = started(fake, rt, "dep")
    member = spawning.spawn(rt, ["/bin/sleep", "9"], name="member", queue="q")
    then = spawning.spawn(rt, ["/bin/true"], name="then", queue="q", after=[dep.id])
    assert then.status is Status.QUEUED and then.position is None
    assert fake.called("submit_transient") == [member.unit]  # no unit, no path unit
    assert [e.detail for e in events.read(rt.store.directory) if e.event == "queued"
            ] == ["queue q after its dependencies"]
    _ends(fake, rt, dep.id)
    assert not after_marker(rt.scope, then.id).exists()  # its queue starts it, no marker
    listed = {s.name: s for s in query.list_sessions(rt)}
    assert listed["then"].status is Status.QUEUED and listed["then"].position == 1
    _ends(fake, rt, member.id)  # its slot frees
    assert _statuses(rt)["then"] == "running"
    # A dependency that fails blocks it; one failed already, at its spawn.
    failing = started(fake, rt, "failing")
    blocked = spawning.spawn(rt, ["/bin/true"], name="blocked", queue="q", after=[failing.id])
    _ends(fake, rt, failing.id, status=1)
    record = rt.store.load()[blocked.id]
    assert record.blocked == f"dependency {failing.id[:8]} (failing) did not end successfully"
    assert _statuses(rt)["blocked"] == "failed" and not record.queued
    late = spawning.spawn(rt, ["/bin/true"], name="late", queue="q", after=[failing.id])
    assert late.status is Status.FAILED and rt.store.load()[late.id].blocked is not None
    assert [u for u in fake.called("submit_transient") if "blocked" in str(u)
            or "late" in str(u)] == []


def test_short_memory_holds_the_queue_and_arms_one_timer_to_look_again(
        fake: FakeManager, rt: Runtime) -> None:
    _config("[queues.q]\nmax_running = 2\nmin_memory_available = \"64T\"\n")
    assert _spawn(rt, "a") is Status.QUEUED
    timers = [u for u in fake.called("submit_transient") if str(u).endswith(".timer")]
    assert len(timers) == 1 and str(timers[0]).startswith("orch-wake-queue-q-")
    props = {name: value for name, _, value in fake.units[str(timers[0])].properties}
    assert props["RemainAfterElapse"] is False
    armed = dataclasses.replace(fake.unit(str(timers[0])), active_state="active",
                                sub_state="waiting")
    fake.set(str(timers[0]), armed)
    assert _spawn(rt, "b") is Status.QUEUED
    assert len(fake.called("submit_transient")) == 1  # armed once, not per look
    assert fake.called("memory_available") == ["app.slice", "app.slice"]
    # It fires: its service looks again, still short, and arms the next look (before,
    # its own timer, active while its service ran, read as one armed: none came again).
    fake.set(str(timers[0]), dataclasses.replace(armed, sub_state="running"))
    assert queueing.admit(rt).sessions == []
    timers = [u for u in fake.called("submit_transient") if str(u).endswith(".timer")]
    assert len(timers) == 2 and timers[1] != timers[0]
    # Another state directory's queue of the same name has timers of its own.
    assert timers[1].startswith(queueing.queue_wake_subject(rt, "q").join(("orch-wake-", "-")))
    fake.slice_memory["app.slice"] = 1 << 20  # the kernel has more, the slice less
    _config("[queues.q]\nmax_running = 2\nmin_memory_available = \"1M\"\n")
    assert [s.name for s in queueing.admit(rt).sessions] == ["a", "b"]


def test_a_queue_held_for_memory_says_so_of_those_its_free_slots_would_start(
        fake: FakeManager, rt: Runtime) -> None:
    # Before, `show` said only "#1 in line": nothing told why a free slot stayed free.
    _config("[queues.q]\nmax_running = 2\nmin_memory_available = \"64T\"\n")
    why = "free memory (queue q asks for 64.0T available)"
    running = spawning.spawn(rt, ["/bin/sleep", "100"], name="running")
    first = spawning.spawn(rt, ["/bin/sleep", "100"], name="first", queue="q")
    assert first.status is Status.QUEUED and first.resumes_at is None
    assert first.waiting_for == why  # as the admission that held it decided
    spawning.spawn(rt, ["/bin/sleep", "100"], name="second", queue="q")
    listed = {s.name: s for s in query.list_sessions(rt)}
    assert (listed["first"].position, listed["first"].waiting_for) == (1, why)
    assert (listed["second"].waiting_for, listed["running"].waiting_for) == (why, None)
    # One slot taken: the next look says it of the first alone (the second waits for a
    # slot first); reading it costs ps nothing (no configuration, no free memory).
    held = rt.store.load()
    rt.store.update(lambda s: s.__setitem__(running.id, dataclasses.replace(
        held[running.id], queue="q", admitted_at=now_iso())))
    queueing.admit(rt)
    asked = len(fake.called("memory_available"))
    assert query.result(rt, "first").waiting_for == why
    assert query.result(rt, "second").waiting_for is None
    assert len(fake.called("memory_available")) == asked
    _config("[queues.q]\nmax_running = 3\n")  # no memory asked for: it starts, said no more
    assert [s.name for s in queueing.admit(rt).sessions] == ["first", "second"]
    assert {r.name: r.waiting_for for r in rt.store.load().values()} == \
        {"running": None, "first": None, "second": None}
    events_said = [e.detail for e in events.read(rt.store.directory) if e.event == "queued"]
    assert events_said[0] == f"queue q #1; waiting for {why}"


def test_a_queue_whose_configuration_is_unreadable_at_an_end_looks_again_later(
        fake: FakeManager, rt: Runtime) -> None:
    _config("[queues.q]\nmax_running = 1\n")
    first = spawning.spawn(rt, ["/bin/sleep", "1"], name="first", queue="q")
    assert _spawn(rt, "next") is Status.QUEUED
    _config("[queues.q\nmax_running = 1\n")  # someone edits it as the first ends
    _end(fake, rt, first.id)
    started = queueing.admit(rt)
    assert started.sessions == [] and started.problems[0].startswith("queue q waits: ")
    # Before, nothing looked again: the queue waited for the next spawn into it.
    [timer] = [u for u in fake.called("submit_transient") if str(u).endswith(".timer")]
    assert str(timer).startswith(queueing.queue_wake_subject(rt, "q").join(("orch-wake-", "-")))
    _config("[queues.r]\nmax_running = 1\n")  # readable, without the queue
    fake.set(str(timer), dataclasses.replace(fake.unit(str(timer)), sub_state="running"))
    started = queueing.admit(rt)
    assert started.sessions == [] and "is not in" in started.problems[0]
    assert len([u for u in fake.called("submit_transient") if str(u).endswith(".timer")]) == 2
    _config("[queues.q]\nmax_running = 1\n")  # mended: the timer's look starts it
    assert [s.name for s in queueing.admit(rt).sessions] == ["next"]


def test_a_start_the_manager_refuses_fails_that_session_and_frees_its_slot(
        fake: FakeManager, rt: Runtime) -> None:
    _config("[queues.q]\nmax_running = 1\n")
    first = spawning.spawn(rt, ["/bin/true"], name="first", queue="q")
    bad = spawning.spawn(rt, ["/bin/true"], name="bad", queue="q")
    spawning.spawn(rt, ["/bin/true"], name="good", queue="q")

    def refuse(unit: str, props: object) -> None:
        if unit == bad.unit:
            from orch.errors import OrchError
            raise OrchError("the manager said no")

    fake.on_submit = refuse
    _end(fake, rt, first.id)
    started = queueing.admit(rt)
    assert [s.name for s in started.sessions] == ["good"]
    assert "could not be started from its queue: the manager said no" in started.problems[0]
    assert _statuses(rt)["bad"] == "failed"


def test_a_spawn_whose_program_cannot_run_from_the_queue_says_so(
        fake: FakeManager, rt: Runtime) -> None:
    from tests.unit.fakemanager import not_started

    fake.start = lambda unit: exited(not_started(), 203)
    fake.job_results = {}
    with pytest.raises(SpawnFailed, match="cannot run /bin/true: exec failed"):
        spawning.spawn(rt, ["/bin/true"], queue="q")


def test_recover_queues_again_what_a_crash_left_admitted_and_fills_free_slots(
        fake: FakeManager, isolated_env: Path) -> None:
    from tests.unit.fakemanager import Clock

    clock = Clock(datetime.now().astimezone() - timedelta(minutes=5))
    rt = runtime(fake, isolated_env, clock)
    old = clock().isoformat()
    stranded = put(rt, "stranded", queue="q", admitted_at=old, requested_at=old,
                   created_at=(clock() - timedelta(seconds=1)).isoformat())
    waiting = [put(rt, f"w{n}", queue="q", created_at=(clock() + timedelta(seconds=n)).isoformat())
               for n in range(3)]
    clock.now = datetime.now().astimezone()
    report = recover.recover(rt)
    assert report.outcomes[stranded.id] is Outcome.RESTARTED
    assert [report.outcomes[w.id] for w in waiting] == [
        Outcome.RESTARTED, Outcome.QUEUED, Outcome.QUEUED]
    assert _statuses(rt) == {"stranded": "running", "w0": "running", "w1": "queued",
                             "w2": "queued"}
    again = recover.recover(rt)  # idempotent: nothing started twice
    assert len(fake.called("submit_transient")) == 2 and again.errors == []


def test_reap_all_removes_queued_sessions_without_starting_them(
        fake: FakeManager, rt: Runtime) -> None:
    for name in "abc":
        _spawn(rt, name)
    reaped = reap.reap(rt, everything=True, older_than=0)
    assert sorted(s.name for s in reaped) == ["a", "b", "c"]
    assert rt.store.load() == {} and len(fake.called("submit_transient")) == 2


def test_a_member_a_power_cut_ended_unrecorded_frees_its_slot_at_once(
        fake: FakeManager, rt: Runtime) -> None:
    """Confirmed started, no end recorded, no unit: cut off (recover calls it lost). Its
    slot is free even though it started a moment ago; one started but not yet confirmed
    keeps its slot."""
    _config("[queues.q]\nmax_running = 1\n")
    now = rt.now_iso()
    put(rt, "cut", queue="q", admitted_at=now, requested_at=now, invocation_id="c" * 32)
    waiting = put(rt, "next", queue="q")
    assert [s.id for s in queueing.admit(rt).sessions] == [waiting.id]
    put(rt, "flight", queue="q", admitted_at=now, requested_at=now)  # not confirmed yet
    fake.units.clear()  # "next" is cut off too
    put(rt, "later", queue="q")
    assert queueing.admit(rt).sessions == []  # "flight" holds the one slot


def test_a_queued_session_whose_directory_is_gone_fails_instead_of_running_elsewhere(
        fake: FakeManager, rt: Runtime, tmp_path: Path) -> None:
    _config("[queues.q]\nmax_running = 1\n")
    first = spawning.spawn(rt, ["/bin/sleep", "9"], name="first", queue="q")
    work = tmp_path / "work"
    work.mkdir()
    waiting = spawning.spawn(rt, ["/bin/true"], name="later", queue="q", cwd=str(work))
    work.rmdir()
    _end(fake, rt, first.id)
    started = queueing.admit(rt)
    assert started.sessions == [] and fake.called("submit_transient") == [first.unit]
    assert rt.store.load()[waiting.id].blocked == (
        f"could not be started from its queue: cannot run /bin/true: its working "
        f"directory {work} no longer exists")
    assert _statuses(rt)["later"] == "failed"


def test_a_queued_sessions_lost_secrets_are_never_taken_from_whoever_admits_it(
        fake: FakeManager, rt: Runtime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _config("[queues.q]\nmax_running = 1\n")
    first = spawning.spawn(rt, ["/bin/sleep", "9"], name="first", queue="q")
    env_file = tmp_path / "b.env"
    env_file.write_text("FROM_FILE=b\n")
    monkeypatch.setenv("QSECRET", "the spawner's")
    by_var = spawning.spawn(rt, ["/bin/true"], name="by-var", queue="q",
                            secret_env=["QSECRET"])
    by_file = spawning.spawn(rt, ["/bin/true"], name="by-file", queue="q",
                             env_files=[str(env_file)])
    for waiting in (by_var, by_file):  # as a reboot empties the runtime directory
        (secrets.secrets_dir(rt.scope) / f"{waiting.id}.env").unlink()
    # The admitter's environment (an ending session's hook) holds another's value: before,
    # the queued session started with it.
    monkeypatch.setenv("QSECRET", "another session's")
    given: dict[str, dict[str, str]] = {}

    def read_secrets(unit: str, props: list[tuple[str, str, object]]) -> None:
        for name, _, value in props:
            if name == "EnvironmentFiles":
                given[unit] = secrets.parse_env_file(value[0][0])  # type: ignore[index]

    fake.on_submit = read_secrets  # type: ignore[assignment]
    _end(fake, rt, first.id)
    started = queueing.admit(rt)
    assert [s.name for s in started.sessions] == ["by-file"]
    assert given == {by_file.unit: {"FROM_FILE": "b"}}  # its own file, read again
    assert rt.store.load()[by_var.id].blocked == (
        "could not be started from its queue: its secret variables (QSECRET) were lost "
        "with its saved copy (a reboot); spawn it again")
