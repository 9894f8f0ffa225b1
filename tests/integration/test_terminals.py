"""Terminal sessions (spawn --tty) driven through `orch attach` from a real
pseudo-terminal: keys in, screen out, the window size passed on and on a resize,
Ctrl-\\ detaching with the session running on, two terminals at once, the output in
the journal, and the refusals."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from tests.integration.conftest import ORCH, Orch

DEADLINE_S = 30.0


class Terminal:
    """`orch attach` running on a pseudo-terminal of the test's own: what it shows, and
    keys typed into it."""

    def __init__(self, orch: Orch, ref: str, rows: int, columns: int) -> None:
        command = orch.machine._command([ORCH, "attach", ref], orch.user, orch.env)
        pid, fd = pty.fork()
        if pid == 0:  # the child: attach, on the terminal pty.fork made
            try:
                os.execvp(command[0], command)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.status: int | None = None  # its exit status, once reaped
        self.resize(rows, columns)
        self.screen = b""

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        with_children = -os.getpgid(self.pid) if os.getpgid(self.pid) else self.pid
        os.kill(with_children, signal.SIGWINCH)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def expect(self, text: bytes) -> bytes:
        """Read until TEXT has been shown (after what earlier expects consumed)."""
        deadline = time.monotonic() + DEADLINE_S
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never showed; the screen: {self.screen[-800:]!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the attach ended: its side of the terminal closed
                    chunk = b""
                if not chunk:
                    assert text in self.screen, f"{text!r} never showed: {self.screen!r}"
                self.screen += chunk
        shown, _, self.screen = self.screen.partition(text)
        return shown + text

    def ended(self) -> int:
        """The attach's exit status, once it has exited (within the deadline), with all
        it showed read."""
        deadline = time.monotonic() + DEADLINE_S
        while self.status is None:
            assert time.monotonic() < deadline, "attach did not exit"
            select.select([self.fd], [], [], 0.1)
            self._drain()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        self._drain()
        return self.status

    def _drain(self) -> None:
        """Read what is there to read now."""
        while select.select([self.fd], [], [], 0)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # its side closed and nothing is left
                return
            if not chunk:
                return
            self.screen += chunk

    def close(self) -> None:
        if self.status is None and os.waitpid(self.pid, os.WNOHANG)[0] == 0:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        with suppress(OSError):
            os.close(self.fd)


@contextmanager
def attached(orch: Orch, ref: str, rows: int = 30, columns: int = 100) -> Iterator[Terminal]:
    terminal = Terminal(orch, ref, rows, columns)
    try:
        yield terminal
    finally:
        terminal.close()


def test_a_shell_on_a_terminal_is_attached_detached_and_attached_again(
        user_orch: Orch, root_orch: Orch) -> None:
    sid = user_orch.spawn("/bin/sh", opts=["--tty", "--name", "term"])
    assert user_orch.show(sid)["status"] == "running"
    with attached(user_orch, sid, rows=30, columns=100) as one:
        one.expect(b"Ctrl-\\ detaches")
        one.type(b"echo hel''lo-there; stty size\r")
        one.expect(b"hello-there")
        one.expect(b"30 100")  # the window's size reached the program
        one.resize(41, 120)
        one.type(b"stty size\r")
        one.expect(b"41 120")  # and every resize
        with attached(user_orch, sid, rows=41, columns=120) as two:  # two at once
            two.expect(b"hello-there")  # what was shown before it attached
            two.type(b"echo from-two\r")
            one.expect(b"from-two")
            two.type(b"\x1c")
            assert two.ended() == 0
        one.type(b"\x1c")  # Ctrl-\ detaches; the session runs on
        assert one.ended() == 0
        assert b"detached from session" in one.screen
    assert user_orch.show(sid)["status"] == "running"
    with attached(user_orch, sid) as again:
        again.expect(b"hello-there")
        again.type(b"echo back-again; exit 3\r")
        again.expect(b"back-again")
        assert again.ended() == 0
        assert b"has ended" in again.screen
    assert user_orch("wait", sid).returncode == 1
    shown = user_orch.show(sid)
    assert (shown["status"], shown["exit_code"]) == ("failed", 3)  # the program's status
    logs = user_orch.ok("logs", "-o", "cat", sid)
    assert "hello-there" in logs and "back-again" in logs  # the terminal's output
    # Refusals, in one line each.
    ended = user_orch("attach", sid)
    assert ended.returncode != 0 and len(ended.stderr.strip().splitlines()) == 1
    plain = user_orch.spawn("sleep", "600")
    try:
        no_tty = user_orch("attach", plain)  # no terminal here, and none there
        assert no_tty.returncode == 2 and "needs a terminal" in no_tty.stderr
        with attached(user_orch, plain) as refused:
            assert refused.ended() == 2
            assert b"has no terminal: only a session spawned with --tty" in refused.screen
        with attached(root_orch, sid) as other:  # another user's session is not found
            assert other.ended() != 0
    finally:
        user_orch("stop", plain)


@pytest.mark.parametrize("signal_name", ["TERM"])
def test_stopping_a_terminal_session_ends_its_attach(user_orch: Orch, signal_name: str) -> None:
    sid = user_orch.spawn("/bin/sh", opts=["--tty"])
    with attached(user_orch, sid) as one:
        one.expect(b"Ctrl-\\ detaches")
        one.type(b"echo ready\r")
        one.expect(b"ready")
        user_orch.ok("stop", sid)
        assert one.ended() == 0
        assert b"has ended" in one.screen
    assert user_orch.show(sid)["status"] == "stopped"
