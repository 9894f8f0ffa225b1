"""Reconciling records with the manager: the pure decisions `orch recover` acts on.

Every function here is pure: records, unit views and evidence in, decisions out. The
effects (writing records, starting units, reading the journal) live in the use case
that acts on them; the journal's evidence is read by orch.journal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from orch.dependencies import waiting
from orch.frozen import replace
from orch.queues import stranded
from orch.session import (
    Ending,
    Record,
    Status,
    UnitFacts,
    UnitView,
    derive_status,
    ended_status,
    now_iso,
    usec_to_iso,
)
from orch.spec import ORCH_SET_ENV
from orch.units import label_of


class Outcome(StrEnum):
    """What recover found, or did, for one session."""

    RUNNING = "running"  # alive under its recorded invocation
    STARTING = "starting"  # a spawn or restart in flight: left alone
    ENDED = "ended"  # ended, and its evidence is recorded now
    ALREADY_ENDED = "already-ended"  # ended, as its record already said
    LOST = "lost"  # gone with no evidence of how it ended
    RESTARTED = "restarted"  # a persistent session started again
    QUEUED = "queued"  # waits in its queue (or was let out of it, and recover starts it)
    WAITING = "waiting"  # for its timer (an API failure holds it), or its dependencies
    ADOPTED = "adopted"  # a unit of ours with no record, recorded back


@dataclass(frozen=True)
class Decision:
    """One session's outcome and the record as it should now be kept."""

    outcome: Outcome
    record: Record
    restart: bool = False  # start a new invocation of the session after writing RECORD


def wants_restart(record: Record) -> bool:
    """A persistent session comes back when its invocation ended under it: lost (a power
    cut leaves no evidence) or stopped by the manager (a shutdown), not when it ended on
    its own or was stopped or killed through orch."""
    if not record.persistent or record.intent is not None:
        return False  # stopped or killed through orch, even if its end went unrecorded
    ending = record.ending()
    if ending is None:
        return True
    return record.intent is None and ended_status(ending, None) is Status.STOPPED


def decide(record: Record, unit: UnitView, alive: bool, journal: Ending | None,
           now: datetime | None = None) -> Decision:
    """What recover makes of RECORD, given its unit now (GONE if not loaded), whether the
    unit's MainPID is the process systemd started, and the journal's evidence of the
    recorded invocation's end (None if it has none)."""
    if record.blocked is not None and record.invocation_id is None \
            and unit.active_state in UnitView.GONE_STATES:
        return Decision(Outcome.ALREADY_ENDED, record)  # it never ran: its block is its end
    status = derive_status(record, unit, alive, now)
    if status is Status.QUEUED or (stranded(record) and not unit.loaded
                                   and status is Status.LOST):
        # A queue let the second out, but a crash came before its unit ran.
        return Decision(Outcome.QUEUED, record)
    if status.waiting_to_resume or waiting(record):
        return Decision(Outcome.WAITING, record)
    current = unit.loaded and (record.invocation_id is None
                               or unit.invocation_id == record.invocation_id)
    if current:
        if status in (Status.RUNNING, Status.STARTING):
            return Decision(Outcome.RUNNING, _refreshed(record, unit))
        if status is Status.LOST:
            return Decision(Outcome.LOST, record)
        return _ended(record, unit.ending() or journal, unit.invocation_id)
    if unit.loaded:
        # Our unit, under an invocation the record does not know: it was started again
        # behind orch's back. Archive what the record knew and follow the unit.
        ended = _ended(record, journal, record.invocation_id).record
        following = replace(ended.next_invocation(now_iso()),
                                        invocation_id=unit.invocation_id)
        return decide(following, unit, alive, None, now)
    if status is Status.STARTING:
        return Decision(Outcome.STARTING, record)
    decision = _ended(record, journal, record.invocation_id)
    if wants_restart(decision.record):
        return Decision(Outcome.RESTARTED, decision.record, restart=True)
    return decision


def _refreshed(record: Record, unit: UnitView) -> Record:
    return replace(
        record,
        invocation_id=unit.invocation_id or record.invocation_id,
        main_pid=unit.main_pid or record.main_pid,
        started_at=record.started_at or usec_to_iso(unit.exec_main_start_usec))


def _ended(record: Record, evidence: Ending | None, invocation_id: str | None) -> Decision:
    if record.ending() is not None:
        return Decision(Outcome.ALREADY_ENDED, record)
    if evidence is None:
        return Decision(Outcome.LOST, record)
    return Decision(Outcome.ENDED, record.with_ending(evidence, invocation_id))



def record_from_unit(facts: UnitFacts, scope: str, state_dir: str) -> Record | None:
    """A record rebuilt from a unit alone, or None if the unit is not one of this state
    directory's sessions (its exit hook writes elsewhere, or it carries no session id)."""
    # The exit hook is [python, -I, .../exithook.py, STATE_DIR, (MARKER_DIR)].
    if len(facts.hook_argv) < 4 or facts.hook_argv[3] != state_dir:
        return None
    env = dict(item.split("=", 1) for item in facts.environment if "=" in item)
    try:
        session_id = str(uuid.UUID(env.get("ORCH_SESSION_ID", "")))
    except ValueError:
        return None
    if env.get("ORCH_UNIT") != facts.unit:
        return None
    summary = facts.description.split(": ", 1)[1] if ": " in facts.description else ""
    user_env = {k: v for k, v in env.items() if k not in ORCH_SET_ENV}
    started = usec_to_iso(facts.view.exec_main_start_usec)
    return Record(
        id=session_id, name=label_of(facts.unit), unit=facts.unit, scope=scope,
        argv=facts.argv or [facts.program], cwd=facts.cwd or "/", description=summary,
        env=user_env, created_at=started or now_iso(), invocation_id=facts.view.invocation_id,
        main_pid=facts.view.main_pid or None, started_at=started, program=facts.program,
        path=env.get("PATH"), requested_at=started)


def counts(decisions: Iterable[Outcome]) -> dict[str, int]:
    """How many sessions had each outcome (every outcome named, zero or not)."""
    tally = {str(o): 0 for o in Outcome}
    for outcome in decisions:
        tally[str(outcome)] += 1
    return tally


