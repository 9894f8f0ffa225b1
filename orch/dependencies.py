"""`--after`: which waiting sessions a session's end releases or blocks. Pure.

A dependent waits, its unit loaded but not started, behind a path unit that starts it
when its marker file is written. The dependencies' own exit hooks decide: when the last
of a dependent's dependencies has succeeded, its marker is written; when one fails, the
dependent is blocked (it never runs, and says why), and so are the sessions waiting on it.
"""

from __future__ import annotations

from orch.frozen import replace
from orch.session import Intent, Record, Status, ended_status, now_iso

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing's import would cost every session's exit hook 2 ms
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

Sessions = dict[str, Record]


def verdict(record: Record | None) -> bool | None:
    """True if RECORD ended successfully, False if it ended otherwise (or is blocked, or
    unknown), None while it has yet to end (or waits to run again after an API failure),
    as far as its record tells."""
    if record is None or record.blocked is not None:
        return False
    if record.resumes_at is not None and record.intent is None:
        return None  # an API failure holds it: it runs again, and its end is to come
    ending = record.ending()
    if ending is None:
        return None
    return ended_status(ending, record.intent, record.agent_error) is Status.EXITED


def waiting(record: Record) -> bool:
    """Whether RECORD is a dependent that has not started and is not blocked."""
    return (bool(record.after) and record.invocation_id is None and record.blocked is None
            and record.ending() is None)


def block(sessions: Sessions, session_id: str, reason: str) -> list[str]:
    """Block a waiting session and, in turn, every session waiting on it, ended now
    without having run; their ids."""
    record = sessions.get(session_id)
    if record is None or not waiting(record):
        return []
    sessions[session_id] = replace(record, blocked=reason, ended_at=now_iso())
    blocked = [session_id]
    for other in list(sessions.values()):
        if session_id in other.after:
            blocked += block(sessions, other.id,
                             f"dependency {session_id[:8]} ({record.name}) never ran")
    return blocked


def cancel(sessions: Sessions, session_id: str, now: str, intent: Intent,
           final_result: str | None = None) -> Record | None:
    """Take a waiting session out of its wait, as stopped (or killed: INTENT) before it
    ever ran, and block the sessions waiting on it in turn; its new record, or None if
    it no longer waits (it started, ended or is gone)."""
    record = sessions.get(session_id)
    if record is None or not waiting(record):
        return None
    return end_unrun(sessions, record, now, intent, final_result)


def end_unrun(sessions: Sessions, record: Record, now: str, intent: Intent,
              final_result: str | None = None) -> Record:
    """End RECORD, which never ran (it waited for its dependencies, or in its queue), as
    stopped (or killed: INTENT) with FINAL_RESULT, and block the sessions waiting on it
    in turn; its new record."""
    sessions[record.id] = replace(
        record, intent=intent, ended_at=now, result="canceled",
        final_result=final_result if final_result is not None else record.final_result)
    for other in list(sessions.values()):
        if record.id in other.after:
            block(sessions, other.id, f"dependency {record.id[:8]} ({record.name}) never ran")
    return sessions[record.id]


def settle(sessions: Sessions, session_id: str, judged: dict[str, bool | None]) -> list[str]:
    """Decide a waiting session from its dependencies' verdicts (JUDGED overrides what the
    records say); the ids to release (write the marker of): it, or none. Blocks it when
    a dependency failed."""
    record = sessions.get(session_id)
    if record is None or not waiting(record):
        return []
    verdicts = {dep: judged[dep] if dep in judged else verdict(sessions.get(dep))
                for dep in record.after}
    for dep, ok in verdicts.items():
        if ok is False:
            other = sessions.get(dep)
            how = "is gone" if other is None else "did not end successfully"
            name = f" ({other.name})" if other else ""
            block(sessions, session_id, f"dependency {dep[:8]}{name} {how}")
            return []
    return [session_id] if all(ok for ok in verdicts.values()) else []


def after_end(sessions: Sessions, ended_id: str, lost: bool = False) -> list[str]:
    """What a session's end decides for the sessions waiting on it: the ids to release.
    A LOST session (gone, how unknown: its record has no end) did not end well."""
    released: list[str] = []
    for record in list(sessions.values()):
        if ended_id in record.after:
            released += settle(sessions, record.id, {ended_id: False} if lost else {})
    return released


def telling_blocked(change: Callable[[Sessions], T]
                    ) -> Callable[[Sessions], tuple[T, list[Record]]]:
    """CHANGE, returning also the records it blocked (waiting before it, blocked after):
    each has ended, for its events and hooks to tell."""
    def changed(sessions: Sessions) -> tuple[T, list[Record]]:
        was_waiting = [i for i, record in sessions.items() if waiting(record)]
        value = change(sessions)
        return value, [sessions[i] for i in was_waiting
                       if i in sessions and sessions[i].blocked is not None]

    return changed
