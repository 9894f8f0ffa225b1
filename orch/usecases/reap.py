"""`reap`: remove ended sessions past an age (and, with --all, stop and remove the
running ones too), with what each leaves behind: failed units, secrets, markers,
a conversation's input, worktrees."""

from __future__ import annotations

from datetime import UTC, datetime

from orch import conversation, faults, secrets
from orch.errors import UsageError
from orch.session import Intent, Session, Status
from orch.spec import after_marker, after_unit
from orch.state import Sessions
from orch.usecases import queueing
from orch.usecases.common import mark_all
from orch.usecases.query import list_sessions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.runtime import Runtime

DEFAULT_REAP_AGE = 7 * 24 * 3600.0


def reap(rt: Runtime, *, older_than: float = DEFAULT_REAP_AGE, everything: bool = False,
         dry_run: bool = False) -> list[Session]:
    """Remove ended sessions that ended more than OLDER_THAN seconds ago (0: all ended
    ones) and reset their failed units; with EVERYTHING, stop running sessions first and
    remove them too. A running session is never removed otherwise, nor one whose spawn
    is still in flight. The reaped sessions."""
    from orch import worktree as worktrees

    if older_than < 0:
        raise UsageError("--older-than must be 0 or more")
    scope, store = rt.scope, rt.store
    sessions = list_sessions(rt)
    now = rt.now()
    chosen = [s for s in sessions
              if (s.status.ended and age(s, now) >= older_than)
              or (everything and not s.status.ended and not in_flight(s))]
    if dry_run or not chosen:
        return chosen
    manager = rt.manager
    running = [s for s in chosen if not s.status.ended]
    if running:
        mark_all(store, [s.id for s in running], Intent.STOP)
        manager.stop_all([s.unit for s in running])
        faults.point("reap.stopped")
    for session in chosen:
        manager.reset_failed(session.unit)
        faults.point("reap.reset")
        secrets.discard(scope, session.id)
        conversation.remove_input(scope, session.id)  # a conversation's, if it has one
        if session.after:
            manager.stop(after_unit(session.unit))
            after_marker(scope, session.id).unlink(missing_ok=True)
    records = store.load()
    for session in chosen:
        record = records.get(session.id)
        if record is not None and record.worktree and record.worktree_repo:
            worktrees.remove(record.worktree, record.worktree_repo)
    gone = {s.id: s.invocation_id for s in chosen}

    def remove(records: Sessions) -> None:
        for session_id, invocation_id in gone.items():
            record = records.get(session_id)
            # A session restarted since it was chosen is not the one that was chosen.
            if record is not None and record.invocation_id in (invocation_id, None):
                del records[session_id]

    store.update(remove)
    queueing.admit(rt)  # slots the reaped held (their hooks did, unless they never ran)
    return chosen


def in_flight(session: Session) -> bool:
    """A spawn that has not started its unit yet: reap leaves it, as recover does, since
    removing its record now would leave the unit it is about to start without one."""
    return session.status is Status.STARTING and session.invocation_id is None \
        and not session.after


def age(session: Session, now: datetime) -> float:
    """Seconds since the session ended (since it was last heard of, if lost)."""
    stamp = session.ended_at or session.started_at or session.created_at
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return float("inf")
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (now - then).total_seconds()
