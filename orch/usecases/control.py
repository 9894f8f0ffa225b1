"""Ending sessions on request: stop (through systemd, and wait) and kill (a result
recorded first, then a signal to its program)."""

from __future__ import annotations

import signal

from orch import dependencies
from orch.errors import OrchError, UsageError
from orch.events import Kind
from orch.scope import Scope
from orch.session import Intent, Record, Session, Status
from orch.spec import read_text_arg
from orch.usecases import queueing, unattended
from orch.usecases.common import SELF, clear_intent, lookup, mark, view
from orch.usecases.transitions import disarm, tell, tell_blocked, tell_ended

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.runtime import Runtime

# The state of a service that ended and waits out RestartSec= before systemd starts it
# again (Restart=): its ExecStopPost= hook has run.
AUTO_RESTART = "auto-restart"
# Signals that, unhandled, pause, continue or leave a process be: sent, not a kill.
NOT_ENDING = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
                        signal.SIGCONT, signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH})


def stop(rt: Runtime, ref: str) -> Session:
    """Stop the session through systemd (SIGTERM, then SIGKILL after the unit's stop
    timeout) and wait for it to end; its status becomes `stopped`."""
    record = lookup(rt, ref)
    cancelled = _cancel_waiting(rt, record, Intent.STOP)
    if cancelled is not None:
        return cancelled
    record = lookup(rt, record.id)  # if it waited, it was started meanwhile: stop that
    manager = rt.manager_of(Scope(record.scope))
    unit = manager.unit(record.unit)
    before = view(record, unit)
    if before.status.ended:
        return before
    marked = mark(rt.store, record.id, Intent.STOP)
    if before.status.waiting_to_resume:  # no unit, no exit hook: its end is told here
        unattended.cancel_wake(rt, record)
        tell_ended(rt, marked, Status.STOPPED, "stopped while waiting to resume")
    try:
        manager.stop(record.unit)
    except OrchError:
        clear_intent(rt.store, record.id, Intent.STOP)
        raise
    if unit.sub_state == AUTO_RESTART:  # its last run's hook ran, and no other will
        tell_ended(rt, marked, Status.STOPPED, "stopped between restarts")
    session = view(rt.store.load()[record.id], manager.unit(record.unit))
    if record.queue is not None:
        queueing.admit(rt)  # its hook did, unless it could not run
    return session


def _cancel_waiting(rt: Runtime, record: Record, intent: Intent,
                    result: str | None = None) -> Session | None:
    """End RECORD before it ever ran, as stopped (or killed: INTENT), if it waits: in
    its queue, or for its dependencies (--after); its session then. None if it does not
    wait (any more): the caller then ends it as a started one."""
    if record.queued:
        return queueing.cancel(rt, record, intent, result)
    if not dependencies.waiting(record):
        return None
    cancelled, blocked = rt.store.update(dependencies.telling_blocked(
        lambda s: dependencies.cancel(s, record.id, rt.now_iso(), intent, result)))
    if cancelled is None:
        return None
    # Its path unit, so that no dependency's end starts it; and its own unit, loaded
    # but not started, unless a dependency's end started it a moment ago: its exit hook
    # then records how it ended, still as stopped or killed.
    disarm(rt, record)
    session = view(rt.store.load()[record.id],
                   rt.manager_of(Scope(record.scope)).unit(record.unit))
    tell(rt, cancelled, Kind.ENDED, session.status, "canceled while waiting for "
         "its dependencies")
    tell_blocked(rt, blocked)  # those waiting on it, in turn
    return session


def parse_signal(value: str) -> int:
    """A signal number from '15', 'TERM' or 'SIGTERM'."""
    text = value.strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        try:
            return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
        except KeyError:
            pass
    raise UsageError(f"--signal {value!r}: not a signal name or number")


def kill(rt: Runtime, ref: str, result: str | None = None, *,
         signum: int = signal.SIGTERM) -> Session:
    """Record RESULT as the session's final result, then signal all its processes.

    The result is written first: if that write fails, nothing is signalled. The
    session's status becomes `killed`.
    """
    is_self = ref == SELF
    record = lookup(rt, ref)
    if signum in NOT_ENDING:
        if result is not None:
            raise UsageError(f"a RESULT ends the session; signal {signal.Signals(signum).name} "
                             "does not: leave the RESULT out")
        return _signal(rt, record, signum)
    cancelled = _cancel_waiting(rt, record, Intent.KILL, result)
    if cancelled is not None:
        return cancelled
    record = lookup(rt, record.id)  # if it waited, it was started meanwhile: kill that
    manager = rt.manager_of(Scope(record.scope))
    unit = manager.unit(record.unit)
    before = view(record, unit)
    if before.status.ended:
        raise OrchError(f"session {record.id[:8]} ({record.name}) has already ended: "
                        f"{before.status}")
    marked = mark(rt.store, record.id, Intent.KILL, result)
    if marked.intent is not Intent.KILL:  # its end was recorded meanwhile: no kill
        ended = view(marked, manager.unit(record.unit)).status
        raise OrchError(f"session {record.id[:8]} ({record.name}) has already ended: {ended}")
    if before.status.waiting_to_resume:
        unattended.cancel_wake(rt, record)
        tell_ended(rt, marked, Status.KILLED, "killed while waiting to resume")
    between_restarts = unit.sub_state == AUTO_RESTART  # nothing runs there to signal
    if not between_restarts:
        if is_self and signum not in (signal.SIGKILL, signal.SIGSTOP):
            # We are one of the processes about to be signalled: outlive it to report.
            signal.signal(signum, signal.SIG_IGN)
        manager.kill(record.unit, signum)
    if record.restarting and not is_self:
        manager.stop(record.unit)  # a kill ends the session: no Restart= starts it again
    if between_restarts:  # its last run's hook ran, and no other will
        tell_ended(rt, marked, Status.KILLED, "killed between restarts")
    return view(rt.store.load()[record.id], manager.unit(record.unit))


def _signal(rt: Runtime, record: Record, signum: int) -> Session:
    """Send SIGNUM, one that does not end a process (STOP, CONT, WINCH, ...), to
    RECORD's program: nothing is recorded, and its end, whenever it comes, is its own."""
    manager = rt.manager_of(Scope(record.scope))
    unit = manager.unit(record.unit)
    before = view(record, unit)
    if before.status not in (Status.RUNNING, Status.IDLE) or not manager.kill(record.unit,
                                                                             signum):
        raise OrchError(f"session {record.id[:8]} ({record.name}) has no program running "
                        f"to signal: {before.status}")
    return view(rt.store.load()[record.id], manager.unit(record.unit))


def read_result_file(path: str) -> str:
    """The text of a --file result (one trailing newline dropped)."""
    return read_text_arg(path, "--file").removesuffix("\n")
