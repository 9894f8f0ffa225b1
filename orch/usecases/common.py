"""What several use cases need: a record's view joined with its unit, look-ups by
reference, intents written before acting, and an ended agent's result read once."""

from __future__ import annotations

import os
from collections.abc import Sequence

from orch.errors import NotFound
from orch.frozen import replace
from orch.session import Intent, Record, Session, UnitView, derive_status
from orch.state import Sessions, StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:

    from orch.runtime import Runtime

SELF = "self"

# journald writes a line some milliseconds after the program wrote it: how long to give
# an ended session's last lines to arrive before reading its result from them.
RESULT_GRACE = 3.0


def view(record: Record, unit: UnitView, pid_known: bool = False) -> Session:
    """RECORD joined with UNIT. Its MainPID's start time is checked against the
    manager's stamp (psutil), unless PID_KNOWN: the view was read as the manager
    finished the start job that executed it."""
    alive = unit.loaded and unit.main_pid > 0
    if alive and not pid_known:
        from orch.procs import main_alive

        alive = main_alive(unit)
    return Session.of(record, derive_status(record, unit, alive), unit)


def find(ref: str, records: Sessions) -> Record:
    """The record REF names among RECORDS (id, id prefix, name, unit name, or `self`)."""
    if ref == SELF:
        own = os.environ.get("ORCH_SESSION_ID")
        if not own:
            raise NotFound("`self` names a session only inside one (ORCH_SESSION_ID is unset)")
        ref = own
    from orch.resolve import resolve  # not for a listing

    return resolve(ref, records.values())


def lookup(rt: Runtime, ref: str) -> Record:
    """The record REF names in the runtime's store."""
    return find(ref, rt.store.load())


def mark(store: StateStore, session_id: str, intent: Intent,
         final_result: str | None = None) -> Record:
    """Record INTENT (and FINAL_RESULT) on a session that has not ended, before acting
    (one an API failure holds, or a Restart= will run again, has ended its invocation,
    not the session)."""
    def change(sessions: Sessions) -> Record:
        record = sessions[session_id]
        if record.ending() is None or record.resumes_at is not None \
                or record.restarting:
            record = replace(
                record, intent=intent,
                final_result=final_result if final_result is not None else record.final_result)
            sessions[session_id] = record
        return record

    return store.update(change)


def mark_all(store: StateStore, session_ids: Sequence[str], intent: Intent) -> None:
    """mark() for each of SESSION_IDS that is still recorded, in one change."""
    def change(sessions: Sessions) -> None:
        for session_id in session_ids:
            record = sessions.get(session_id)
            if record is not None and (record.ending() is None or record.resumes_at):
                sessions[session_id] = replace(record, intent=intent)

    store.update(change)


def clear_intent(store: StateStore, session_id: str, intent: Intent) -> None:
    """Take back INTENT (its action failed) from a session that has not ended."""
    def change(sessions: Sessions) -> None:
        record = sessions.get(session_id)
        if record is not None and record.intent is intent and record.ending() is None:
            sessions[session_id] = replace(record, intent=None)

    store.update(change)


def ended_recently(rt: Runtime, record: Record) -> bool:
    """Whether RECORD ended so lately that its last lines may still be on their way."""
    if record.ended_at is None:
        return True  # ended by the unit's word, not yet by the hook's: just now
    from datetime import datetime  # not at import: a spawn never needs it

    try:
        ended = datetime.fromisoformat(record.ended_at)
    except ValueError:
        return False
    return (rt.now() - ended).total_seconds() < RESULT_GRACE * 3


def collect(rt: Runtime, record: Record) -> Record:
    """Read an ended agent session's result from its output once, and record it."""
    if not record.provider or record.final_result is not None or record.invocation_id is None:
        return record
    from orch import agents
    from orch.journal import output_lines

    def complete(lines: list[str]) -> bool:
        found = agents.read_result(record, lines)
        return found.final_result is not None or found.is_error

    # Only a session that ended just now may still have lines on their way to the
    # journal: those are read on after the rest, which is read once.
    grace = RESULT_GRACE if ended_recently(rt, record) else 0.0
    found = agents.read_result(record, output_lines(record, complete=complete, grace=grace))

    def change(sessions: Sessions) -> Record:
        current = sessions.get(record.id)
        if current is None or current.invocation_id != record.invocation_id:
            return record
        sessions[record.id] = agents.with_result(current, found)
        return sessions[record.id]

    return rt.store.update(change)

