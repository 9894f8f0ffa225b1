"""A conversation's relay: `python -I convhold.py STATE_DIR PROGRAM ARGV0 [ARG...]`, the
ExecStart= of a session spawned with --interactive.

It makes a pipe and forks. The parent, the unit's main process, executes PROGRAM with
its standard output on the pipe: the MainPID systemd watches is the agent itself, and
its exit status is the agent's. The child, in the same unit, copies every byte to its
own standard output (the journal, as the agent's would go), and when a line is the
agent's `result` event (a turn has ended: it waits for `orch send`), tells the session
is idle: its event, and the on_idle hook (orch.usecases.transitions). It ignores the
stop's SIGTERM and ends once the agent has closed the pipe, so no last line is lost.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

_CHUNK = 65536


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: convhold.py STATE_DIR PROGRAM ARGV0 [ARG...]", file=sys.stderr)
        return 2
    state_dir, program, args = argv[0], argv[1], argv[2:]
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(write_end)
        os.close(0)  # the conversation's input is the agent's alone
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        relay(read_end, Path(state_dir))
        os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 1)
    os.close(write_end)
    try:
        os.execv(program, args)
    except OSError as err:
        print(f"orch: cannot run {program}: {err.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached


def relay(source: int, state_dir: Path) -> None:
    """Copy SOURCE to standard output until its end, telling of each ended turn."""
    pending = b""
    while chunk := _read(source):
        _write_all(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        if any(_ends_turn(line) for line in lines):
            _tell_idle(state_dir)


def _read(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, _CHUNK)
        except InterruptedError:
            continue


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(1, view):]
        except InterruptedError:
            continue
        except OSError:
            return  # the journal went away: the agent's output goes nowhere either


def _ends_turn(line: bytes) -> bool:
    """Whether LINE is the agent's result event (claude stream-json: one per turn)."""
    return line.startswith(b'{"type":"result"')


def _tell_idle(state_dir: Path) -> None:
    session_id = os.environ.get("ORCH_SESSION_ID")
    if not session_id:
        return
    if not __package__:  # run by path: find the package as the exit hook does
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from orch.exithook import tell_idle
        from orch.state import StateStore

        tell_idle(StateStore(state_dir), session_id)
    except Exception as err:
        print(f"orch: could not tell the session is idle: {err}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
