"""The query use cases over a fake manager: listing, show, find, logs and wait."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from orch.cgroups import Accounting
from orch.errors import ManagerUnreachable, NotFound, UsageError
from orch.runtime import Runtime
from orch.scope import Scope
from orch.session import Intent, Record, Status, usec_to_iso
from orch.usecases import query
from orch.usecases.common import view
from tests.unit.fakemanager import (
    FakeManager,
    exited,
    put,
    running,
    runtime,
    started,
    unreachable,
)


def test_a_session_running_as_recorded_costs_no_call_of_its_own(fake: FakeManager,
                                                                rt: Runtime) -> None:
    record = started(fake, rt, "a")
    [session] = query.list_sessions(rt)
    assert (session.id, session.status) == (record.id, Status.RUNNING)
    assert fake.called("view") == []


@pytest.mark.parametrize("fields", [
    {}, {"tags": ["a"], "after": ["b" * 36], "persistent": True},
    {"history": [{"invocation_id": "c" * 32, "status": "failed"}], "restarts": 1},
    {"options": {"memory_max": 5}, "usage": {"input_tokens": 1}, "cost_usd": 0.5},
])
def test_running_as_recorded_is_the_full_view_of_that_unit(
        fake: FakeManager, rt: Runtime, fields: dict[str, object]) -> None:
    # As spawn confirms it: the start too is the unit's.
    record = started(fake, rt, "a", started_at=usec_to_iso(running().exec_main_start_usec),
                     **fields)
    assert query.running_as_recorded(record, ("loaded", "active", "running", 0))
    [listed] = query.list_sessions(rt)
    assert listed == view(record, fake.unit(record.unit), pid_known=True)
    assert listed.status is Status.RUNNING


@pytest.mark.parametrize("states", [("loaded", "active", "running", 7),
                                    ("loaded", "activating", "start", 0),
                                    ("loaded", "active", "exited", 0)])
def test_a_unit_in_other_states_is_read_in_full(fake: FakeManager, rt: Runtime,
                                                states: tuple[str, str, str, int]) -> None:
    record = started(fake, rt, "a")
    assert not query.running_as_recorded(record, states)
    for other in (dataclasses.replace(record, intent=Intent.STOP),
                  dataclasses.replace(record, result="success"),
                  dataclasses.replace(record, blocked="b"),
                  dataclasses.replace(record, invocation_id=None),
                  dataclasses.replace(record, main_pid=None)):
        assert not query.running_as_recorded(other, ("loaded", "active", "running", 0))


def test_the_listing_reads_what_the_record_does_not_say(fake: FakeManager,
                                                      rt: Runtime) -> None:
    ended = started(fake, rt, "ended")
    fake.set(ended.unit, exited(fake.unit(ended.unit), 2))
    gone = put(rt, "gone", invocation_id="b" * 32)
    listed = {s.id: s.status for s in query.list_sessions(rt)}
    assert listed == {ended.id: Status.FAILED, gone.id: Status.LOST}
    assert fake.called("view") == [ended.unit]


def test_the_listing_filters_and_sorts_newest_first(fake: FakeManager, rt: Runtime) -> None:
    old = started(fake, rt, "old", tags=["x"], created_at="2024-01-01T00:00:00+00:00")
    new = started(fake, rt, "new", tags=["x", "y"], created_at="2025-01-01T00:00:00+00:00")
    put(rt, "other", created_at="2023-01-01T00:00:00+00:00", requested_at=None)
    assert [s.id for s in query.list_sessions(rt, tags=["x"])] == [new.id, old.id]
    assert [s.id for s in query.list_sessions(rt, tags=["x", "y"])] == [new.id]  # every one
    assert [s.id for s in query.list_sessions(rt, tags=["y", "z"])] == []
    fake.set(old.unit, exited(fake.unit(old.unit)))
    assert [s.id for s in query.list_sessions(rt, running=True)] == [new.id]


def test_each_session_is_made_when_it_is_asked_for(fake: FakeManager, rt: Runtime) -> None:
    # `ps --json` writes each as it comes: a thousand are never held at once.
    old = started(fake, rt, "old", created_at="2024-01-01T00:00:00+00:00")
    new = started(fake, rt, "new", created_at="2025-01-01T00:00:00+00:00")
    fake.set(old.unit, exited(fake.unit(old.unit)))
    fake.set(new.unit, exited(fake.unit(new.unit)))
    sessions = query.each_session(rt)
    assert fake.called("view") == []
    assert next(sessions).id == new.id and fake.called("view") == [new.unit]
    assert [s.id for s in sessions] == [old.id]
    assert fake.called("view") == [new.unit, old.unit]
    assert query.list_sessions(rt) == list(query.each_session(rt))


def test_an_empty_listing_still_needs_a_manager(isolated_env: Path) -> None:
    rt = Runtime(Scope.USER, runtime(FakeManager(), isolated_env).store, connect=unreachable)
    with pytest.raises(ManagerUnreachable):
        query.list_sessions(rt)
    fake = FakeManager()
    assert query.list_sessions(runtime(fake, isolated_env)) == []
    assert fake.called("loaded") == []


def test_find_and_show(fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    record = started(fake, rt, "findme")
    assert query.find_record(rt, "findme") == record
    assert fake.calls == []  # found without the manager
    assert query.result(rt, record.id[:8]).status is Status.RUNNING
    fake.set(record.unit, exited(fake.unit(record.unit)))
    assert query.result(rt, record.unit).status is Status.EXITED
    with pytest.raises(NotFound):
        query.find_record(rt, "nobody")
    monkeypatch.delenv("ORCH_SESSION_ID", raising=False)
    with pytest.raises(NotFound, match="ORCH_SESSION_ID"):
        query.find_record(rt, "self")
    monkeypatch.setenv("ORCH_SESSION_ID", record.id)
    assert query.find_record(rt, "self") == record


def test_an_ended_agents_result_is_read_once_and_recorded(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import journal

    record = started(fake, rt, "agent", provider="claude", agent={"prompt": "p"})
    fake.set(record.unit, exited(fake.unit(record.unit)))
    line = ('{"type":"result","subtype":"success","is_error":false,"result":"42",'
            '"session_id":"conv-9","usage":{"input_tokens":1,"output_tokens":2}}')
    reads = []

    def output_lines(record: Record, complete: Callable[[list[str]], bool],
                     grace: float) -> list[str]:
        reads.append(grace)
        return [line]

    monkeypatch.setattr(journal, "output_lines", output_lines)
    shown = query.result(rt, record.id)
    assert (shown.final_result, shown.provider_session_id) == ("42", "conv-9")
    assert reads == [3.0]  # it ended just now: its last lines get time to arrive
    assert query.result(rt, record.id).final_result == "42" and len(reads) == 1


def test_show_gives_the_cost_ps_gives_summed_over_every_run(
        fake: FakeManager, rt: Runtime) -> None:
    earlier = {"invocation_id": "e" * 32, "started_at": None, "ended_at": None,
               "status": "exited", "exit_code": 0, "exit_signal": None,
               "result": "success", "usage": {"output_tokens": 5}, "cost_usd": 0.25}
    record = started(fake, rt, "resumed", provider="claude", agent={"prompt": "p"},
                     history=[earlier], restarts=1, final_result="again",
                     usage={"output_tokens": 2}, cost_usd=0.5)
    fake.set(record.unit, exited(fake.unit(record.unit)))
    [listed] = query.list_sessions(rt)
    shown = query.result(rt, record.id)
    # Before, show (and the API's one session) gave the last run's alone: 0.5 and 2.
    assert (shown.cost_usd, shown.usage) == (listed.cost_usd, listed.usage) == \
        (0.75, {"output_tokens": 7})


def test_logs_read_the_records_journal(fake: FakeManager, rt: Runtime,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import journal

    record = started(fake, rt, "talker")
    argv = query.logs_command(rt, "talker", lines=5, follow=True)
    assert argv[0] == "journalctl" and "--follow" in argv
    monkeypatch.setattr(journal, "read_logs",
                        lambda record, **kw: f"{record.id} {kw['output']}")
    assert query.logs(rt, "talker") == f"{record.id} cat"
    assert fake.calls == []


def test_follow_logs_writes_until_wait_sees_the_end(fake: FakeManager, rt: Runtime,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import journal

    record = started(fake, rt, "talker")
    fake.events = [lambda m: m.set(record.unit, exited(m.unit(record.unit)))]
    written: list[str] = []
    threads: list[str] = []

    def follow(record: Record, write: Callable[[str], object], end: journal.SessionEnd,
               **kw: object) -> None:
        write("line\n")
        threads.append(threading.current_thread().name)

    monkeypatch.setattr(journal, "follow_logs", follow)
    outcome = query.follow_logs(rt, "talker", written.append)
    assert written == ["line\n"] and outcome.succeeded and not outcome.timed_out
    assert threads == ["MainThread"]
    assert fake.called("wait_until") == [[record.unit]]


def test_follow_logs_raises_what_wait_raised(fake: FakeManager, rt: Runtime,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import journal

    started(fake, rt, "talker")

    def broken(units: object, done: object, timeout: object) -> bool:
        raise ManagerUnreachable("gone away")

    monkeypatch.setattr(fake, "wait_until", broken)
    monkeypatch.setattr(journal, "follow_logs", lambda *args, **kw: None)
    with pytest.raises(ManagerUnreachable, match="gone away"):
        query.follow_logs(rt, "talker", print)


def test_wait_returns_at_once_for_ended_sessions(fake: FakeManager, rt: Runtime) -> None:
    record = started(fake, rt, "done")
    fake.set(record.unit, exited(fake.unit(record.unit)))
    outcome = query.wait(rt, ["done"])
    assert outcome.succeeded and not outcome.timed_out


def test_wait_follows_the_managers_changes_until_all_or_any_ended(
        fake: FakeManager, rt: Runtime) -> None:
    a, b = started(fake, rt, "a"), started(fake, rt, "b")
    fake.events = [lambda m: m.set(a.unit, exited(m.unit(a.unit), 1)),
                   lambda m: m.set(b.unit, exited(m.unit(b.unit)))]
    outcome = query.wait(rt, ["a", "b", a.id])
    assert [s.status for s in outcome.sessions] == [Status.FAILED, Status.EXITED]
    assert not outcome.succeeded and fake.events == []
    c, d = started(fake, rt, "c"), started(fake, rt, "d")
    fake.events = [lambda m: m.set(d.unit, exited(m.unit(d.unit))),
                   lambda m: m.set(c.unit, exited(m.unit(c.unit)))]
    outcome = query.wait(rt, ["c", "d"], any_=True)
    assert outcome.succeeded and len(fake.events) == 1


def test_wait_times_out_and_says_so(fake: FakeManager, rt: Runtime) -> None:
    started(fake, rt, "forever")
    outcome = query.wait(rt, ["forever"], timeout=0)
    assert outcome.timed_out and not outcome.succeeded
    assert [s.status for s in outcome.sessions] == [Status.RUNNING]


def test_wait_refuses_bad_requests_before_waiting(fake: FakeManager, rt: Runtime) -> None:
    started(fake, rt, "x")
    with pytest.raises(UsageError):
        query.wait(rt, [])
    with pytest.raises(UsageError):
        query.wait(rt, ["x"], timeout=-1)
    with pytest.raises(NotFound):
        query.wait(rt, ["x", "nobody"])
    assert fake.calls == []


def test_wait_watches_the_dependencies_units_too(fake: FakeManager, rt: Runtime) -> None:
    first = started(fake, rt, "first")
    second = put(rt, "second", after=[first.id])
    query.wait(rt, ["second"], timeout=0)
    assert fake.called("wait_until") == [[second.unit, first.unit]]


# --- what sessions use (their cgroups) -------------------------------------------------

def _cgroup_tree(tmp_path: Path, units: dict[str, int]) -> Accounting:
    """A unified cgroup hierarchy under TMP_PATH whose app.slice holds UNITS, each with
    that much memory in use and this test's process in it."""
    top = tmp_path / "cgroup"
    top.mkdir()
    (top / "cgroup.controllers").write_text("memory pids\n")
    for unit, memory in units.items():
        cgroup = top / "user.slice" / "app.slice" / unit
        cgroup.mkdir(parents=True)
        (cgroup / "memory.current").write_text(f"{memory}\n")
        (cgroup / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return Accounting(f"1 1 0:1 / {top} rw - cgroup2 cgroup2 rw\n")


def test_the_listing_reads_each_running_units_cgroup_in_its_slice(
        fake: FakeManager, isolated_env: Path, tmp_path: Path) -> None:
    rt0 = runtime(fake, isolated_env)
    a, b = started(fake, rt0, "a"), started(fake, rt0, "b")
    ended = started(fake, rt0, "ended")
    fake.set(ended.unit, exited(fake.unit(ended.unit)))
    fake.control_groups["app.slice"] = "/user.slice/app.slice"
    accounting = _cgroup_tree(tmp_path, {a.unit: 4096, b.unit: 8192, ended.unit: 1})
    rt = runtime(fake, isolated_env, accounting=accounting)
    listed = {s.name: s.memory_current for s in query.list_sessions(rt)}
    assert listed == {"a": 4096, "b": 8192, "ended": None}  # an ended one uses nothing
    assert fake.called("control_group") == ["app.slice"]  # once a listing
    shown = query.result(rt, "a")
    assert shown.memory_current == 4096 and shown.cpu_usage_nsec is None  # not accounted
    assert [p["pid"] for p in shown.processes or []] == [os.getpid()]
    assert query.result(rt, "ended").processes is None


@pytest.mark.parametrize("reading", ["wait", "recover"])
def test_wait_and_recover_give_what_a_session_still_running_uses(
        fake: FakeManager, isolated_env: Path, tmp_path: Path, reading: str) -> None:
    # Before, `wait --json` and `recover --json` said null for a running session, where
    # ps gave its figures.
    from orch.usecases.recover import recover

    rt0 = runtime(fake, isolated_env)
    a = started(fake, rt0, "a")
    fake.control_groups["app.slice"] = "/user.slice/app.slice"
    rt = runtime(fake, isolated_env, accounting=_cgroup_tree(tmp_path, {a.unit: 4096}))
    [session] = (query.wait(rt, ["a"], timeout=0) if reading == "wait" else recover(rt)).sessions
    assert (session.status, session.memory_current) == (Status.RUNNING, 4096)


def test_a_slice_without_a_cgroup_leaves_usage_unknown(fake: FakeManager,
                                                      rt: Runtime) -> None:
    started(fake, rt, "a")
    [session] = query.list_sessions(rt)
    assert session.memory_current is None and session.tasks_current is None
    assert query.result(rt, "a").processes == []


def test_a_crowded_slice_is_read_ahead_and_a_newer_unit_as_the_listing_goes(
        fake: FakeManager, isolated_env: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import aside
    from orch.usecases import measure

    monkeypatch.setattr(measure, "READ_AHEAD_MIN", 2)
    monkeypatch.setattr(aside, "_may_fork", lambda: False)  # read at once: no race below
    rt0 = runtime(fake, isolated_env)
    a, b, late = (started(fake, rt0, name) for name in ("a", "b", "late"))
    fake.control_groups["app.slice"] = "/user.slice/app.slice"
    accounting = _cgroup_tree(tmp_path, {a.unit: 4096, b.unit: 8192})
    slice_dir = tmp_path / "cgroup" / "user.slice" / "app.slice"
    with measure.Meter(runtime(fake, isolated_env, accounting=accounting)) as meter:
        meter.read_ahead(Scope.USER)
        (slice_dir / a.unit / "memory.current").write_text("1\n")  # after the read
        (slice_dir / late.unit).mkdir()
        (slice_dir / late.unit / "memory.current").write_text("512\n")
        assert [meter.usage(r).memory_current for r in (a, b, late)] == [4096, 8192, 512]
    assert fake.called("control_group") == ["app.slice"]


def test_a_slice_of_few_units_is_not_read_ahead(
        fake: FakeManager, isolated_env: Path, tmp_path: Path) -> None:
    from orch.usecases import measure

    rt0 = runtime(fake, isolated_env)
    a = started(fake, rt0, "a")
    fake.control_groups["app.slice"] = "/user.slice/app.slice"
    accounting = _cgroup_tree(tmp_path, {a.unit: 4096})
    with measure.Meter(runtime(fake, isolated_env, accounting=accounting)) as meter:
        meter.read_ahead(Scope.USER)
        (tmp_path / "cgroup" / "user.slice" / "app.slice" / a.unit / "memory.current"
         ).write_text("1\n")
        assert meter.usage(a).memory_current == 1  # read as the listing goes


def test_a_slice_read_ahead_in_a_forked_child_reads_the_same(
        fake: FakeManager, isolated_env: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import aside
    from orch.usecases import measure

    monkeypatch.setattr(measure, "READ_AHEAD_MIN", 2)
    monkeypatch.setattr(aside, "_may_fork", lambda: True)
    rt0 = runtime(fake, isolated_env)
    a, b = started(fake, rt0, "a"), started(fake, rt0, "b")
    fake.control_groups["app.slice"] = "/user.slice/app.slice"
    rt = runtime(fake, isolated_env, accounting=_cgroup_tree(tmp_path, {a.unit: 1, b.unit: 2}))
    assert sorted(s.memory_current for s in query.list_sessions(rt)) == [1, 2]


def test_a_programs_every_result_is_what_result_gives(fake: FakeManager, rt: Runtime) -> None:
    # No turns for a program (before, --all gave its whole output as "turn 1" where
    # `orch result` said there was no result); what `orch kill` recorded, if anything.
    plain = started(fake, rt, "plain")
    assert query.turn_results(rt, "plain") == []
    rt.store.update(lambda s: s.__setitem__(plain.id, dataclasses.replace(
        s[plain.id], final_result="gave up")))
    assert [r.final_result for r in query.turn_results(rt, "plain")] == ["gave up"]


def test_the_events_of_a_reaped_session_are_found_by_its_id_prefix_or_name(
        fake: FakeManager, rt: Runtime) -> None:
    from orch.errors import Ambiguous
    from orch.usecases import spawn as spawning

    kept = spawning.spawn(rt, ["/bin/true"], name="kept")
    gone = [spawning.spawn(rt, ["/bin/true"], name=n) for n in ("gone", "twin", "twin")]
    rt.store.update(lambda s: [s.pop(g.id) for g in gone])  # reaped
    # Before, each was refused as "no session", though its events are in the log.
    for ref in (gone[0].id, gone[0].id[:8], "gone"):
        found, _, chosen = query.events(rt, [ref], None)
        assert chosen == {gone[0].id} and [e.event for e in found] == ["spawned", "started"]
    assert query.events(rt, ["kept"], None)[2] == {kept.id}  # a record first
    with pytest.raises(Ambiguous, match="2 sessions are named 'twin'"):
        query.events(rt, ["twin"], None)
    with pytest.raises(NotFound):
        query.events(rt, ["nothing"], None)
