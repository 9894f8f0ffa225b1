"""A program run on a pseudo-terminal of the test's own (what it shows, keys typed into
it), and a screen model that reads what a full-screen program draws: for the tests of
`orch attach`, here and on other hosts."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

DEADLINE_S = 30.0
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[A-Za-z~]|\x1b\][^\x07]*\x07|\x1b[()=>][A-Z0-9]?")
_CONTROL = re.compile(r"\x1b\[([0-9;?<>=]*)([A-Za-z~])|\x1b\][^\x07]*\x07|\x1b[()=>][A-Z0-9]?"
                      r"|[\r\n\b]|[^\x1b\r\n\b]+")


class Screen:
    """What a full-screen program's output puts on a ROWS x COLUMNS terminal: its text
    where its cursor moves put it (a program redraws only what changed, so the words
    it shows need not be in its output as such). Enough of a VT100 for claude's UI."""

    def __init__(self, rows: int, columns: int) -> None:
        self.rows, self.columns = rows, columns
        self.cells = [[" "] * columns for _ in range(rows)]
        self.row = self.column = 0

    def feed(self, data: bytes) -> None:
        for match in _CONTROL.finditer(data.decode("utf-8", "replace")):
            text, final = match.group(0), match.group(2)
            numbers = [int(n) for n in re.findall(r"\d+", match.group(1) or "")]
            count = numbers[0] if numbers else 1
            if final == "G":
                self.column = min(count - 1, self.columns - 1)
            elif final in ("H", "f"):
                row, column = [*numbers, 1, 1][:2]
                self.row, self.column = min(row, self.rows) - 1, min(column, self.columns) - 1
            elif final == "A":
                self.row = max(self.row - count, 0)
            elif final == "B":
                self.row = min(self.row + count, self.rows - 1)
            elif final == "C":
                self.column = min(self.column + count, self.columns - 1)
            elif final == "D":
                self.column = max(self.column - count, 0)
            elif final == "K":
                self.cells[self.row][self.column:] = [" "] * (self.columns - self.column)
            elif final == "J" and numbers[:1] == [2]:
                self.cells = [[" "] * self.columns for _ in range(self.rows)]
            elif final is not None or text.startswith("\x1b"):
                pass  # colours, modes, titles: nothing on the screen
            elif text == "\r":
                self.column = 0
            elif text == "\n":
                self._down()
            elif text == "\b":
                self.column = max(self.column - 1, 0)
            else:
                for char in text:
                    if self.column >= self.columns:
                        self.column = 0
                        self._down()
                    self.cells[self.row][self.column] = char
                    self.column += 1

    def _down(self) -> None:
        if self.row == self.rows - 1:
            self.cells = [*self.cells[1:], [" "] * self.columns]
        else:
            self.row += 1

    def text(self) -> str:
        return "\n".join("".join(line).rstrip() for line in self.cells)


class Terminal:
    """`orch attach` running on a pseudo-terminal of the test's own: what it shows, and
    keys typed into it."""

    def __init__(self, command: list[str], rows: int, columns: int,
                 env: dict[str, str] | None = None) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: attach, on the terminal pty.fork made
            try:
                # os.environ, not the C environment: a test runner that loaded readline
                # has COLUMNS and LINES there (readline exports them), which would fix
                # the program's idea of the window at the runner's own.
                os.execvpe(command[0], command, dict(os.environ) if env is None else env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.status: int | None = None  # its exit status, once reaped
        self.display = Screen(rows, columns)  # everything shown, as drawn
        self.resize(rows, columns)
        self.screen = b""

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        with_children = -os.getpgid(self.pid) if os.getpgid(self.pid) else self.pid
        os.kill(with_children, signal.SIGWINCH)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def expect(self, text: bytes, drawn: bool = False) -> bytes:
        """Read until TEXT has been shown (after what earlier expects consumed). DRAWN:
        on the screen as a full-screen program draws it (Screen)."""
        deadline = time.monotonic() + DEADLINE_S
        while not self._shows(text, drawn):
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never showed; the screen:\n{self.display.text()}\n" \
                f"the last output: {self.screen[-400:]!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the attach ended: its side of the terminal closed
                    chunk = b""
                if not chunk:
                    assert self._shows(text, drawn), f"{text!r} never showed: {self.screen!r}"
                self.screen += chunk
                self.display.feed(chunk)
        if drawn:
            shown, self.screen = self.screen, b""  # what is drawn stays in the display
            return shown
        shown, _, self.screen = self.screen.partition(text)
        return shown + text

    def _shows(self, text: bytes, drawn: bool) -> bool:
        if not drawn:
            return text in self.screen
        return text.decode() in self.display.text()

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
def running(command: list[str], rows: int = 30, columns: int = 100,
            env: dict[str, str] | None = None) -> Iterator[Terminal]:
    """COMMAND on a terminal of the test's own, ended (by its PID) if still running."""
    terminal = Terminal(command, rows, columns, env)
    try:
        yield terminal
    finally:
        terminal.close()
