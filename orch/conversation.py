"""Talking to a running agent: the input a conversation's agent reads its messages
from, and the messages themselves.

An interactive session's standard input is a FIFO in the runtime directory (a 0700
directory of the session owner's; the FIFO 0600), handed to the manager opened for
reading and writing (StandardInputFileDescriptor): the agent holds a writer itself, so
it never reads end-of-file while it runs, and a message written before it starts waits
in the pipe. `orch send` opens the FIFO for writing without blocking: that fails once
no agent holds it (the session ended), which is how send knows to resume instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import termios
import uuid
from contextlib import suppress
from pathlib import Path

from orch import jsontext
from orch.errors import OrchError, UsageError
from orch.results import ResultFormat, event
from orch.scope import Scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.results import AgentResult
    from orch.session import Record

# A message bigger than this is refused: far above any prompt, well within the pipe.
MAX_MESSAGE_BYTES = 256 * 1024
# The pipe holds this much unread input (Linux's default pipe-max-size for unprivileged
# processes), so a few messages can wait while the agent is busy.
PIPE_BYTES = 1024 * 1024
# Formats whose agents take messages on standard input while they run.
LIVE_FORMATS = (ResultFormat.CLAUDE_STREAM_JSON,)


class NotListening(OrchError):
    """No agent reads the session's input: it is not running."""


def input_dir(scope: Scope) -> Path:
    """Where SCOPE's conversations' inputs live."""
    return scope.runtime_dir() / "orch" / "input"


def input_path(scope: Scope, session_id: str) -> Path:
    """The FIFO session SESSION_ID of SCOPE reads its messages from."""
    return input_dir(scope) / session_id


def _quiet_path(scope: Scope, session_id: str) -> Path:
    """Marks a conversation whose agent was started with nothing to say (resumed at boot):
    it waits for a message before it writes anything."""
    return input_dir(scope) / f"{session_id}.quiet"


def open_input(scope: Scope, session_id: str, quiet: bool = False) -> int:
    """The session's input, made if need be (one a crash left behind is reused if it is
    a FIFO of ours, replaced otherwise), opened for reading and writing: the descriptor
    to hand to the manager (the caller closes its own). QUIET: its agent starts with no
    message to read (see idle_result)."""
    directory = input_dir(scope)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise OrchError(f"{directory} is not a directory of this user's; orch left it alone")
    if info.st_mode & 0o077:
        os.chmod(directory, 0o700)
    path = input_path(scope, session_id)
    try:
        found = path.lstat()
    except FileNotFoundError:
        found = None
    if found is not None and not (stat.S_ISFIFO(found.st_mode) and found.st_uid == os.geteuid()):
        path.unlink()
        found = None
    if found is None:
        os.mkfifo(path, 0o600)
    marker = _quiet_path(scope, session_id)
    if quiet:
        marker.touch(mode=0o600)
    else:
        marker.unlink(missing_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with suppress(OSError):  # a smaller pipe still works, with less room to queue
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    # The agent reads it blocking, as a program expects its standard input to behave.
    os.set_blocking(fd, True)
    return fd


def remove_input(scope: Scope, session_id: str) -> None:
    """Remove the session's input, if it has one."""
    for path in (input_path(scope, session_id), _quiet_path(scope, session_id)):
        path.unlink(missing_ok=True)


def user_message(format: ResultFormat, text: str) -> bytes:
    """TEXT as FORMAT's agent takes a user message on its input: one line. TEXT may be
    MAX_MESSAGE_BYTES long, and the line must fit the input's pipe whole."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_MESSAGE_BYTES:
        raise UsageError(f"the message is {size:,} bytes; an agent takes at most "
                         f"{MAX_MESSAGE_BYTES:,}")
    if format is ResultFormat.CLAUDE_STREAM_JSON:
        message = {"type": "user", "message": {"role": "user", "content": [
            {"type": "text", "text": text}]}}
        line = jsontext.dumps(message, ascii=False) + "\n"
    else:
        raise UsageError(f"the {format} format takes no messages")
    data = line.encode("utf-8", "surrogateescape")
    if len(data) > PIPE_BYTES:  # control characters, written escaped six times as long
        raise UsageError(f"the message, written as the agent reads it, is {len(data):,} "
                         f"bytes: more than its input takes ({PIPE_BYTES:,})")
    return data


def interrupt(format: ResultFormat) -> bytes:
    """The request that stops FORMAT's agent's current turn."""
    if format is not ResultFormat.CLAUDE_STREAM_JSON:
        raise UsageError(f"the {format} format has no way to interrupt a turn")
    request = {"type": "control_request", "request_id": f"orch-{uuid.uuid4().hex[:12]}",
               "request": {"subtype": "interrupt"}}
    return (jsontext.dumps(request) + "\n").encode()


def deliver(scope: Scope, session_id: str, data: bytes) -> None:
    """Write DATA (whole lines) to the session's input at once; NotListening if no
    agent reads it. Writers take turns (a lock beside the FIFO), and a message goes in
    only whole: never a half line another writer's could follow."""
    path = input_path(scope, session_id)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, OSError) as err:
        if isinstance(err, FileNotFoundError) or err.errno == errno.ENXIO:
            raise NotListening(f"session {session_id[:8]} has no agent reading its "
                               "input") from None
        raise OrchError(f"cannot open {path}: {os.strerror(err.errno or 0)}") from None
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise OrchError(f"{path} is not a FIFO; orch left it alone")
        fcntl.flock(fd, fcntl.LOCK_EX)
        room = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) - _unread(fd)
        if len(data) > room:
            raise OrchError(f"session {session_id[:8]}'s input is full ({room:,} bytes "
                            "free): the agent has not read what was sent before")
        written = os.write(fd, data)
        if written != len(data):  # cannot happen with the room checked: say so if it does
            raise OrchError(f"only {written} of {len(data)} bytes reached the agent")
        _quiet_path(scope, session_id).unlink(missing_ok=True)  # it has something now
    finally:
        os.close(fd)


def _unread(fd: int) -> int:
    """The bytes in the pipe at FD that its reader has not read yet."""
    buffer = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buffer)
    return int.from_bytes(buffer, "little")


def waiting(scope: Scope, session_id: str) -> bool:
    """Whether input sent to the session waits unread in its pipe."""
    try:
        fd = os.open(input_path(scope, session_id),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode) and _unread(fd) > 0
    finally:
        os.close(fd)


def idle_result(record: Record) -> tuple[AgentResult, bool]:
    """What the agent of RECORD, a conversation, said in its turns so far, and whether it
    waits for its next message: not while a turn is
    under way, or a message waits in its input (it is about to be). Read from the
    current invocation's output: the agent's own `result` event ends each turn. An
    invocation that has said nothing yet waits only if it was started with nothing to
    say and has been sent nothing since (a conversation resumed at boot); otherwise it
    is taking its first message."""
    from orch import agents, journal

    scope = Scope(record.scope)
    lines = journal.output_lines(record)
    last = next((found for found in map(event, reversed(lines)) if found is not None), None)
    said = agents.read_result(record, lines)
    idle = (last is not None or _quiet_path(scope, record.id).exists()) and \
        (last is None or last.get("type") == "result") and not waiting(scope, record.id)
    return said, idle
