"""`orch top` on a pseudo-terminal of the test's own, against real managers: it shows
the sessions with what they use and last said, stops and kills the one selected (a
kill only after a yes), and quits on q; without a terminal it says so."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.browser import screenshot_dir, terminal_png
from tests.integration.conftest import ORCH, Orch
from tests.terminals import Terminal, running
from tests.waiting import wait_for

TICKER = ("import itertools, time\nfor n in itertools.count():\n"
          "    print(f'tick {n}', flush=True)\n    time.sleep(0.2)\n")


@contextmanager
def top(orch: Orch, *args: str) -> Iterator[Terminal]:
    """`orch top ARGS` as ORCH's caller, on a 30x120 terminal of the test's own."""
    with running(orch.machine._command([ORCH, "top", *args], orch.user,
                                       {**orch.env, "TERM": "xterm-256color"}),
                 rows=30, columns=120) as terminal:
        yield terminal


def _status(orch: Orch, ref: str) -> str:
    return str(orch.show(ref)["status"])


def test_top_shows_the_sessions_and_acts_on_the_one_selected(orch: Orch) -> None:
    ticker = orch.spawn(sys.executable, "-c", TICKER, opts=["--name", "ticker"])
    napper = orch.spawn("sleep", "600", opts=["--name", "napper"])
    with top(orch, "--interval", "0.5") as terminal:
        terminal.expect(b"orch top \xc2\xb7 2 sessions, 2 running", drawn=True)
        terminal.expect(b"napper", drawn=True)
        terminal.expect(b"ticker", drawn=True)
        terminal.expect(b"tick ", drawn=True)  # the ticker's last line, as it comes
        header = next(line for line in terminal.display.text().splitlines()
                      if line.lstrip().startswith("NAME"))
        assert header.split() == ["NAME", "STATUS", "AGE", "MEM", "CPU", "COST", "LAST"]
        if (shots := screenshot_dir()) is not None and orch.scope == "system":
            terminal.expect(b"%", drawn=True)  # a CPU share: an interval has passed
            terminal_png(terminal.display.text(), shots / "top.png", 120, 30)
        # Newest first, the selection moved to the top: napper.
        terminal.type(b"a")
        terminal.expect(b"sorted by age", drawn=True)
        terminal.type(b"\x1b[A")
        terminal.type(b"k")
        terminal.expect(b"kill napper (" + napper[:8].encode() + b")? [y/N]", drawn=True)
        terminal.type(b"n")
        terminal.expect(b"kill cancelled", drawn=True)
        assert _status(orch, napper) == "running"
        terminal.type(b"k")
        terminal.expect(b"? [y/N]", drawn=True)
        terminal.type(b"y")
        wait_for(lambda: _status(orch, napper) == "killed", 30, "napper to be killed")
        terminal.type(b"\x1b[B")  # the ticker, below it
        terminal.type(b"s")
        wait_for(lambda: _status(orch, ticker) == "stopped", 60, "the ticker to stop")
        terminal.expect(b"0 running", drawn=True)
        terminal.type(b"q")
        assert terminal.ended() == 0


def test_a_quiet_sessions_last_words_show_beside_a_loud_one(user_orch: Orch) -> None:
    quiet = user_orch.spawn("/bin/sh", "-c", "echo quiet-words; exec sleep 300",
                            opts=["--name", "quiet"])
    wait_for(lambda: "quiet-words" in user_orch.logs_text(quiet), what="its one line")
    loud = user_orch.spawn("/bin/sh", "-c", "seq 1 2000; exec sleep 300", opts=["--name", "loud"])
    wait_for(lambda: "2000" in user_orch.logs_text(loud), what="the loud one's lines")
    with top(user_orch) as terminal:
        # Before, only the last 200 lines of all were read: the loud one's, and the
        # quiet one's LAST stayed empty until it spoke again.
        terminal.expect(b"quiet-words", drawn=True)
        terminal.type(b"q")
        assert terminal.ended() == 0


def test_l_shows_the_selected_sessions_logs_and_comes_back(user_orch: Orch) -> None:
    user_orch.spawn("/bin/sh", "-c", "echo said-by-the-session; exec sleep 300",
                    opts=["--name", "talker"])
    wait_for(lambda: "said-by-the-session" in user_orch.logs_text("talker"),
             what="its line in the journal")
    user_orch.extra_env["SYSTEMD_PAGER"] = "cat"  # the pager: prints, and returns at once
    with top(user_orch, "--interval", "0.5") as terminal:
        terminal.expect(b"talker", drawn=True)
        terminal.type(b"l")
        terminal.expect(b"said-by-the-session")  # `orch logs`, on the terminal itself
        terminal.expect(b"orch top \xc2\xb7 1 session,", drawn=True)  # and top again
        terminal.type(b"q")
        assert terminal.ended() == 0


def test_top_needs_a_terminal(root_orch: Orch) -> None:
    done = root_orch("top")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().startswith("orch: orch top needs a terminal")
    assert len(done.stderr.strip().splitlines()) == 1
