"""`orch attach`: this terminal connected to a session's own (spawn --tty), through the
socket its holder listens at (orch.ttyhold): keys in, screen out, the window's size
passed on at once and on every resize. Ctrl-\\ detaches, as dtach and abduco do; the
session runs on, and any number of terminals may attach at once."""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import termios
import tty
from pathlib import Path

from orch.errors import OrchError, PermissionDenied
from orch.ttyhold import DATA, frame, window

DETACH = b"\x1c"  # Ctrl-\
_CHUNK = 65535  # the most one frame carries


def on_terminal() -> bool:
    """Whether standard input and output are a terminal (what attach and top need)."""
    return os.isatty(0) and os.isatty(1)


def attach(path: Path, who: str, notice: str) -> bool:
    """Connect this process's terminal to the one at PATH until Ctrl-\\ (True: detached)
    or the session's end (False). WHO names the session in errors; NOTICE is said on
    stderr once keys go to the session."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        server.close()
        raise OrchError(f"{who} has no terminal to attach to: it has ended") from None
    except PermissionError:
        server.close()
        raise PermissionDenied(f"{who}'s terminal is not yours to attach to") from None
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    saved = termios.tcgetattr(stdin)
    previous = signal.signal(signal.SIGWINCH, lambda signum, frame: None)
    old_wakeup = signal.set_wakeup_fd(wake_write)
    try:
        tty.setraw(stdin)
        os.write(sys.stderr.fileno(), (notice + "\r\n").encode())
        server.sendall(_size(stdout))
        while True:
            ready, _, _ = select.select([stdin, server, wake_read], [], [])
            if wake_read in ready:  # a resize
                os.read(wake_read, 512)
                server.sendall(_size(stdout))
            if server in ready:
                data = server.recv(65536)
                if not data:
                    return False
                os.write(stdout, data)
            if stdin in ready:
                keys = os.read(stdin, 4096)
                if not keys:
                    return True  # this terminal went away: the session runs on
                keys, detach, _ = keys.partition(DETACH)
                for at in range(0, len(keys), _CHUNK):
                    server.sendall(frame(DATA, keys[at:at + _CHUNK]))
                if detach:
                    return True
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGWINCH, previous)
        server.close()
        os.close(wake_read)
        os.close(wake_write)


def _size(fd: int) -> bytes:
    size = os.get_terminal_size(fd)
    return window(size.lines, size.columns)
