"""Agents left unattended: when the API fails one (orch.limits), the session waits and a
timer resumes it. A usage limit makes it `limited` until the limit resets; a transient
failure (overload, rate limit, lost connection) makes it `retrying`, with backoff, up to
its --retries. The task's own failure, a command's exit status, a stop or a kill are
never retried.

The exit hook decides (after_exit), a transient timer of the same manager wakes the
session (wake: a new invocation resuming the agent's conversation), `recover` arms a
timer a reboot took (rearm), and stop, kill and resume cancel it (cancel_wake).
"""

from __future__ import annotations

from orch import agents, limits
from orch.frozen import dataclass, replace
from orch.scope import Scope
from orch.session import Ending, Record, Session, Status, now_iso, usec_to_iso
from orch.spec import (
    DEFAULT_LIMIT_WAIT_S,
    DEFAULT_RETRY_DELAY_S,
    MAX_WAIT_S,
    SpawnOptions,
    wake_unit,
)
from orch.state import Sessions
from orch.usecases.common import RESULT_GRACE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.results import AgentResult
    from orch.runtime import Runtime

# Spread over up to this many seconds after a usage limit's reset (a tenth of the wait,
# if less): a fleet that hit one limit does not come back all in the same second.
LIMIT_JITTER_S = 120.0


@dataclass(frozen=True)
class Verdict:
    """What an agent's failed run said: its result, the API failure if it was one, and
    when the session runs again (epoch seconds; None: it does not)."""

    result: AgentResult
    failure: limits.ApiFailure | None
    resumes: float | None
    judged_at: float

    def apply(self, record: Record) -> Record:
        """RECORD (its end just recorded) with the result, and set to wait if it does;
        not if someone stopped or killed it meanwhile."""
        record = agents.with_result(record, self.result)
        if self.failure is None or self.resumes is None or record.intent is not None:
            return record
        return replace(record, resumes_at=usec_to_iso(int(self.resumes * 1e6)),
                       waiting_for=self.failure.reason, wait_kind=str(self.failure.kind))


def judge(rt: Runtime, record: Record, ending: Ending) -> Verdict | None:
    """Read what RECORD's agent printed in the run that ENDING ended, and judge it;
    None unless it is an agent's failed headless run (the only kind that waits)."""
    from orch.journal import output_lines

    if not _may_wait(record, ending):
        return None

    def complete(lines: list[str]) -> bool:
        found = agents.read_result(record, lines)
        return found.final_result is not None or found.is_error

    lines = output_lines(record, complete=complete, grace=RESULT_GRACE)
    now = rt.now().timestamp()
    failure = limits.classify(agents.output_format(record), lines, now)
    return Verdict(agents.read_result(record, lines), failure,
                   _resumes_at(record, failure, now), now)


def arm(rt: Runtime, record: Record, verdict: Verdict) -> None:
    """Arm the timer that resumes RECORD, which VERDICT set to wait."""
    if verdict.resumes is None or verdict.failure is None:
        return
    delay = max(0.0, verdict.resumes - verdict.judged_at)
    jitter = limit_jitter(delay) if verdict.failure.kind is limits.Failure.USAGE_LIMIT else 0.0
    _arm(rt, record, delay, jitter)


def limit_jitter(delay_s: float) -> float:
    """The most a wake DELAY_S away at a usage limit's reset is put off at random, so
    that a fleet held by one limit does not come back in one second."""
    return min(LIMIT_JITTER_S, delay_s / 10)


def after_exit(rt: Runtime, session_id: str) -> Record | None:
    """judge() and arm() for a session whose end is recorded already; the record if it
    now waits, else None (its result is recorded either way)."""
    record = rt.store.load().get(session_id)
    ending = record.ending() if record is not None else None
    if record is None or ending is None:
        return None
    verdict = judge(rt, record, ending)
    if verdict is None:
        return None

    def change(sessions: Sessions) -> Record | None:
        current = sessions.get(session_id)
        if current is None or current.invocation_id != record.invocation_id:
            return None
        sessions[session_id] = verdict.apply(current)
        return sessions[session_id] if sessions[session_id].resumes_at else None

    waiting = rt.store.update(change)
    if waiting is not None:
        arm(rt, waiting, verdict)
    return waiting


def _may_wait(record: Record, ending: Ending) -> bool:
    """An agent's headless run that failed on its own exit status (ENDING), not stopped
    or killed: the only kind an API failure ends (a conversation's agent stays up)."""
    return (record.provider not in (None, "exec") and record.intent is None
            and not record.agent.get("interactive")
            and ending.exit_code is not None and ending.exit_code != 0)


def _resumes_at(record: Record, failure: limits.ApiFailure | None,
                now: float) -> float | None:
    """When RECORD runs again after FAILURE (epoch seconds); None: it does not."""
    if failure is None:
        return None
    options = SpawnOptions.from_json(record.options)
    if failure.kind is limits.Failure.USAGE_LIMIT:
        wait = options.limit_wait_sec or DEFAULT_LIMIT_WAIT_S
        return failure.resets_at if failure.resets_at is not None else now + wait
    if record.retried >= options.retries:
        return None
    delay = options.retry_delay_sec or DEFAULT_RETRY_DELAY_S
    return now + min(delay * 2.0 ** min(record.retried, 64), MAX_WAIT_S)


def _arm(rt: Runtime, record: Record, delay_s: float, jitter_s: float) -> None:
    from orch.usecases.queueing import arm_wake

    arm_wake(rt, record.id, f"session {record.id[:8]} ({record.name}): resume after "
             f"{record.waiting_for}", delay_s, ["--wake", str(rt.store.directory), record.id],
             jitter_s)


def wake(rt: Runtime, session_id: str) -> Session | None:
    """Resume a session its timer woke: a new invocation that resumes the agent's
    conversation (or runs it again, where the provider cannot resume one); then start
    what queues held for it. None if it no longer waits (stopped, resumed by hand)."""
    from orch.usecases.queueing import admit

    record = rt.store.load().get(session_id)
    if record is None or record.resumes_at is None or record.intent is not None:
        return None
    session = resume(rt, record, None)
    admit(rt)  # a queue held back by this provider's limit may go on now
    return session


def give_up(rt: Runtime, session_id: str, why: str) -> Record | None:
    """End SESSION_ID, which waits to run again and cannot (its provider refused the
    run its timer asked for): as its last run ended, told with WHY; None if it no
    longer waits. Left waiting, it would wait for ever, its timer spent."""
    from orch.usecases.queueing import admit
    from orch.usecases.transitions import tell_ended

    def ended(sessions: Sessions) -> Record | None:
        current = sessions.get(session_id)
        if current is None or current.resumes_at is None:
            return None
        sessions[session_id] = replace(current, resumes_at=None, waiting_for=None,
                                       wait_kind=None)
        return sessions[session_id]

    record = rt.store.update(ended)
    if record is not None:
        tell_ended(rt, record, Status.FAILED, why)
        admit(rt)  # a queue held back by it may go on now
    return record


def resume(rt: Runtime, record: Record, prompt: str | None) -> Session:
    """Run RECORD again now, as a new invocation: resuming its agent's conversation with
    PROMPT (the provider's "continue" if None) where it can, else from the start."""
    from orch.usecases.spawn import resume as resume_conversation

    if agents.can_resume(record):
        return resume_conversation(rt, record.id, prompt)
    from orch.errors import OrchError
    from orch.events import Kind
    from orch.usecases.launching import NotSubmitted, launch, relaunch_secrets
    from orch.usecases.transitions import tell

    def again(sessions: Sessions) -> Record:
        current = sessions[record.id]
        if current.invocation_id != record.invocation_id:
            raise OrchError(f"session {record.id[:8]} changed meanwhile; try again")
        sessions[record.id] = replace(next_run(current), **over)
        return sessions[record.id]

    values = relaunch_secrets(record)  # one missing refuses it before anything changes
    over = agents.started_over(record)  # its provider asked outside the state's lock
    fresh = rt.store.update(again)
    # Told as a resumed conversation is (orch.usecases.spawn.resume).
    waited = record.resumes_at is not None
    retried = waited and record.wait_kind == str(limits.Failure.TRANSIENT)
    tell(rt, fresh, Kind.RETRIED if retried else Kind.RESUMED, Status.STARTING,
         record.waiting_for if waited else None)
    rt.manager_of(Scope(record.scope)).reset_failed(record.unit)
    try:
        session, _ = launch(rt, fresh, values)
    except NotSubmitted as failure:
        raise failure.error from None
    return session


def next_run(record: Record) -> Record:
    """RECORD's next invocation, counting a retry of a transient failure."""
    retried = record.retried + (record.wait_kind == str(limits.Failure.TRANSIENT))
    return replace(record.next_invocation(now_iso()), retried=retried)


def cancel_wake(rt: Runtime, record: Record) -> None:
    """Stop the timer that would resume RECORD (stop, kill, or a resume by hand)."""
    manager = rt.manager_of(Scope(record.scope))
    for unit in manager.loaded(wake_unit(record.id, "*")):
        manager.stop(unit)


def rearm(rt: Runtime, records: Sessions) -> list[str]:
    """Arm the timer of every waiting session whose timer is gone (a reboot takes
    transient units); their ids."""
    armed = []
    now = rt.now().timestamp()
    from datetime import datetime

    for record in records.values():
        if record.resumes_at is None or record.intent is not None:
            continue
        if rt.manager.loaded(wake_unit(record.id, "*")):
            continue
        at = datetime.fromisoformat(record.resumes_at).timestamp()
        _arm(rt, record, max(0.0, at - now), 0.0)
        armed.append(record.id)
    return armed
