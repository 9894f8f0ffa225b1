"""orch.queues: the pure admission decisions. Order, slots, memory, liveness, cancel."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from orch import queues
from orch.queues import QueueLimits
from orch.session import Intent, Record, Status, derive_status

NOW = "2026-12-06T12:00:00.000000+00:00"


def _record(n: int, queue: str | None = "q", **fields: object) -> Record:
    record = Record(id=f"{n:08x}-0000-4000-8000-000000000000", name=f"s{n}",
                    unit=f"orch-s{n}-{n:08x}.service", scope="user", argv=["/bin/true"],
                    cwd="/", created_at=f"2026-12-06T11:00:{n:02d}.000000+00:00", queue=queue)
    return dataclasses.replace(record, **fields)  # type: ignore[arg-type]


def _sessions(*records: Record) -> dict[str, Record]:
    return {r.id: r for r in records}


def _live(record: Record) -> bool:
    return True


def _no_memory_asked() -> int | None:
    raise AssertionError("free memory was read with no memory limit set")


def test_first_come_first_served_within_a_priority_and_higher_priority_first() -> None:
    a, b, c = _record(1), _record(2, priority=5), _record(3)
    sessions = _sessions(c, b, a)
    assert [r.id for r in queues.order(sessions, "q")] == [b.id, a.id, c.id]
    assert queues.positions(sessions) == {b.id: 1, a.id: 2, c.id: 3}


def test_only_free_slots_are_given_and_they_are_marked_admitted() -> None:
    running = _record(1, admitted_at=NOW, invocation_id="i1")
    waiting = [_record(n) for n in range(2, 6)]
    sessions = _sessions(running, *waiting)
    decision = queues.admit(sessions, "q", QueueLimits(max_running=3), _no_memory_asked,
                            _live, NOW)
    assert [r.id for r in decision.admitted] == [waiting[0].id, waiting[1].id]
    assert all(sessions[r.id].admitted_at == NOW and not sessions[r.id].queued
               for r in decision.admitted)
    assert [r.id for r in queues.order(sessions, "q")] == [w.id for w in waiting[2:]]
    again = queues.admit(sessions, "q", QueueLimits(max_running=3), _no_memory_asked,
                         _live, NOW)
    assert again.admitted == []  # the slots are taken by those just admitted


def test_other_queues_and_ended_or_dead_members_take_no_slot() -> None:
    ended = _record(1, admitted_at=NOW, invocation_id="i1", result="success")
    elsewhere = _record(2, queue="other", admitted_at=NOW, invocation_id="i2")
    cut_off = _record(3, admitted_at=NOW, invocation_id="i3")  # a power cut: no unit
    waiting = _record(4)
    sessions = _sessions(ended, elsewhere, cut_off, waiting)
    decision = queues.admit(sessions, "q", QueueLimits(max_running=1), _no_memory_asked,
                            lambda r: r.id not in (cut_off.id, ended.id), NOW)
    assert [r.id for r in decision.admitted] == [waiting.id]


def test_a_member_its_unit_runs_again_keeps_its_slot_unless_orch_ended_it() -> None:
    # Its last run's end recorded, and its unit runs it again (Restart=, systemctl
    # restart): live, as the caller's listing says. Stopped by orch: no run comes after.
    again = _record(1, admitted_at=NOW, invocation_id="i1", result="exit-code")
    stopped = _record(2, admitted_at=NOW, invocation_id="i2", result="success",
                      intent=Intent.STOP)
    waiting = _record(3)
    for held, expected in ((again, []), (stopped, [waiting.id])):
        decision = queues.admit(_sessions(held, waiting), "q", QueueLimits(max_running=1),
                                _no_memory_asked, lambda r: True, NOW)
        assert [r.id for r in decision.admitted] == expected


def test_too_little_memory_admits_none_and_says_so() -> None:
    sessions = _sessions(_record(1))
    limits = QueueLimits(max_running=2, min_memory_available=2 << 30)
    short = queues.admit(sessions, "q", limits, lambda: 1 << 30, _live, NOW)
    assert short.admitted == [] and short.memory_short
    assert queues.admit(sessions, "q", limits, lambda: None, _live, NOW).admitted
    full = queues.admit(_sessions(_record(1, admitted_at=NOW), _record(2)), "q",
                        QueueLimits(max_running=1, min_memory_available=1),
                        _no_memory_asked, _live, NOW)
    assert full == queues.Admission([])  # no slot: memory is not even read


def test_a_memory_hold_is_said_of_those_the_free_slots_would_start_in_order() -> None:
    later = "2026-12-06T18:00:00.000000+00:00"
    limited = _record(9, queue=None, provider="claude", wait_kind="usage-limit",
                      resumes_at=later, waiting_for="usage limit (five_hour)")
    # s1 waits for claude's limit: it is passed over, as admit passes it over.
    sessions = _sessions(limited, _record(1, provider="claude"), _record(2), _record(3),
                         _record(4))
    limits = QueueLimits(max_running=3, min_memory_available=8 << 30)
    running = _record(5, admitted_at=NOW)  # takes one of the three slots
    sessions[running.id] = running
    decided = queues.admit(sessions, "q", limits, lambda: 1 << 30, _live, NOW)
    assert decided.admitted == [] and decided.memory_short
    why = "free memory (queue q asks for 8.0G available)"
    said = {sessions[i].name: line for i, line in queues.in_line(sessions, NOW).items()}
    assert said["s1"] == queues.InLine(1, later, "the usage limit of claude")
    assert (said["s2"], said["s3"]) == (queues.InLine(2, None, why), queues.InLine(3, None, why))
    assert said["s4"] == queues.InLine(4)  # beyond the free slots: waits for one first
    # Memory enough: the next two start, and nothing holds the one left.
    decided = queues.admit(sessions, "q", limits, lambda: 9 << 30, _live, NOW)
    assert [r.name for r in decided.admitted] == ["s2", "s3"]
    assert [sessions[_record(n).id].waiting_for for n in (2, 3, 4)] == [None, None, None]


def test_cancel_stops_a_waiting_session_before_it_ran_and_nothing_else() -> None:
    waiting, admitted = _record(1), _record(2, admitted_at=NOW)
    sessions = _sessions(waiting, admitted)
    cancelled = queues.cancel(sessions, waiting.id, NOW, Intent.STOP)
    assert cancelled is not None and not cancelled.queued
    assert derive_status(cancelled, None, main_alive=False) is Status.STOPPED
    assert queues.cancel(sessions, admitted.id, NOW, Intent.STOP) is None
    assert queues.cancel(sessions, "gone", NOW, Intent.KILL) is None
    killed = queues.cancel(_sessions(waiting), waiting.id, NOW, Intent.KILL)
    assert killed is not None
    assert derive_status(killed, None, main_alive=False) is Status.KILLED


def test_a_queued_record_reads_queued_and_a_stranded_one_is_known() -> None:
    assert derive_status(_record(1), None, main_alive=False) is Status.QUEUED
    assert queues.stranded(_record(1, admitted_at=NOW))
    assert not queues.stranded(_record(1, admitted_at=NOW, invocation_id="i"))
    assert not queues.stranded(_record(1, queue=None, admitted_at=NOW))
    assert queues.queues_with_waiting(_sessions(_record(1, queue="b"), _record(2, queue="a"),
                                                _record(3, queue=None))) == ["a", "b"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, 2), st.booleans(), st.booleans()), max_size=12),
       st.integers(1, 4))
def test_admission_never_exceeds_the_cap_and_leaves_no_slot_idle(
        members: list[tuple[int, bool, bool]], cap: int) -> None:
    """Whatever the queue holds (PRIORITY, already admitted?, ended?), one decision fills
    exactly the free slots, highest priority first, and a second admits nothing."""
    records = []
    for n, (priority, admitted, ended) in enumerate(members):
        records.append(_record(n, priority=priority, admitted_at=NOW if admitted else None,
                               result="success" if ended and admitted else None))
    sessions = _sessions(*records)
    before = queues.order(sessions, "q")
    running = sum(queues.holds_slot(r, _live) for r in records)
    decision = queues.admit(sessions, "q", QueueLimits(max_running=cap), _no_memory_asked,
                            _live, NOW)
    after = sum(queues.holds_slot(r, _live) for r in sessions.values())
    assert after == max(running, min(cap, running + len(before)))
    assert decision.admitted == [sessions[r.id] for r in before[:len(decision.admitted)]]
    assert queues.admit(sessions, "q", QueueLimits(max_running=cap), _no_memory_asked,
                        _live, NOW).admitted == []
