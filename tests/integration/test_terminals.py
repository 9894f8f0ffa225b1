"""Terminal sessions (spawn --tty) driven through `orch attach` from a real
pseudo-terminal: keys in, screen out, the window size passed on and on a resize,
Ctrl-\\ detaching with the session running on, two terminals at once, the output in
the journal, and the refusals."""

from __future__ import annotations

import fcntl
import json
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

import pytest

from tests.integration.conftest import ORCH, Orch
from tests.integration.fake_model import Text, serve
from tests.integration.test_agents import _owned, agent  # noqa: F401 (a fixture)

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




def test_claudes_own_terminal_ui_is_driven_through_attach(agent: Orch) -> None:  # noqa: F811
    """The case --tty is for: claude without -p, typed at, detached from, come back to."""
    work = _owned(agent, agent.state_dir.parent / "work")
    home = _owned(agent, agent.state_dir.parent / "claude-home")
    key = "sk-ant-tty-demo"
    # What claude's first run would ask a person: onboarding done, this folder trusted,
    # this API key accepted. (Its own files, in a config directory of the test's.)
    _owned(agent, home / ".claude.json", json.dumps({
        "hasCompletedOnboarding": True, "lastOnboardingVersion": "2.1.197", "theme": "dark",
        "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
        "projects": {str(work): {"hasTrustDialogAccepted": True,
                                 "hasCompletedProjectOnboarding": True}}}))
    with serve([Text("tui answer here")]) as (url, script):
        keys = _owned(agent, agent.state_dir.parent / "tty.env",
                      f"ANTHROPIC_API_KEY={key}\nANTHROPIC_BASE_URL={url}\n"
                      f"CLAUDE_CONFIG_DIR={home}\nDISABLE_AUTOUPDATER=1\n")
        sid = agent.ok("spawn", "--tty", "--env-file", str(keys), "--cwd", str(work),
                       "--", "claude").strip()
        try:
            with attached(agent, sid, rows=40, columns=120) as one:
                one.expect(b"? for shortcuts", drawn=True)  # its prompt box is up
                one.type(b"say hi please")
                one.expect(b"say hi please", drawn=True)  # typed in; submitted on its own
                one.type(b"\r")
                one.expect(b"tui answer here", drawn=True)
                one.type(b"\x1c")
                assert one.ended() == 0
            assert agent.show(sid)["status"] == "running"
            with attached(agent, sid, rows=40, columns=120) as again:
                again.expect(b"tui answer here", drawn=True)  # the screen as it was
                again.type(b"\x1c")
                assert again.ended() == 0
            assert len([r for r in script.requests if r["body"].get("tools")]) == 1
        finally:
            agent.ok("stop", sid)
    # What its terminal showed reached the journal too, to the last words it wrote as
    # it ended. (A full-screen program's stream, split into journal lines, cannot be
    # drawn again exactly: its words are checked where it writes them plainly.)
    deadline = time.monotonic() + DEADLINE_S
    while "Resume this session with" not in (written := agent.ok("logs", "-o", "cat", sid)):
        assert time.monotonic() < deadline, f"the journal holds: {written[-2000:]!r}"
        time.sleep(0.2)  # polling the journal, with a deadline
    assert b"claude --resume" in ANSI.sub(b"", written.encode())
