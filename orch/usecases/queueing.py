"""Queues (spawn --queue): starting what a queue can start now, and cancelling a waiting
session. The decisions are orch.queues', under the state lock; the starts are here.

Called by whoever may have freed a slot: a spawn into the queue, the exit hook of a
session of a queue, stop, kill, reap and recover; and by a short timer while a queue
waits only for memory (nothing else would wake it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from orch import dependencies, faults, queues, secrets
from orch.errors import OrchError
from orch.events import Kind
from orch.frozen import dataclass, replace
from orch.memory import free_here
from orch.queues import Admission, QueueLimits
from orch.scope import Scope
from orch.session import Intent, Record, Session, Status, now_iso, recent
from orch.state import Sessions
from orch.usecases.common import view
from orch.usecases.launching import NotSubmitted, launch
from orch.usecases.transitions import disarm, tell, tell_blocked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.config import Config
    from orch.runtime import Runtime


@dataclass(frozen=True)
class Started:
    """What one pass over the queues did: the sessions it started, and what went wrong
    (for the caller to say: a hook says it in the journal)."""

    sessions: list[Session]
    problems: list[str]


def admit(rt: Runtime, names: Iterable[str] | None = None,
          config: Config | None = None) -> Started:
    """Start what the queues NAMES (default: every queue with a session waiting) can
    start now. CONFIG: the configuration already read (else read here, if needed)."""
    waiting = queues.queues_with_waiting(rt.store.load())
    wanted = waiting if names is None else [n for n in dict.fromkeys(names) if n in waiting]
    if not wanted:
        return Started([], [])
    started: list[Session] = []
    problems: list[str] = []
    if config is None:
        from orch.config import load

        try:
            config = load(rt.scope)
        except OrchError as err:  # a file broken as someone edits it: not for ever
            for name in wanted:
                problems.append(f"queue {name} waits: {err.message}")
                _look_again(rt, name, "its configuration", problems)
            return Started(started, problems)
    for name in wanted:
        try:
            limits = config.queue_limits(name)
        except OrchError:
            problems.append(f"queue {name} is not in {config.path} any more: its sessions "
                            "wait until it is")
            _look_again(rt, name, "its configuration", problems)
            continue
        _admit_queue(rt, name, limits, started, problems)
    return Started(started, problems)


def _admit_queue(rt: Runtime, name: str, limits: QueueLimits, started: list[Session],
                 problems: list[str]) -> None:
    scope = rt.scope

    def free() -> int | None:
        return free_here(rt.manager_of(scope), scope)

    def decide(sessions: Sessions) -> Admission:
        return queues.admit(sessions, name, limits, free, _liveness(rt), rt.now_iso())

    while True:
        decision = rt.store.update(decide)
        if decision.admitted:
            faults.point("queue.admitted")
        if decision.memory_short:
            _look_again(rt, name, "free memory", problems)
        if decision.held_until is not None:  # at the reset (its limited session may have
            # been stopped, and with it the wake that would have looked again then)
            _look_again(rt, name, "a usage limit's reset", problems, decision.held_until)
        refused = 0
        for record in decision.admitted:
            session = _start(rt, record, problems)
            if session is None:
                refused += 1
            else:
                started.append(session)
        if not refused:  # a start the manager refused freed its slot: fill it
            return


def _liveness(rt: Runtime) -> Callable[[Record], bool]:
    """Whether a record's unit runs it now: loaded, or its start in flight (asked for
    lately, not yet confirmed); with its last run's end recorded, active or activating
    (systemd runs it again, or waits to: Restart=), not ending. Called under the state
    lock: a start is confirmed under it, so a unit that started since the listing
    cannot be confirmed meanwhile, and one that is not loaded but confirmed has ended
    (recorded, or cut off)."""
    loaded = rt.manager_of(rt.scope).loaded()
    now = rt.now()

    def live(record: Record) -> bool:
        listed = loaded.get(record.unit)
        if record.result is not None:
            return listed is not None and listed[1][1] in ("active", "activating", "reloading")
        return listed is not None or (record.invocation_id is None
                                      and recent(record.requested_at or "", now))
    return live


def requeue_stranded(rt: Runtime, record: Record) -> bool:
    """Put RECORD back in its queue, in its old place: its queue let it out, but a crash
    came before its unit ran (recover's part; the caller saw no unit, and its start is
    too old to be in flight). Its slot is given again by admission, under the lock, as
    any other: starting it directly could exceed the cap, since its slot was free for
    others meanwhile. False if it changed meanwhile."""

    def put_back(sessions: Sessions) -> bool:
        if sessions.get(record.id) != record:
            return False  # someone else is at it
        sessions[record.id] = replace(record, admitted_at=None)
        return True

    return rt.store.update(put_back)


def _start(rt: Runtime, record: Record, problems: list[str]) -> Session | None:
    """Start an admitted RECORD; None if it could not be (it is then failed, and says
    why in its record)."""
    scope = Scope(record.scope)
    try:
        values = secrets.saved(scope, record.id)
        if values is None:  # gone (a reboot empties the runtime directory): the files are
            # read again; the caller's variables are not here, and never another's
            # (whoever admits it: an ending session's hook, in that session's environment)
            if record.secret_env:
                raise OrchError(f"its secret variables ({', '.join(record.secret_env)}) "
                                "were lost with its saved copy (a reboot); spawn it again")
            values = secrets.gather(record.env_files, (), {})
        session, _ = launch(rt, record, values, _first_message(record))
    except (NotSubmitted, OrchError) as failure:
        if isinstance(failure, NotSubmitted) and rt.manager_of(scope).unit(record.unit).loaded:
            return None  # started by another (recover, beside a slow admitter): not ours
        error = failure.error if isinstance(failure, NotSubmitted) else failure
        reason = f"could not be started from its queue: {error}"
        rt.store.update(lambda s: _block(s, record.id, reason))
        tell(rt, record, Kind.ENDED, Status.FAILED, reason)
        problems.append(f"session {record.id[:8]} ({record.name}) {reason}")
        return None
    return session


def _block(sessions: Sessions, session_id: str, reason: str) -> None:
    record = sessions.get(session_id)
    if record is not None and record.invocation_id is None:
        sessions[session_id] = replace(record, blocked=reason, ended_at=now_iso())


def _first_message(record: Record) -> bytes | None:
    """A queued conversation's first message: its prompt (as spawn_agent would say it)."""
    prompt = record.agent.get("prompt")
    if not record.agent.get("interactive") or not prompt:
        return None
    from orch import agents, conversation

    return conversation.user_message(agents.output_format(record), str(prompt))


def queue_wake_subject(rt: Runtime, name: str) -> str:
    """What names the timers that look again at queue NAME of the runtime's state (a
    state directory's queue is not another's of the same name)."""
    import zlib

    return f"queue-{name}-{zlib.crc32(str(rt.store.directory).encode()):08x}"


def _look_again(rt: Runtime, name: str, wanted: str, problems: list[str],
                at: str | None = None) -> None:
    """Arm a timer that admits again in a while, unless one waits already (queue NAME
    waits for WANTED); a problem added to PROBLEMS if the manager would not. AT: a
    usage limit's reset, on a timer of its own (a wait of hours must not stand in for
    the next look at free memory), with the limit's jitter (a fleet not all at once)."""
    from datetime import datetime

    from orch.usecases.unattended import limit_jitter

    delay = queues.LOOK_AGAIN_S if at is None else max(
        0.0, (datetime.fromisoformat(at) - rt.now()).total_seconds())
    try:
        arm_wake(rt, ("reset-" if at else "") + queue_wake_subject(rt, name),
                 f"queue {name}: look again for {wanted}", delay,
                 ["--admit", str(rt.store.directory)],
                 jitter_s=0.0 if at is None else limit_jitter(delay))
    except OrchError as err:
        problems.append(f"queue {name} waits for {wanted}, but cannot look again later: "
                        f"{err.message}")


def arm_wake(rt: Runtime, subject: str, what: str, delay_s: float, hook_args: list[str],
             jitter_s: float = 0.0) -> str | None:
    """Arm a timer that runs the exit hook with HOOK_ARGS in DELAY_S, unless one for
    SUBJECT waits already (orch.spec.wake_unit); the new timer's name, if any."""
    from orch.spec import wake_properties, wake_unit

    manager = rt.manager
    armed = manager.loaded(wake_unit(subject, "*"))
    # Waiting to elapse; not one that elapsed and runs its service now (the caller, as
    # like as not, looking again).
    if any(states[1:3] == ("active", "waiting") for _, states in armed.values()):
        return None
    timer, service = wake_properties(what, delay_s, hook_args, rt.scope, jitter_s)
    unit = wake_unit(subject, str(time.time_ns()))
    manager.wait_job(manager.submit_transient(
        unit, timer, aux=[(unit.removesuffix(".timer") + ".service", service)]),
        f"the start of {unit}")
    return unit


def cancel(rt: Runtime, record: Record, intent: Intent,
           result: str | None = None) -> Session | None:
    """Take RECORD out of its queue as stopped (or killed: INTENT, with RESULT), if it
    still waits; its session then, or None if it was admitted meanwhile (the caller then
    stops it as a running one). The sessions waiting on it (--after) are blocked, and
    told, in turn."""
    cancelled, blocked = rt.store.update(dependencies.telling_blocked(
        lambda s: queues.cancel(s, record.id, rt.now_iso(), intent, result)))
    if cancelled is None:
        return None
    disarm(rt, cancelled)  # its saved secrets: it has no unit yet
    from orch.systemd import GONE

    session = view(cancelled, GONE)
    tell(rt, cancelled, Kind.ENDED, session.status, "canceled while queued")
    tell_blocked(rt, blocked)
    return session
