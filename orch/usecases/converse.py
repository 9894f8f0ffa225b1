"""Working with a running session: `orch send` hands a running conversation its next
message (or stops its turn), and resumes an ended agent's conversation with it;
`orch attach` finds a terminal session's terminal."""

from __future__ import annotations

from orch import agents, conversation
from orch.errors import OrchError, UsageError
from orch.frozen import dataclass
from orch.scope import Scope
from orch.session import Session, Status
from orch.usecases.common import lookup, view
from orch.usecases.query import conversing
from orch.usecases.spawn import resume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from orch.runtime import Runtime


@dataclass(frozen=True)
class Sent:
    """What became of a message: HOW is `sent` (the agent waited for it), `queued` (a
    turn was under way: claude reads it at the turn's next step), `interrupted` (the
    turn was asked to stop) or `resumed` (the session had ended: a new invocation of
    it took the message); SESSION as it is now."""

    session: Session
    how: str


def terminal(rt: Runtime, ref: str) -> tuple[Session, Path]:
    """Session REF and the socket its terminal is reached at (spawn --tty); refused in
    one line for a session without one, or one that has ended."""
    from orch.spec import SpawnOptions, tty_socket

    record = lookup(rt, ref)
    who = f"session {record.id[:8]} ({record.name})"
    if not SpawnOptions.from_json(record.options).tty:
        raise UsageError(f"{who} has no terminal: only a session spawned with --tty has one")
    session = view(record, rt.manager_of(Scope(record.scope)).unit(record.unit))
    if session.status.ended:
        raise OrchError(f"{who} has ended ({session.status}): there is no terminal to "
                        "attach to; `orch logs` shows what it wrote")
    return session, tty_socket(Scope(record.scope), record.id)


def send(rt: Runtime, ref: str, message: str | None, *, interrupt: bool = False) -> Sent:
    """Hand MESSAGE to the agent of session REF, or with INTERRUPT stop its turn.
    Refused in one line: not an agent, an agent that takes no messages while it runs,
    nothing to interrupt, a message too long."""
    record = lookup(rt, ref)
    who = f"session {record.id[:8]} ({record.name})"
    if record.provider in (None, "exec"):
        raise UsageError(f"{who} is not an agent session: it takes no messages")
    if (message is None) == (not interrupt):
        raise UsageError("give a message, or --interrupt")
    if message is not None and not message.strip():
        raise UsageError("the message is empty")  # as the API refuses it
    form = agents.output_format(record)
    session = conversing(view(record, rt.manager_of(Scope(record.scope)).unit(record.unit)),
                         record)
    if session.status.ended or session.status.waiting_to_resume:
        if interrupt:
            raise UsageError(f"{who} has ended: there is no turn to interrupt")
        return Sent(resume(rt, ref, message), "resumed")
    if not record.agent.get("interactive"):
        raise UsageError(f"{who} runs {record.provider} headless, which takes no messages "
                         "while it runs: send again once it has ended, to resume it")
    idle = session.status is Status.IDLE
    if interrupt and idle:
        raise UsageError(f"{who} waits for a message: there is no turn to interrupt")
    data = conversation.interrupt(form) if interrupt \
        else conversation.user_message(form, message or "")
    try:
        conversation.deliver(Scope(record.scope), record.id, data)
    except conversation.NotListening:
        raise OrchError(f"{who} is ending: its agent no longer reads messages") from None
    return Sent(session, "interrupted" if interrupt else "sent" if idle else "queued")
