"""--after's policy: what a dependency's end releases or blocks."""

from __future__ import annotations

import dataclasses

from orch.dependencies import (
    after_end,
    block,
    cancel,
    settle,
    telling_blocked,
    verdict,
    waiting,
)
from orch.session import Ending, Intent, Record

OK = Ending("2025-01-01T00:00:01+00:00", 0, None, "success")
BAD = Ending("2025-01-01T00:00:01+00:00", 3, None, "exit-code")


def _record(sid: str, *after: str, ending: Ending | None = None, **changes: object) -> Record:
    record = Record(id=sid, name=sid, unit=f"orch-{sid}-00000000.service", scope="user",
                    argv=["x"], cwd="/", created_at="2025-01-01T00:00:00+00:00",
                    after=list(after), invocation_id="i" * 32 if ending else None)
    if ending is not None:
        record = record.with_ending(ending, record.invocation_id)
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_verdicts() -> None:
    assert verdict(_record("a", ending=OK)) is True
    assert verdict(_record("a", ending=BAD)) is False
    assert verdict(_record("a")) is None
    assert verdict(None) is False
    assert verdict(_record("a", ending=OK, intent=Intent.STOP)) is False
    assert verdict(_record("a", ending=OK, agent_error=True)) is False
    # An agent the API failed waits to run again (limited, retrying): not its end yet.
    # Before, its failed run blocked its dependents, though it went on to succeed.
    waits = _record("a", ending=BAD, resumes_at="2025-01-01T01:00:00+00:00")
    assert verdict(waits) is None
    assert verdict(dataclasses.replace(waits, intent=Intent.STOP)) is False


def test_released_only_when_the_last_dependency_succeeds() -> None:
    sessions = {"a": _record("a", ending=OK), "b": _record("b"), "c": _record("c", "a", "b")}
    assert after_end(sessions, "a") == []
    sessions["b"] = _record("b", ending=OK)
    assert after_end(sessions, "b") == ["c"]
    assert sessions["c"].blocked is None


def test_a_failure_blocks_the_chain_and_says_why() -> None:
    sessions = {"a": _record("a", ending=BAD), "b": _record("b", "a"), "c": _record("c", "b")}
    assert after_end(sessions, "a") == []
    assert sessions["b"].blocked == "dependency a (a) did not end successfully"
    assert sessions["c"].blocked == "dependency b (b) never ran"
    assert not waiting(sessions["b"]) and not waiting(sessions["c"])
    # Ended now, never having run: when is told (before: ended_at null, and no age).
    assert sessions["b"].ended_at and sessions["c"].ended_at
    assert sessions["b"].ended_at <= sessions["c"].ended_at


def test_a_vanished_dependency_blocks() -> None:
    sessions = {"c": _record("c", "gone")}
    assert settle(sessions, "c", {}) == []
    assert sessions["c"].blocked == "dependency gone is gone"


def test_settle_uses_live_verdicts_over_the_records() -> None:
    sessions = {"a": _record("a"), "c": _record("c", "a")}
    assert settle(sessions, "c", {"a": None}) == []
    assert settle(sessions, "c", {"a": True}) == ["c"]


def test_a_started_or_blocked_session_is_not_settled_again() -> None:
    started = _record("c", "a", ending=OK)
    sessions = {"a": _record("a", ending=OK), "c": started}
    assert after_end(sessions, "a") == [] and sessions["c"] == started
    assert block({"c": started}, "c", "why") == []


def test_wait_watches_the_units_of_every_dependency_too() -> None:
    """A blocked session's own unit never changes: `wait` hears of the block through
    the end of the dependency whose exit hook recorded it, however far up the chain."""
    from orch.api import _with_dependencies

    records = {r.id: r for r in (_record("a"), _record("b", "a"), _record("c", "b"),
                                 _record("d", "b", "a", "gone"), _record("e"))}
    assert _with_dependencies(["c"], records) == ["c", "b", "a"]
    assert _with_dependencies(["d", "e"], records) == ["d", "e", "b", "a"]
    assert _with_dependencies(["a"], records) == ["a"]


def test_cancel_ends_a_waiting_session_before_it_ran_and_blocks_its_chain() -> None:
    sessions = {"a": _record("a"), "b": _record("b", "a"), "c": _record("c", "b")}
    cancelled = cancel(sessions, "b", "2025-01-01T00:00:02+00:00", Intent.KILL, "not needed")
    assert cancelled is sessions["b"] and cancelled.intent is Intent.KILL
    assert (cancelled.ended_at, cancelled.result, cancelled.final_result) == \
        ("2025-01-01T00:00:02+00:00", "canceled", "not needed")
    assert cancelled.blocked is None  # stopped or killed, not failed
    assert sessions["c"].blocked == "dependency b (b) never ran"
    assert after_end(sessions, "a") == []  # its dependency's end no longer releases it
    assert verdict(cancelled) is False


def test_cancel_leaves_what_no_longer_waits() -> None:
    started = _record("b", "a", ending=OK)
    assert cancel({"b": started}, "b", "now", Intent.STOP) is None
    assert cancel({}, "b", "now", Intent.STOP) is None


def test_what_a_change_blocked_is_told() -> None:
    sessions = {"a": _record("a", ending=BAD), "b": _record("b", "a"), "c": _record("c", "b"),
                "d": _record("d", "x", blocked="before")}
    released, blocked = telling_blocked(lambda s: after_end(s, "a"))(sessions)
    assert released == [] and [r.id for r in blocked] == ["b", "c"]  # not d: blocked before
    assert blocked[0] is sessions["b"] and blocked[1].blocked == "dependency b (b) never ran"
