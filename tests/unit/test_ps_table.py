"""The `orch ps` table fits the terminal as systemctl's tables do: flexible columns cut
with an ellipsis on a terminal, every cell whole with --full or when piped."""

from __future__ import annotations

import dataclasses
import fcntl
import io
import os
import select
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orch import render
from orch.session import Session, Status
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 5, 23, 0, 0, tzinfo=UTC)
LONG_NAME = "a-session-with-a-name-much-longer-than-twenty-four-characters"
LONG_COMMAND = ["claude", "-p", "review " + "the whole repository carefully " * 10]


def _session(number: int, **changes: Any) -> Session:
    bare = Session(id=f"{number:08x}-0000-4000-8000-000000000000", name=f"s{number}",
                   unit=f"orch-s{number}.service", scope="user", status=Status.RUNNING,
                   main_pid=1000 + number, invocation_id=None, argv=["sleep", "300"],
                   cwd="/", tags=[], description="",
                   created_at=(NOW - timedelta(minutes=number)).isoformat(),
                   started_at=None, ended_at=None, exit_code=None, exit_signal=None,
                   result=None, final_result=None, parent_id=None)
    return dataclasses.replace(bare, **changes)


SESSIONS = [_session(1, name=LONG_NAME, argv=LONG_COMMAND), _session(2),
            _session(3, name="mid-sized-name", argv=["make", "-j8", "test"],
                     status=Status.STARTING)]


@pytest.mark.parametrize("width", [40, 80, 200])
def test_every_line_fits_the_width_and_cut_cells_end_in_an_ellipsis(width: int) -> None:
    lines = render.table(SESSIONS, width, now=NOW).splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    assert "\u2026" in lines[1]  # the long name or command was cut
    assert LONG_COMMAND[2] not in lines[1]
    assert lines[2].startswith("00000002  s2")  # a short row keeps its cells whole


def test_at_eighty_columns_the_widest_flexible_columns_give_way() -> None:
    lines = render.table(SESSIONS, 80, now=NOW).splitlines()
    header = lines[0]
    assert header.split() == ["ID", "NAME", "STATUS", "PID", "MEM", "CPU", "COST", "AGE",
                              "COMMAND"]
    # The fixed columns stay whole; the name and the command share what is left.
    assert "starting" in lines[3] and "1001" in lines[1] and "1m" in lines[1]
    name_cell = lines[1][10:header.index("STATUS")].rstrip()
    assert name_cell.endswith("\u2026") and LONG_NAME.startswith(name_cell[:-1])
    assert len(lines[1]) == 80 and lines[1].endswith("\u2026")


def test_a_table_that_fits_is_left_whole() -> None:
    fitting = SESSIONS[1:]
    assert render.table(fitting, 200, now=NOW) == render.table(fitting, None, now=NOW)
    assert "\u2026" not in render.table(fitting, 200, now=NOW)


def test_without_a_width_every_cell_is_whole() -> None:
    text = render.table(SESSIONS, None, now=NOW)
    assert LONG_NAME in text and " ".join(LONG_COMMAND[:2]) in text
    assert "'" + LONG_COMMAND[2] + "'" in text and "\u2026" not in text


def test_a_column_is_not_cut_below_its_heading() -> None:
    lines = render.table(SESSIONS, 40, now=NOW).splitlines()
    assert lines[0].startswith("ID        NAME  STATUS")


def test_outside_utf8_the_ellipsis_is_three_dots() -> None:
    lines = render.table(SESSIONS, 60, render.ASCII_ELLIPSIS, now=NOW).splitlines()
    assert all(line.isascii() and len(line) <= 60 for line in lines)
    assert "..." in lines[1]


def _columns(text: str) -> int:
    """The terminal columns TEXT takes (East Asian wide characters: two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@pytest.mark.parametrize("width", [None, 40, 80])
def test_wide_characters_take_two_columns_and_rows_stay_aligned(width: int | None) -> None:
    wide = [_session(1, name="ünï cödé 日本語の名前", argv=["echo", "漢字" * 30]),
            _session(2)]
    lines = render.table(wide, width, now=NOW).splitlines()
    # Every row's STATUS starts in the same terminal column as its heading.
    heading = lines[0].index("STATUS")
    assert [_columns(line[:line.index("running")]) for line in lines[1:]] == [heading] * 2
    if width is not None:  # before: padded and cut by characters, 2 columns over per row
        assert all(_columns(line) <= width for line in lines), "\n".join(lines)


def test_a_control_character_in_a_cell_is_shown_escaped_on_its_row() -> None:
    odd = [_session(1, name="two\nlines", argv=["printf", "new\nline\t\x1b[31m"])]
    lines = render.table(odd, None, now=NOW).splitlines()
    assert len(lines) == 2  # before: the newline began a row of its own
    assert "two\\nlines" in lines[1] and "new\\nline\\t\\x1b[31m" in lines[1]
    assert "\x1b" not in lines[1]  # an escape sequence never reaches the terminal


@pytest.mark.parametrize("width", [40, 80, 200])
def test_the_all_hosts_table_is_laid_out_the_same_way(width: int) -> None:
    listed = [{**s.to_json(), "host": host} for s, host in
              zip(SESSIONS, ["a-host-name-that-goes-on-and-on.example.com", "local", "b"],
                  strict=True)]
    lines = render.hosts_table(listed, width, now=NOW).splitlines()
    assert lines[0].startswith("HOST  ") and lines[2].split()[1:3] == ["00000002", "s2"]
    assert all(len(line) <= width for line in lines) and "\u2026" in lines[1]
    whole = render.hosts_table(listed, None, now=NOW).splitlines()
    assert whole[0].split() == ["HOST", "ID", "NAME", "STATUS", "PID", "MEM", "CPU",
                                  "COST", "AGE", "COMMAND"]
    assert "a-host-name-that-goes-on-and-on.example.com" in whole[1] and LONG_NAME in whole[1]


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_piped_output_is_whole_whatever_columns_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert render.table_width(_Stream(tty=False)) is None
    assert render.table_width(_Stream(tty=True), full=True) is None
    assert render.table_width(_Stream(tty=True)) == 40


@pytest.mark.parametrize("value", ["", "0", "-3", "wide"])
def test_without_a_usable_columns_the_terminal_says(monkeypatch: pytest.MonkeyPatch,
                                                     value: str) -> None:
    monkeypatch.setenv("COLUMNS", value)
    leader, follower = os.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 57, 0, 0))
        with open(follower, "w", closefd=False) as stream:
            assert render.table_width(stream) == 57
    finally:
        os.close(leader)
        os.close(follower)


# --- through the real `orch ps`, in a real terminal ---------------------------------

# `orch ps` as installed, with the one seam: the listing (which reads systemd) returns
# SESSIONS; parsing, the command body, the terminal and the printing are the real ones.
_ORCH_PS = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from orch import api
from tests.unit import test_ps_table as t
api.list_sessions = lambda *args, **kwargs: t.SESSIONS
from orch.cli import main
main()
"""


def _orch_ps_in_a_terminal(args: list[str], columns: int, env: dict[str, str]) -> list[str]:
    """The lines `orch ps ARGS` writes to a terminal COLUMNS wide."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    attrs = termios.tcgetattr(follower)
    attrs[1] &= ~termios.ONLCR  # no \r before each \n
    termios.tcsetattr(follower, termios.TCSANOW, attrs)
    child = subprocess.Popen([sys.executable, "-c", _ORCH_PS, "ps", *args], stdin=follower,
                             stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks: list[bytes] = []

    def drained() -> bool:
        if not select.select([leader], [], [], 0.5)[0]:
            return False
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            return True
        chunks.append(chunk)
        return not chunk

    try:
        wait_for(drained, what="orch ps to finish writing", timeout=60)
        assert child.wait(timeout=60) == 0, child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr:
            child.stderr.close()
        os.close(leader)
    return b"".join(chunks).decode().splitlines()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    # ORCH_IN_BOX: as root where a box runs, orch would run the command in there.
    return {**env, "LC_ALL": "C.UTF-8", "ORCH_IN_BOX": "1", **extra}


def test_orch_ps_follows_the_terminal_width() -> None:
    lines = _orch_ps_in_a_terminal([], 50, _env())
    assert len(lines) == 4 and lines[0].startswith("ID")
    assert all(len(line) <= 50 for line in lines), lines
    assert "\u2026" in lines[1]


def test_orch_ps_follows_columns_over_the_terminal() -> None:
    lines = _orch_ps_in_a_terminal([], 200, _env(COLUMNS="70"))
    assert all(len(line) <= 70 for line in lines) and max(map(len, lines)) == 70


@pytest.mark.parametrize("flag", ["--full", "-l"])
def test_orch_ps_full_prints_everything_in_a_terminal(flag: str) -> None:
    lines = _orch_ps_in_a_terminal([flag], 50, _env(COLUMNS="50"))
    assert LONG_NAME in lines[1] and LONG_COMMAND[2] in lines[1]
    assert "\u2026" not in "".join(lines)


def test_orch_ps_piped_prints_everything() -> None:
    done = subprocess.run([sys.executable, "-c", _ORCH_PS, "ps"], capture_output=True,
                          text=True, env=_env(COLUMNS="40"), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert LONG_NAME in done.stdout and LONG_COMMAND[2] in done.stdout


def test_a_session_waiting_for_its_dependencies_reads_as_waiting_not_starting() -> None:
    # Before, `starting` for as long as its dependency ran (minutes), and counted live.
    from orch.top import Board, summary

    waiting = _session(1, status=Status.STARTING, after=["8c1d2e3f" * 4],
                       invocation_id=None)
    starting = _session(2, status=Status.STARTING, invocation_id=None)
    rows = render.table([waiting, starting]).splitlines()
    assert rows[1].split()[2] == "waiting" and rows[2].split()[2] == "starting"
    assert "(waiting for them to end successfully)" in render.details(waiting)
    assert "waiting for them" not in render.details(starting)
    # show's Status line says it as ps does (it said starting).
    assert render.details(waiting).splitlines()[1].split()[:2] == ["Status:", "waiting"]
    assert render.details(starting).splitlines()[1].split()[:2] == ["Status:", "starting"]
    assert waiting.to_json()["status"] == "starting"  # the contract: the unit's own state
    board = Board()
    board.update([waiting.to_json(), starting.to_json()], now=1.0)
    assert summary(board).startswith("2 sessions, 1 running")


@pytest.mark.parametrize("width", [30, 40, 50, 60])
def test_a_narrow_terminal_leaves_columns_out_whole_never_cuts_a_number(width: int) -> None:
    # Before, the line was cut at the width: 19ms read 19m… (nineteen minutes).
    busy = [_session(1, name="qa7-busy", memory_current=327_286_784,
                     cpu_usage_nsec=178_123_000_000, argv=["sh", "-c", "while :; do :; done"])]
    lines = render.table(busy, width, now=NOW).splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    header, row = lines[0].split(), lines[1].split()
    assert header == list(render.COLUMNS[:len(header)])  # whole columns, from the left
    for name, value in (("MEM", "312.1M"), ("CPU", "2min"), ("AGE", "1min")):
        if name in header[:-1]:  # a column before the last is whole
            assert value in lines[1], (name, lines[1])
    assert not any(cell.endswith("\u2026") for cell in row[2:len(header) - 1])


def test_the_room_columns_left_out_free_goes_back_to_the_name() -> None:
    # Before, the name stayed at its floor ("qa7…") with the line cut after it.
    long = [_session(1, name="qa7-busy-and-long-name", memory_current=327_286_784,
                     cpu_usage_nsec=178_123_000_000)]
    lines = render.table(long, 50, now=NOW).splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "PID", "MEM"]
    assert lines[1].split()[1] == "qa7-busy-and-lon\u2026" and len(lines[1]) == 50
