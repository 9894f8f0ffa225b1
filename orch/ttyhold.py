"""A terminal session's holder: `python -I ttyhold.py SOCKET PROGRAM ARGV0 [ARG...]`, the
ExecStart= of a session spawned with --tty.

It opens a pseudo-terminal and forks. The parent, the unit's main process, makes the
terminal its controlling one and executes PROGRAM on it: the MainPID systemd watches is
the program itself, and its exit status is the program's. The child keeps the
terminal's master side, inside the same unit (its cgroup holds everything): it copies
what the program writes to its own standard output (the journal) and to every client
attached at SOCKET (`orch attach`), and passes on their keys and window sizes. It ends
once the program and whatever it left on the terminal have closed it.

A client speaks in frames: one kind byte, a 2-byte big-endian length, the payload.
Kind `d`: keys for the program. Kind `w`: the client's window, rows and columns (two
16-bit big-endian numbers). The holder sends the terminal's output as it is, after the
last REPLAY_BYTES of it on connect. Standard library only: it runs under -I.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import selectors
import signal
import socket
import stat
import struct
import sys
import termios

REPLAY_BYTES = 16 * 1024  # what a client that attaches sees first
HEADER = struct.Struct(">cH")
DATA, WINDOW = b"d", b"w"
DEFAULT_WINDOW = (24, 80)


def frame(kind: bytes, payload: bytes) -> bytes:
    """One client message."""
    return HEADER.pack(kind, len(payload)) + payload


def window(rows: int, columns: int) -> bytes:
    """A window-size message."""
    return frame(WINDOW, struct.pack(">HH", rows, columns))


def _set_window(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _listen(path: str) -> socket.socket:
    """The socket clients attach at: a socket a crash left there is replaced; anything
    else is not touched. Only its owner (and root) may connect."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(path)
    finally:
        os.umask(old)
    server.listen(8)
    return server


class Relay:
    """The master side: the program's output to the journal and the clients, their
    input to the program."""

    def __init__(self, master: int, server: socket.socket) -> None:
        self.master = master
        self.server = server
        self.selector = selectors.DefaultSelector()
        self.selector.register(master, selectors.EVENT_READ)
        self.selector.register(server, selectors.EVENT_READ)
        self.clients: dict[socket.socket, bytearray] = {}
        self.recent = bytearray()
        self.size = DEFAULT_WINDOW

    def run(self) -> None:
        while all(self.handle(key.fileobj) for key, _ in self.selector.select()):
            pass

    def handle(self, ready: object) -> bool:
        """Act on READY, one of the selector's ready objects; False once the terminal
        has closed. A client dropped earlier in the same batch (its send failed) is
        skipped: reading it would find it closed."""
        if ready is self.server:
            self._accept()
        elif ready == self.master:
            return self._output()
        elif isinstance(ready, socket.socket) and ready in self.clients:
            self._input(ready)
        return True

    def _accept(self) -> None:
        client, _ = self.server.accept()
        client.setblocking(True)
        try:
            client.sendall(bytes(self.recent))
        except OSError:
            client.close()
            return
        self.clients[client] = bytearray()
        self.selector.register(client, selectors.EVENT_READ)

    def _output(self) -> bool:
        try:
            data = os.read(self.master, 65536)
        except OSError as err:
            if err.errno != errno.EIO:
                raise
            data = b""  # every holder of the terminal's slave side has closed it
        if not data:
            return False
        out = sys.stdout.buffer
        out.write(data)
        out.flush()
        self.recent += data
        del self.recent[:-REPLAY_BYTES]
        for client in list(self.clients):
            try:
                client.sendall(data)
            except OSError:
                self._drop(client)
        return True

    def _input(self, client: socket.socket) -> None:
        try:
            data = client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        pending = self.clients[client]
        pending += data
        while len(pending) >= HEADER.size:
            kind, length = HEADER.unpack_from(pending)
            if len(pending) < HEADER.size + length:
                break
            payload = bytes(pending[HEADER.size:HEADER.size + length])
            del pending[:HEADER.size + length]
            if kind == DATA:
                os.write(self.master, payload)
            elif kind == WINDOW and length == 4:
                self._resize(*struct.unpack(">HH", payload))

    def _resize(self, rows: int, columns: int) -> None:
        if (rows, columns) == self.size:
            # The same size again (a client attaching): a program redraws on SIGWINCH
            # only when the size changed, so change it there and back.
            _set_window(self.master, max(rows - 1, 1), columns)
        self.size = (rows, columns)
        _set_window(self.master, rows, columns)

    def _drop(self, client: socket.socket) -> None:
        if self.clients.pop(client, None) is None:
            return  # dropped already
        self.selector.unregister(client)
        client.close()


def main(argv: list[str]) -> int:
    if len(argv) < 4:
        print("usage: ttyhold.py SOCKET PROGRAM ARGV0 [ARG...]", file=sys.stderr)
        return 2
    path, program, args = argv[1], argv[2], argv[3:]
    try:
        server = _listen(path)
    except OSError as err:
        print(f"orch: cannot listen at {path}: {os.strerror(err.errno or 0)}", file=sys.stderr)
        return 1
    master, slave = pty.openpty()
    _set_window(master, *DEFAULT_WINDOW)
    if os.fork() == 0:  # the holder of the master side
        # It ends when the terminal closes (the program has ended), after the last of
        # its output: the stop's SIGTERM to the unit's processes must not cut that short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.close(slave)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        try:
            Relay(master, server).run()
        finally:
            server.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
                os.rmdir(os.path.dirname(path))  # its own
        os._exit(0)
    # The unit's main process: the program, on the terminal.
    os.close(master)
    server.close()
    with contextlib.suppress(OSError):  # a session leader already: systemd makes each
        os.setsid()  # service one, with no controlling terminal yet
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    # A service has no TERM (systemd sets one only for a unit on a real terminal); what
    # attaches is a terminal emulator, most likely an xterm-compatible one.
    env = {**os.environ, "TERM": os.environ.get("TERM") or "xterm-256color"}
    try:
        os.execve(program, args, env)
    except OSError as err:
        print(f"orch: cannot run {program}: {os.strerror(err.errno or 0)}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
