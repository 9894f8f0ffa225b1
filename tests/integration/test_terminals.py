"""Terminal sessions (spawn --tty) driven through `orch attach` from a real
pseudo-terminal: keys in, screen out, the window size passed on and on a resize,
Ctrl-\\ detaching with the session running on, two terminals at once, the output in
the journal, and the refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.integration.conftest import ORCH, Orch
from tests.integration.fake_model import Text, serve
from tests.integration.test_agents import _owned, agent  # noqa: F401 (a fixture)
from tests.terminals import ANSI, DEADLINE_S, Terminal, running
from tests.waiting import wait_for


@contextmanager
def attached(orch: Orch, ref: str, rows: int = 30, columns: int = 100) -> Iterator[Terminal]:
    """`orch attach REF` as ORCH's caller, on a terminal of the test's own."""
    with running(orch.machine._command([ORCH, "attach", ref], orch.user, orch.env),
                 rows, columns) as terminal:
        yield terminal


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

        def size_shown() -> bytes:
            one.type(b"stty size\r")
            one.expect(b"stty size\r\n")  # its echo
            return one.expect(b"\r\n")  # its answer

        # And every resize: it travels apart from the keys (a signal to attach), so keys
        # typed at once may still meet the old size; a resize lost never shows.
        wait_for(lambda: size_shown() == b"41 120\r\n", what="the new size in the session")
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


def test_a_sandboxed_terminal_session_is_attached(user_orch: Orch) -> None:
    # Before, its holder could not listen in the read-only runtime directory: the session
    # failed at once, and spawn said nothing.
    sid = user_orch.spawn("/bin/sh", opts=["--tty", "--sandbox"])
    with attached(user_orch, sid) as one:
        one.expect(b"Ctrl-\\ detaches")
        one.type(b"echo sand''boxed; exit 0\r")
        one.expect(b"sandboxed")
        assert one.ended() == 0
    assert user_orch("wait", "--timeout", "60", sid).returncode == 0


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
    def written() -> str | None:
        text = agent.ok("logs", "-o", "cat", sid)
        return text if "Resume this session with" in text else None

    assert b"claude --resume" in ANSI.sub(b"", wait_for(written, DEADLINE_S,
                                                        "claude's last words").encode())
