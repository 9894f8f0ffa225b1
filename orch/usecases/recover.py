"""`recover` (at boot, or by hand): reconcile every record with its manager. The
decisions are orch.recovery's, pure; the effects (writes, restarts, adoptions) are here."""

from __future__ import annotations

from dataclasses import dataclass

from orch import dependencies, faults, secrets
from orch.errors import OrchError
from orch.events import Kind
from orch.frozen import replace
from orch.locks import held
from orch.queues import stranded
from orch.session import Record, Session, Status, UnitView, derive_status
from orch.spec import after_dir, after_unit
from orch.state import LOCK_NOTICE_S, Sessions
from orch.systemd import GONE
from orch.units import is_orch_unit
from orch.usecases import queueing, unattended
from orch.usecases.common import view
from orch.usecases.launching import NotSubmitted, launch, relaunch_secrets, start_after
from orch.usecases.measure import Meter
from orch.usecases.transitions import release_dependents, tell, tell_ended

# What an `ended` event of a lost session says.
LOST_DETAIL = "gone, with no exit hook's record nor journal entry of how it ended"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from orch.recovery import Decision, Outcome
    from orch.runtime import ManagerPort, Runtime

    Loaded = dict[str, tuple[bytes, tuple[str, str, str, int]]]


@dataclass(frozen=True)
class RecoverReport:
    """What `recover` found and did: each session's outcome, and the sessions as now."""

    outcomes: dict[str, Outcome]
    sessions: list[Session]
    errors: list[str]

    @property
    def counts(self) -> dict[str, int]:
        """How many sessions had each outcome."""
        from orch.recovery import counts

        return counts(self.outcomes.values())


# One recover at a time per state: the next waits (up to RECOVER_WAIT_S) for this one.
RECOVER_LOCK = "recover.lock"
RECOVER_WAIT_S = 300.0


def recover(rt: Runtime) -> RecoverReport:
    """Reconcile every record of the runtime's scope with its manager: refresh the
    running, record how the ended ended (from the exit hook, the unit, or the journal),
    call the rest lost, start persistent sessions again, and adopt units of ours that
    have no record.

    Idempotent, and safe beside concurrent spawns and reaps: every write re-checks the
    record under the state lock. One recover at a time (RECOVER_LOCK): two at once (a
    boot's and a user's) could both find a persistent session gone between one's
    decision and its start, and both start it again.
    """
    rt.store.prepare()
    with held(rt.store.directory / RECOVER_LOCK, RECOVER_WAIT_S, LOCK_NOTICE_S):
        return _recover(rt)


def _recover(rt: Runtime) -> RecoverReport:
    from orch.journal import exit_evidence
    from orch.procs import main_alive
    from orch.recovery import Outcome, decide

    scope, store = rt.scope, rt.store
    records = store.load()
    outcomes: dict[str, Outcome] = {}
    errors: list[str] = []
    manager = rt.manager
    loaded = manager.loaded()
    views = {r.id: _unit_from(manager, loaded, r.unit) for r in records.values()}
    needs_journal = [r for r in records.values()
                     if r.ending() is None and r.invocation_id is not None
                     and views[r.id].invocation_id != r.invocation_id]
    journal = exit_evidence((r.unit for r in needs_journal), str(scope)) \
        if needs_journal else {}
    decisions = {}
    for record in records.values():
        unit = views[record.id]
        alive = unit.loaded and unit.main_pid > 0 and main_alive(unit)
        evidence = journal.get(record.invocation_id or "")
        decisions[record.id] = decide(record, unit, alive, evidence)
    written = store.update(lambda s: _apply(s, records, decisions))
    faults.point("recover.decided")
    told_lost: dict[str, str] | None = None  # read once, if one is lost
    for session_id, decision in decisions.items():
        outcomes[session_id] = decision.outcome
        if decision.outcome in (Outcome.ENDED, Outcome.ALREADY_ENDED, Outcome.LOST):
            secrets.discard(scope, session_id)
        if decision.restart and session_id in written:
            outcomes[session_id] = _restart(rt, decision.record, errors)
        elif stranded(decision.record) and session_id in written:
            queueing.requeue_stranded(rt, decision.record)  # admission (below) decides
        elif decision.outcome is Outcome.ENDED and session_id in written:
            # An end its exit hook could not record, recorded here: told as the hook
            # would have told it, and the sessions waiting on it settled.
            errors += tell_ended(rt, decision.record,
                                 derive_status(decision.record, None, False))
        elif decision.outcome is Outcome.LOST:
            # Lost is no recorded end (each recover finds it again: evidence may come
            # yet), but no dependent can wait on it any more: they are blocked. It is
            # told once an invocation, with on_end and on_failed: nobody watched it end.
            errors += release_dependents(rt, session_id, after_dir(scope), lost=True)
            told_lost = _told_lost(rt) if told_lost is None else told_lost
            record = decision.record
            if told_lost.get(session_id, "") < (record.started_at or record.created_at):
                errors += tell(rt, record, Kind.ENDED, Status.LOST, LOST_DETAIL)
    for session_id in _adopt(rt, loaded, set(records)):
        outcomes[session_id] = Outcome.ADOPTED
    for record in store.load().values():
        if dependencies.waiting(record) and after_unit(record.unit) not in loaded:
            # A reboot took its path unit: judge its dependencies again, and wait anew.
            start_after(rt, record)
            views.pop(record.id, None)
    unattended.rearm(rt, store.load())  # the timers a reboot took
    admitted = queueing.admit(rt)  # what the queues can start now (after a boot: all)
    errors += admitted.problems
    for session in admitted.sessions:
        outcomes[session.id] = Outcome.RESTARTED
        views.pop(session.id, None)
    final = store.load()
    # Only the units recover started (or found new) changed since it read them.
    for session_id, outcome in outcomes.items():
        if outcome in (Outcome.RESTARTED, Outcome.ADOPTED) or session_id not in views:
            views[session_id] = manager.unit(final[session_id].unit) \
                if session_id in final else GONE
    with Meter(rt) as meter:  # what those running use, as ps has it
        sessions = [meter.measured(view(final[i], views[i]), final[i])
                    for i in outcomes if i in final]
    return RecoverReport(outcomes, sessions, errors)


def _unit_from(manager: ManagerPort, loaded: Loaded, unit: str) -> UnitView:
    if unit not in loaded:
        return GONE
    path, states = loaded[unit]
    return manager.view(path, unit, states)


def _apply(sessions: Sessions, seen: Sessions, decisions: dict[str, Decision]) -> set[str]:
    """Write each decision whose record is unchanged since it was read; their ids."""
    applied = set()
    for session_id, decision in decisions.items():
        if sessions.get(session_id) != seen[session_id]:
            continue  # changed by a concurrent spawn, hook or reap: its next run decides
        sessions[session_id] = decision.record
        applied.add(session_id)
    return applied


def _restart(rt: Runtime, decided: Record, errors: list[str]) -> Outcome:
    """Start a persistent session (as DECIDED) again: a new invocation of it. Refused
    before anything changed, it is as decided: ended if its end is known, else lost."""
    from orch.recovery import Outcome

    session_id = decided.id

    def archive(sessions: Sessions) -> Record | None:
        record = sessions.get(session_id)
        if record is None:
            return None
        if record.invocation_id is None and record.ending() is None:
            # Its start was never confirmed (a crash mid-spawn): nothing ran to archive.
            sessions[session_id] = replace(record, requested_at=rt.now_iso())
        else:
            sessions[session_id] = record.next_invocation(rt.now_iso())
        return sessions[session_id]

    try:  # read before anything changes: one missing keeps it as it was, and recover goes on
        values = relaunch_secrets(decided)
        changes = _next_run(decided)
    except OrchError as err:
        errors.append(f"cannot restart {session_id[:8]} ({decided.name}): {err.message}")
        return Outcome.LOST if decided.ending() is None else Outcome.ENDED
    record = rt.store.update(archive)
    if record is None:
        return Outcome.STARTING
    faults.point("recover.archived")
    if changes:
        record = rt.store.update(lambda s: _set(s, session_id, **changes)) or record
    rt.manager.reset_failed(record.unit)
    try:
        launch(rt, record, values)
    except NotSubmitted as failure:
        errors.append(f"cannot restart {record.id[:8]} ({record.name}): {failure.error}")
        return Outcome.LOST
    return Outcome.RESTARTED


def _told_lost(rt: Runtime) -> dict[str, str]:
    """When the event log last told each session lost (its last 80,000 events or so:
    one told longer ago than that is told again)."""
    from orch import events

    return {e.session_id: e.time for e in events.read(rt.store.directory)
            if e.event == Kind.ENDED and e.status == Status.LOST}


def _next_run(record: Record) -> dict[str, Any]:
    """How RECORD's restart differs from its last run: its agent picks up its own
    conversation rather than starting over, or starts over under a new conversation id
    where orch chose the old one; nothing for a program. OrchError if its provider
    refuses."""
    from orch import agents

    if agents.can_resume(record):
        return {"argv": agents.resume_argv(record, None), "program": None}
    return agents.started_over(record)


def _set(sessions: Sessions, session_id: str, **fields: Any) -> Record | None:
    record = sessions.get(session_id)
    if record is None:
        return None
    sessions[session_id] = replace(record, **fields)
    return sessions[session_id]


def _adopt(rt: Runtime, loaded: Loaded, known: set[str]) -> list[str]:
    """Record units of ours that have no record (a lost state file, a crash mid-spawn)."""
    from orch.recovery import record_from_unit

    store = rt.store
    known_units = {r.unit for r in store.load().values()}
    found: list[Record] = []
    for unit, (path, states) in loaded.items():
        if unit in known_units or not is_orch_unit(unit):
            continue
        record = record_from_unit(rt.manager.facts(unit, path, states), str(rt.scope),
                                  str(store.directory))
        if record is not None and record.id not in known:
            found.append(record)

    def insert(sessions: Sessions) -> list[str]:
        added = []
        for record in found:
            if record.id not in sessions and all(r.unit != record.unit
                                                 for r in sessions.values()):
                sessions[record.id] = record
                added.append(record.id)
        return added

    if not found:
        return []
    faults.point("recover.adopting")
    return store.update(insert)
