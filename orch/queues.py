"""Queues (spawn --queue): which queued sessions may start now. Pure.

A queue is a name in the configuration ([queues.NAME]: max_running, min_memory_available)
and the sessions spawned into it. One waits (status queued) until its queue has a slot
and the memory it asks for; then it is admitted (its record says when) and started.
Whoever sees a slot free decides, under the state lock: the spawn itself, a session's
exit hook, stop, kill, reap and recover. So no daemon keeps the queue, and two
concurrent deciders never give one slot twice.
"""

from __future__ import annotations

from orch.dependencies import end_unrun, verdict
from orch.frozen import dataclass, replace
from orch.session import Intent, Record, Session, Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

Sessions = dict[str, "Record"]

# How soon a queue held back by what no session's end changes (too little memory, its
# configuration unreadable or without it) looks again: nothing else would wake it.
LOOK_AGAIN_S = 15


@dataclass(frozen=True)
class QueueLimits:
    """What [queues.NAME] allows: at most MAX_RUNNING admitted at once (None: no cap), and
    none admitted while less than MIN_MEMORY_AVAILABLE bytes are free."""

    max_running: int | None = None
    min_memory_available: int | None = None


@dataclass(frozen=True)
class Admission:
    """One decision for a queue: the records admitted (in the order they start), and
    whether a free slot went unused for want of memory."""

    admitted: list[Record]
    memory_short: bool = False
    held_until: str | None = None  # when a usage limit that holds some of it resets


def stranded(record: Record) -> bool:
    """Whether RECORD was admitted but its start never confirmed, nor its end recorded:
    in flight, or cut off by a crash before its unit ran (recover starts it then)."""
    return (record.queue is not None and record.admitted_at is not None
            and record.invocation_id is None and record.result is None
            and record.blocked is None)


def holds_slot(record: Record, live: Callable[[Record], bool]) -> bool:
    """Whether RECORD takes one of its queue's slots: admitted and LIVE (its unit runs
    it, or its start is in flight; with its last run's end recorded, its unit runs it
    again: Restart=, systemctl restart), or waiting to resume after an API failure.
    One that a power cut ended unrecorded takes none, nor one orch stopped or killed."""
    if record.queue is None or record.admitted_at is None or record.blocked is not None:
        return False
    if record.resumes_at is not None and record.intent is None:
        return True  # an API failure holds it: it runs again at its time, in its slot
    return (record.result is None or record.intent is None) and live(record)


def order(sessions: Mapping[str, Record], queue: str) -> list[Record]:
    """QUEUE's waiting sessions, the next to start first: higher priority, then FIFO.
    One spawned with --after joins them once its dependencies have all succeeded."""
    waiting = [r for r in sessions.values() if r.queue == queue and r.queued
               and all(verdict(sessions.get(d)) for d in r.after)]
    return sorted(waiting, key=lambda r: (-r.priority, r.created_at, r.id))


def positions(sessions: Mapping[str, Record]) -> dict[str, int]:
    """Each waiting session's place in its queue, 1 for the next to start."""
    found: dict[str, int] = {}
    for queue in {r.queue for r in sessions.values() if r.queued}:
        if queue is not None:
            found.update((r.id, n) for n, r in enumerate(order(sessions, queue), 1))
    return found


@dataclass(frozen=True)
class InLine:
    """What `ps` and `show` say of a queued session beyond its record: its place in its
    queue, and while a usage limit holds its provider, when that resets and why."""

    position: int
    resumes_at: str | None = None
    waiting_for: str | None = None


def in_line(sessions: Mapping[str, Record], now: str) -> dict[str, InLine]:
    """Each queued session's InLine, by id: while a usage limit holds its provider, when
    that resets; else what its queue's last admission said holds it (memory)."""
    held = limited_providers(sessions, now)
    said: dict[str, InLine] = {}
    for session_id, place in positions(sessions).items():
        record = sessions[session_id]
        said[session_id] = InLine(place, None, record.waiting_for) \
            if record.provider not in held else \
            InLine(place, held[record.provider], f"the usage limit of {record.provider}")
    return said


def placed(session: Session, said: Mapping[str, InLine]) -> Session:
    """SESSION with what SAID (in_line) says of it, if it is queued."""
    line = said.get(session.id)
    if line is None or session.status is not Status.QUEUED:
        return session
    return replace(session, position=line.position, resumes_at=line.resumes_at,
                   waiting_for=line.waiting_for)


def limited_providers(sessions: Mapping[str, Record], now: str) -> dict[str, str]:
    """The agent providers a usage limit holds at NOW, each with when it resets: a
    session of theirs met it (and waits for the reset, or was stopped meanwhile: the
    account's limit holds all the same). Their queued sessions wait too, rather than
    start and fail."""
    held: dict[str, str] = {}
    for r in sessions.values():
        if r.provider and r.wait_kind == "usage-limit" and r.resumes_at is not None \
                and r.resumes_at > now:
            held[r.provider] = max(held.get(r.provider, r.resumes_at), r.resumes_at)
    return held


def queues_with_waiting(sessions: Mapping[str, Record]) -> list[str]:
    """The queues that have a session waiting, by name."""
    return sorted({r.queue for r in sessions.values() if r.queued and r.queue is not None})


def admit(sessions: Sessions, queue: str, limits: QueueLimits,
          free_memory: Callable[[], int | None], live: Callable[[Record], bool],
          now: str) -> Admission:
    """Admit as many of QUEUE's waiting sessions as its free slots and memory allow,
    marking them admitted at NOW in SESSIONS (to be written under the same lock the
    caller read SESSIONS under). FREE_MEMORY is asked only when a limit needs it (it may
    cost a call to the manager); None from it means no limit applies. LIVE as for
    holds_slot. A session of a provider a usage limit holds is passed over."""
    held = limited_providers(sessions, now)
    queued = order(sessions, queue)
    waiting = [r for r in queued if r.provider not in held]
    resets = [held[r.provider] for r in queued if r.provider in held]
    held_until = min(resets) if resets else None
    running = sum(1 for r in sessions.values() if r.queue == queue and holds_slot(r, live))
    slots = len(waiting) if limits.max_running is None else limits.max_running - running
    short = None  # why free slots stay free: too little memory
    if waiting and slots > 0 and limits.min_memory_available is not None:
        free = free_memory()
        if free is not None and free < limits.min_memory_available:
            from orch.render import format_bytes

            short = (f"free memory (queue {queue} asks for "
                     f"{format_bytes(limits.min_memory_available)} available)")
    _say_held(sessions, queued, waiting[:slots] if short else [], short)
    if not waiting or slots <= 0 or short:
        return Admission([], memory_short=short is not None, held_until=held_until)
    admitted = []
    for record in waiting[:slots]:  # as _say_held left them
        sessions[record.id] = replace(sessions[record.id], admitted_at=now, requested_at=now)
        admitted.append(sessions[record.id])
    return Admission(admitted, held_until=held_until)


def _say_held(sessions: Sessions, queued: list[Record], held: list[Record],
              why: str | None) -> None:
    """Record WHY (None: nothing) as what holds HELD, the next of QUEUED its free slots
    would start (memory), and nothing for the others: `ps` and `show` read it there,
    as this admission decided it. A record is written only where that changes."""
    chosen = {r.id for r in held}
    for record in queued:
        said = why if record.id in chosen else None
        if record.waiting_for != said:
            sessions[record.id] = replace(record, waiting_for=said)


def cancel(sessions: Sessions, session_id: str, now: str, intent: Intent,
           final_result: str | None = None) -> Record | None:
    """Take a waiting session out of its queue, as stopped (or killed: INTENT, with
    FINAL_RESULT) before it ever ran, blocking the sessions waiting on it (--after); the
    new record, or None if it no longer waits (admitted meanwhile, gone)."""
    record = sessions.get(session_id)
    if record is None or not record.queued:
        return None
    return end_unrun(sessions, record, now, intent, final_result)
