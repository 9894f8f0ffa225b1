"""`orch top`'s board without a terminal: CPU between readings, sorting, selection,
and what each key asks for (a kill only after a yes)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from orch import top
from orch.top import (
    DOWN,
    KEYS_HELP,
    UP,
    Board,
    Row,
    Said,
    Sort,
    cpu_cell,
    headline,
    keys,
    summary,
    view,
)


def _session(name: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"{name}-0000-4000-8000-000000000000", "name": name, "unit":
            f"orch-{name}-00000000.service", "scope": "user", "status": "running",
            "created_at": "2026-12-06T10:00:00+00:00", "memory_current": None,
            "cpu_usage_nsec": None, "cost_usd": None, **fields}


def test_cpu_is_the_share_of_the_interval_since_the_last_reading() -> None:
    board = Board()
    board.update([_session("a", cpu_usage_nsec=1_000_000_000)], now=10.0)
    assert board.rows[0].cpu_percent is None  # no interval yet: the time so far
    assert cpu_cell(board.rows[0]) == "1s"
    board.update([_session("a", cpu_usage_nsec=1_500_000_000)], now=12.0)
    assert board.rows[0].cpu_percent == 25.0 and cpu_cell(board.rows[0]) == "25.0%"
    board.update([_session("a")], now=14.0)  # no longer counted (it ended)
    assert cpu_cell(board.rows[0]) == "-"


def test_each_sort_key_orders_the_board_unknowns_last() -> None:
    board = Board()
    sessions = [_session("small", memory_current=1, cost_usd=3.0,
                         created_at="2026-12-06T09:00:00+00:00"),
                _session("big", memory_current=9, cost_usd=None,
                         created_at="2026-12-06T11:00:00+00:00"),
                _session("none", cost_usd=0.5)]
    board.update(sessions, now=1.0)
    assert [r.session["name"] for r in board.rows] == ["big", "small", "none"]
    board.press("$", now=1.0)
    assert board.sort is Sort.COST
    assert [r.session["name"] for r in board.rows] == ["small", "none", "big"]
    board.press("a", now=1.0)
    assert [r.session["name"] for r in board.rows] == ["big", "none", "small"]
    assert board.footer(1.5) == "sorted by age" and board.footer(5.0) == KEYS_HELP


def test_sessions_alike_in_the_sort_show_the_live_newest_first() -> None:
    # A user manager counts no memory: every MEM is `-`. Before, they came in id order,
    # and the one running among forty ended ones could be off the first screen.
    board = Board()
    ended = [_session(f"old{n}", status="exited", created_at=f"2026-12-06T1{n}:00:00+00:00")
             for n in range(5)]
    board.update([*ended, _session("live", created_at="2026-12-06T08:00:00+00:00")], now=1.0)
    assert [r.session["name"] for r in board.rows] == ["live", "old4", "old3", "old2",
                                                      "old1", "old0"]


def test_the_selection_follows_its_session_across_readings() -> None:
    board = Board(Sort.AGE)
    a = _session("a", created_at="2026-12-06T12:00:00+00:00")
    b = _session("b", created_at="2026-12-06T11:00:00+00:00")
    board.update([a, b], now=1.0)
    assert board.current() is not None and board.current().session["name"] == "a"
    board.press(DOWN, now=1.0)
    board.press(DOWN, now=1.0)  # stays on the last
    assert board.current().session["name"] == "b"
    c = _session("c", created_at="2026-12-06T13:00:00+00:00")
    board.update([c, a, b], now=2.0)  # a new one on top: still b
    assert board.current().session["name"] == "b"
    board.update([c, a], now=3.0)  # b gone: the first
    assert board.current().session["name"] == "c"
    board.press(UP, now=3.0)
    assert board.current().session["name"] == "c"


def test_stop_and_logs_act_at_once_a_kill_asks_first() -> None:
    board = Board()
    board.update([_session("a")], now=1.0)
    assert board.press("s", now=1.0) == ("stop", board.rows[0])
    assert board.press("l", now=1.0) == ("logs", board.rows[0])
    assert board.press("k", now=1.0) is None
    assert board.footer(60.0) == "kill a (a-0000-4)? [y/N]"  # asked until answered
    assert board.press("y", now=2.0) == ("kill", board.rows[0])
    assert board.press("k", now=2.0) is None
    assert board.press("n", now=2.0) is None and board.footer(2.5) == "kill cancelled"
    assert board.press("x", now=3.0) is None
    assert board.press("q", now=3.0) == "quit"


def test_a_question_stays_until_answered_what_else_is_said_waits() -> None:
    board = Board()
    board.update([_session("a"), _session("b")], now=1.0)
    board.press("k", now=1.0)
    told = ["b: stopped"]  # a stop in the background ended meanwhile
    board.take(told, now=2.0)
    # Before, that replaced the question, and a `y` then still killed.
    assert board.footer(2.0) == "kill a (a-0000-4)? [y/N]" and told == ["b: stopped"]
    board.press("n", now=3.0)
    board.take(told, now=3.0)
    assert board.footer(3.0) == "b: stopped" and told == []


def test_a_kill_asked_for_is_of_the_session_asked_about() -> None:
    board = Board(Sort.AGE)
    a = _session("a", created_at="2026-12-06T12:00:00+00:00")
    board.update([a], now=1.0)
    board.press("k", now=1.0)
    newer = _session("z", created_at="2026-12-06T13:00:00+00:00")
    board.update([newer, a], now=2.0)  # a reading comes before the answer
    wanted = board.press("y", now=2.0)
    assert isinstance(wanted, tuple) and wanted[1].session["name"] == "a"


def test_nothing_to_act_on_with_no_sessions() -> None:
    board = Board()
    board.update([], now=1.0)
    assert board.press("s", now=1.0) is None and board.press("k", now=1.0) is None
    assert board.current() is None


def test_summary_adds_up_what_is_known() -> None:
    board = Board()
    board.update([_session("a", memory_current=1 << 20, cost_usd=0.5),
                  _session("b", memory_current=1 << 20, status="exited"),
                  _session("c", cost_usd=0.25, status="idle")], now=1.0)
    # Before a second reading no session has a percentage: '-' (it read 0.0% while a
    # busy loop ran).
    assert summary(board) == ("3 sessions, 2 running · MEM 2.0M · CPU - · COST $0.75 · "
                              "sorted by memory")
    board.update([_session("a")], now=2.0)
    assert summary(board).startswith("1 session, 1 running") and "COST - " in summary(board)
    assert "MEM - " in summary(board)  # not 0B: nothing is known of it (as its row's -)


def test_the_headline_gives_up_words_before_facts_to_fit() -> None:
    board = Board()
    board.update([_session(f"s{i}", memory_current=(300 << 20) * i, cost_usd=1.25 * i)
                  for i in range(12)], now=1.0)
    full = headline(board, 2.0, 200)
    assert full == ("orch top · 12 sessions, 12 running · MEM 19.3G · CPU - · "
                    "COST $82.50 · sorted by memory · every 2s")
    assert headline(board, 2.0, 80) == (  # a common terminal: every fact, whole
        "12 sessions, 12 running · MEM 19.3G · CPU - · COST $82.50 · by memory · 2s")
    assert headline(board, 2.0, 40) == headline(board, 2.0, 80)  # cut by the view


def test_said_shows_an_agents_tool_call_and_a_programs_line() -> None:
    said = Said()
    agent = _session("agent", provider="claude")
    call = ('{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1",'
            '"name":"Bash","input":{"command":"make test"}}]}}')
    assert said.of(agent, [(1, call)]) == "⏺ Bash make test"  # on one line, spaces folded
    assert said.of(_session("plain"), [(1, "  building   step 3  ")]) == "building step 3"
    assert said.of(_session("plain"), None) == ""


def test_said_shows_the_newest_line_the_transcript_shows_not_a_quiet_event() -> None:
    # copilot ends a turn with events its transcript does not show: LAST stayed empty
    # when top first saw such a session, as it read one line a session.
    said = Said()
    agent = _session("copilot", provider="copilot")
    answer = json.dumps({"type": "assistant.message", "data": {"content": "All done."}})
    quiet = [json.dumps({"type": kind, "data": {}})
             for kind in ("assistant.turn_end", "assistant.idle")]
    recent = [(1, answer), (2, quiet[0])]
    assert said.of(agent, recent) == "All done."
    assert said.of(agent, [*recent, (3, quiet[1])]) == "All done."  # fed on, not again
    call = json.dumps({"type": "tool.execution_start",
                       "data": {"toolName": "bash", "arguments": {"command": "ls"}}})
    # The line fed last has scrolled out of those held: what came after it is fed.
    assert said.of(agent, [(3, quiet[1]), (4, call), (5, quiet[0])]) == "⏺ bash ls"
    assert said.of(_session("plain"), [(1, "first"), (2, "")]) == "first"
    # Lines read back (older) come after top first drew: they are shown too.
    later = Said()
    assert later.of(agent, [(2, quiet[0]), (3, quiet[1])]) == ""
    assert later.of(agent, [(1, answer), (2, quiet[0]), (3, quiet[1])]) == "All done."


def test_the_view_marks_the_selection_and_keeps_it_in_sight() -> None:
    board = Board(Sort.AGE)
    sessions = [_session(f"s{i:02}", created_at=f"2026-12-06T{i:02}:00:00+00:00")
                for i in range(20)]
    board.update(sessions, now=1.0)
    for _ in range(15):
        board.press(DOWN, now=1.0)
    console = Console(file=io.StringIO(), width=100, height=12, record=True)
    console.print(view(board, lambda s: "said " + s["name"], 12, False, 2.0))
    text = console.export_text()
    assert "s04" in text and "said s04" in text  # the selected (16th newest) is shown
    assert "s19" not in text  # the newest scrolled away
    assert text.splitlines()[0].startswith("20 sessions, 20 running")  # 80 columns


def _shown(board: Board, rows: int) -> list[str]:
    return [row.session["name"] for row in board.in_sight(rows)]


def _selected(board: Board) -> str:
    row = board.current()
    assert row is not None
    return str(row.session["name"])


def test_the_rows_in_sight_move_only_to_keep_the_selection_in_sight() -> None:
    # Before, the selection was always the last row in sight once it had scrolled:
    # going up scrolled the list, and nothing below the selection showed.
    board = Board(Sort.AGE)
    board.update([_session(f"s{i:02}", created_at=f"2026-12-06T{i:02}:00:00+00:00")
                  for i in range(20)], now=1.0)  # s19 first: the newest
    assert _shown(board, 5) == ["s19", "s18", "s17", "s16", "s15"]
    for _ in range(6):
        board.press(DOWN, now=1.0)  # to s13, the 7th
    assert _shown(board, 5) == ["s17", "s16", "s15", "s14", "s13"]
    board.press(UP, now=1.0)
    board.press(UP, now=1.0)  # s15: in sight, nothing moves
    assert _shown(board, 5) == ["s17", "s16", "s15", "s14", "s13"]
    for _ in range(3):
        board.press(UP, now=1.0)  # s18: above the first in sight
    assert _shown(board, 5) == ["s18", "s17", "s16", "s15", "s14"]
    board.update([_session("s00", created_at="2026-12-06T00:00:00+00:00"),
                  _session("s18", created_at="2026-12-06T18:00:00+00:00")], now=2.0)
    assert _shown(board, 5) == ["s18", "s00"]  # a shorter list shows whole


def test_a_new_order_shows_and_selects_its_top() -> None:
    # Before, the selection kept its session and the view scrolled to it: sorted by
    # CPU, the busiest sessions were out of sight.
    board = Board(Sort.MEMORY)
    board.update([_session(f"s{i:02}", memory_current=(i + 1) << 20, cpu_usage_nsec=i)
                  for i in range(12)], now=1.0)
    board.update([_session(f"s{i:02}", memory_current=(i + 1) << 20,
                           cpu_usage_nsec=i + (10**9 if i < 2 else 0)) for i in range(12)],
                 now=2.0)
    board.press(DOWN, now=2.0)
    board.press(DOWN, now=2.0)
    assert _shown(board, 3) == ["s11", "s10", "s09"] and _selected(board) == "s09"
    board.press("c", now=2.0)
    assert _shown(board, 3)[:2] == ["s01", "s00"] and _selected(board) == "s01"


def test_the_view_fits_a_small_terminal_headline_cut_keys_whole() -> None:
    board = Board()
    board.update([_session(f"s{i:02}") for i in range(30)], now=1.0)
    console = Console(file=io.StringIO(), width=60, height=20, record=True)
    console.print(view(board, lambda s: "", 20, False, 2.0, width=60))
    lines = console.export_text().splitlines()
    # Before, the headline wrapped and the keys' second line fell off the screen.
    assert len(lines) <= 20 and lines[0].startswith("30 sessions, 30 running")
    assert lines[1].split()[:2] == ["NAME", "STATUS"]
    assert "q quit" in " ".join(lines[-2:])


def test_what_a_session_printed_reaches_the_screen_as_text_never_as_commands() -> None:
    said = Said()
    # An escape sequence (a pager's leave-alternate-screen) blanked top's own screen;
    # rich's markup in a line ("[/b]") would have ended top with an error.
    assert said.of(_session("less"), [(1, "a \x1b[?1049l b")]) == "a \\x1b[?1049l b"
    board = Board()
    board.update([_session("loud")], now=1.0)
    console = Console(file=io.StringIO(), width=100, height=12, record=True)
    console.print(view(board, lambda s: "[/b] not [bold]markup", 12, False, 2.0))
    assert "[/b] not [bold]markup" in console.export_text()


def test_the_fleet_view_has_a_host_column() -> None:
    board = Board()
    board.update([_session("a", host="gpu1")], now=1.0)
    console = Console(file=io.StringIO(), width=100, height=12, record=True)
    console.print(view(board, lambda s: "", 12, True, 2.0))
    text = console.export_text()
    assert text.splitlines()[1].split()[:2] == ["HOST", "NAME"] and "gpu1" in text


def test_rows_are_keyed_by_host_and_id() -> None:
    board = Board()
    board.update([_session("a", host="h1"), _session("a", host="h2")], now=1.0)
    assert len({row.key for row in board.rows}) == 2
    assert isinstance(board.rows[0], Row)


def test_keys_typed_fast_are_read_one_by_one() -> None:
    assert keys("\x1b[Ak") == [UP, "k"]
    assert keys("ky") == ["k", "y"]
    assert keys("\x1b[B\x1b[A$") == [DOWN, UP, "$"]
    assert keys("\x1b[1;5A") == ["\x1b[1;5A"]  # a modified arrow: one key, unknown
    assert keys("") == []


def test_an_action_on_another_host_that_fails_is_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, ssh's failure escaped the action's thread: a trace over the screen, and
    # "killing x…" for good.
    from orch import hosts, ssh

    host = hosts.Host("build1", hosts.parse_address("me@build1"))
    asked: list[list[str]] = []

    def refuse(address: object, argv: list[str], timeout: float | None = None) -> str:
        asked.append(argv)
        raise ssh.Unanswered("session 45c58811 (x) has already ended: failed", 1)

    monkeypatch.setattr(ssh, "capture", refuse)
    assert top.act_there(host, "kill", "45c58811", "x", ["--user"]) == \
        "kill on build1: session 45c58811 (x) has already ended: failed"
    assert asked == [["orch", "kill", "45c58811", "--user"]]
    monkeypatch.setattr(ssh, "capture", lambda *a, **k: "")
    assert top.act_there(host, "stop", "45c58811", "x", []) == "x on build1: stop done"
