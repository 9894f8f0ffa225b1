"""Reading a session's output from journalctl's JSON: fields in every shape journalctl
gives them, lines journald split joined whole, -n counting whole lines, and the
collector reading on after what it read instead of from the start."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import pytest

from orch import journal
from orch.errors import UsageError
from orch.journal import logs_argv
from orch.journal_entries import (
    LINE_MAX_DEFAULT,
    Lines,
    field_text,
    field_values,
    joined,
    json_value,
    message,
    whole_lines,
)
from orch.journal_format import LogFormat, render_cat, render_json, render_short
from orch.pager import pager_commands, pager_env
from orch.session import Record

IDENT = "orch-a\\x20b-33333333"


def _record(scope: str) -> Record:
    return Record(id="33333333-0000-4000-8000-000000000000", name="a b",
                  unit="orch-a\\x20b-33333333.service", scope=scope, argv=["prog"], cwd="/")


# --- the journalctl command for those who run it themselves --------------------------

def test_matches_the_unit_stem_and_uid_for_user_sessions() -> None:
    argv = logs_argv(_record("user"))
    assert argv[0] == "journalctl"
    assert f"SYSLOG_IDENTIFIER={IDENT}" in argv
    assert f"_UID={os.geteuid()}" in argv


def test_system_sessions_not_restricted_by_uid() -> None:
    argv = logs_argv(_record("system"))
    assert f"SYSLOG_IDENTIFIER={IDENT}" in argv
    assert not any(arg.startswith("_UID=") for arg in argv)


def test_options_passed_through() -> None:
    argv = logs_argv(_record("user"), lines=25, follow=True, since="2026-12-06T09:00:00.5Z",
                     output=LogFormat.JSON)
    assert argv[argv.index("--lines") + 1] == "25"
    # As every command reads --since (timespan.since_usec), handed on exactly.
    assert argv[argv.index("--since") + 1] == "@1796547600.500000"
    assert argv[argv.index("--output") + 1] == "json"
    assert "--follow" in argv


def test_the_command_keeps_long_fields_from_showing_as_null() -> None:
    argv = logs_argv(_record("user"), output=LogFormat.JSON)
    assert "--all" in argv
    assert "--follow" not in argv and "--lines" not in argv and "--since" not in argv


def test_negative_lines_refused() -> None:
    with pytest.raises(UsageError) as caught:
        logs_argv(_record("user"), lines=-1)
    assert caught.value.exit_code == 2


# --- fields ----------------------------------------------------------------------------

def test_a_field_in_every_shape_journalctl_gives_it() -> None:
    entry = {"TEXT": "héllo", "BYTES": list(b"caf\xc3\xa9 \xff"),
             "REPEATED": ["one", "two"], "REPEATED_BYTES": [list(b"\x1b[1m"), "plain"],
             "EMPTY": [], "NULL": None}
    assert field_values(entry, "TEXT") == ["héllo".encode()]
    assert field_values(entry, "BYTES") == [b"caf\xc3\xa9 \xff"]
    assert field_values(entry, "REPEATED") == [b"one", b"two"]
    assert field_values(entry, "REPEATED_BYTES") == [b"\x1b[1m", b"plain"]
    assert field_values(entry, "EMPTY") == [b""]
    assert field_values(entry, "NULL") == [] and field_values(entry, "MISSING") == []
    assert field_text(entry, "BYTES") == "café \ufffd"


def test_a_repeated_message_is_its_values_one_per_line_in_every_format() -> None:
    entry = {"MESSAGE": ["first", list(b"second \xff")], "SYSLOG_IDENTIFIER": [IDENT, "x"],
             "_PID": "7", "_HOSTNAME": "vm", "__REALTIME_TIMESTAMP": "1795220983793025"}
    assert message(entry) == b"first\nsecond \xff"
    assert render_cat(entry) == "first\nsecond \ufffd"
    assert render_short(entry).endswith(f" vm {IDENT},x[7]: first\nsecond \ufffd")
    assert json.loads(render_json(entry)) == entry


def test_a_programs_escape_sequence_is_shown_in_short_and_given_raw_in_cat() -> None:
    entry = {"MESSAGE": "red \x1b[31mtext\x1b]0;title\x07", "SYSLOG_IDENTIFIER": IDENT,
             "_PID": "7", "_HOSTNAME": "vm", "__REALTIME_TIMESTAMP": "1795220983793025"}
    assert render_short(entry).endswith(": red \\x1b[31mtext\\x1b]0;title\\x07")
    assert render_cat(entry) == "red \x1b[31mtext\x1b]0;title\x07"  # asked for raw


def test_json_values_are_strings_only_when_printable_utf8() -> None:
    assert json_value("tab\tand\nnewline é".encode()) == "tab\tand\nnewline é"
    assert json_value(b"\x1b[1mbold") == list(b"\x1b[1mbold")
    assert json_value(b"cut \xc3") == list(b"cut \xc3")


# --- whole lines -----------------------------------------------------------------------

def _piece(text: bytes | str, n: int, *, more: bool = False, stream: str | None = "s1",
           pid: str = "42") -> dict[str, Any]:
    raw = text.encode() if isinstance(text, str) else text
    entry: dict[str, Any] = {"__CURSOR": f"c{n}", "__REALTIME_TIMESTAMP": str(1000 + n),
                             "SYSLOG_IDENTIFIER": IDENT, "_PID": pid, "_HOSTNAME": "vm",
                             "MESSAGE": json_value(raw)}
    if stream is not None:
        entry["_STREAM_ID"] = stream
    if more:
        entry["_LINE_BREAK"] = "line-max"
    return entry


def _messages(entries: Sequence[dict[str, Any]]) -> list[str]:
    return [render_cat(entry) for entry in entries]


def test_pieces_of_a_split_line_are_one_line() -> None:
    entries = [_piece("a" * 10, 1, more=True), _piece("b" * 10, 2, more=True),
               _piece("c", 3), _piece("next", 4)]
    lines = list(whole_lines(entries))
    assert _messages(lines) == ["a" * 10 + "b" * 10 + "c", "next"]
    # The joined line is its last piece's entry: reading on after its cursor repeats
    # nothing.
    assert lines[0]["__CURSOR"] == "c3" and "_LINE_BREAK" not in lines[0]


def test_a_character_cut_between_pieces_is_whole_again() -> None:
    text = "é" * 5
    raw = text.encode()
    first, second = raw[:5], raw[5:]  # the cut falls inside the third "é"
    entries = [_piece(first, 1, more=True), _piece(second, 2)]
    assert entries[0]["MESSAGE"] == list(first)  # journalctl gives each piece as bytes
    line = next(iter(whole_lines(entries)))
    assert line["MESSAGE"] == text


def test_other_streams_lines_may_come_between_the_pieces() -> None:
    entries = [_piece("out-1/", 1, more=True), _piece("err line", 2, stream="s2"),
               _piece("out-2", 3)]
    assert _messages(list(whole_lines(entries))) == ["err line", "out-1/out-2"]


def test_without_a_stream_id_the_process_and_identifier_make_the_stream() -> None:
    entries = [_piece("a/", 1, more=True, stream=None, pid="1"),
               _piece("other", 2, stream=None, pid="2"),
               _piece("b", 3, stream=None, pid="1")]
    assert _messages(list(whole_lines(entries))) == ["other", "a/b"]


def test_a_line_still_going_on_is_given_as_far_as_it_goes_at_the_end() -> None:
    joiner = Lines()
    assert joiner.feed(_piece("part/", 1, more=True)) == []
    rest = joiner.flush()
    assert _messages([line.entry for line in rest]) == ["part/"]
    assert joiner.flush() == []


def test_a_line_opens_its_stream_only_if_no_earlier_entry_of_it_was_seen() -> None:
    joiner = Lines()
    first = joiner.feed(_piece("tail of an earlier line?", 1))
    second = joiner.feed(_piece("fresh", 2))
    other = joiner.feed(_piece("stderr", 3, stream="s2"))
    assert [line.opens for line in first + second + other] == [True, False, True]


def test_joined_leaves_a_single_piece_as_it_is() -> None:
    entry = _piece("x", 1)
    assert joined([entry]) is entry


# --- a fake journal, read as journalctl reads it ----------------------------------------

class FakeJournal:
    """Entries, and journalctl's --lines, --after-cursor and --follow over them; every
    read is kept."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.reads: list[list[str]] = []
        self.late: list[dict[str, Any]] = []  # arrive once journald is synced

    def run(self, args: Sequence[str], *, check: bool = True) -> list[dict[str, Any]]:
        self.reads.append(list(args))
        found = list(self.entries)
        if "--after-cursor" in args:
            cursor = args[args.index("--after-cursor") + 1]
            at = [e["__CURSOR"] for e in found].index(cursor)
            found = found[at + 1:]
        if "--lines" in args:
            count = int(args[args.index("--lines") + 1])
            found = found[max(len(found) - count, 0):] if count else []
        return found

    def sync(self) -> bool:
        self.entries += self.late
        self.late = []
        return True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeJournal:
    journal_ = FakeJournal([])
    monkeypatch.setattr(journal, "_run", journal_.run)
    monkeypatch.setattr(journal, "_sync", journal_.sync)
    return journal_


def _numbered(count: int, pieces: int) -> list[dict[str, Any]]:
    """COUNT lines of PIECES pieces each."""
    entries = []
    for line in range(count):
        for piece in range(pieces):
            entries.append(_piece(f"{line}.{piece}/", len(entries),
                                  more=piece < pieces - 1))
    return entries


def test_lines_counts_whole_lines_not_entries(fake: FakeJournal) -> None:
    fake.entries = _numbered(6, 3)
    shown = journal._tail(["M=x"], 2, finish=True)[0]
    assert _messages(shown) == ["4.0/4.1/4.2/", "5.0/5.1/5.2/"]
    last = fake.reads[-1]
    assert int(last[last.index("--lines") + 1]) > 2  # more entries than lines were read


def test_a_stream_seen_once_near_the_end_is_read_back_to_its_start(fake: FakeJournal) -> None:
    # The last stderr line is the first of its stream in any window: only reading all
    # shows it cannot be the tail of an earlier line.
    fake.entries = [*_numbered(4, 2), _piece("err", 100, stream="s2")]
    shown = journal._tail(["M=x"], 2, finish=True)[0]
    assert _messages(shown) == ["3.0/3.1/", "err"]


def test_zero_lines_reads_only_the_last_entry(fake: FakeJournal) -> None:
    fake.entries = _numbered(3, 1)
    shown, _, cursor = journal._tail(["M=x"], 0, finish=False)
    assert shown == [] and cursor == "c2"


def test_a_line_still_going_on_at_the_end_of_a_tail_waits_when_following(
        fake: FakeJournal) -> None:
    fake.entries = [_piece("done", 0), _piece("half/", 1, more=True)]
    shown, joiner, cursor = journal._tail(["M=x"], 1, finish=False)
    assert _messages(shown) == ["done"] and cursor == "c1"
    assert _messages([line.entry for line in joiner.feed(_piece("rest", 2))]) == ["half/rest"]


def test_write_logs_with_lines_prints_whole_lines(fake: FakeJournal) -> None:
    fake.entries = _numbered(5, 4)
    out: list[str] = []
    journal.write_logs(_record("system"), out.append, lines=1, output=LogFormat.CAT)
    assert out == ["4.0/4.1/4.2/4.3/\n"]
    out.clear()
    journal.write_logs(_record("system"), out.append, lines=1, output=LogFormat.JSON)
    assert json.loads(out[0])["MESSAGE"] == "4.0/4.1/4.2/4.3/"


def _streamed_answer(words: int) -> list[dict[str, Any]]:
    """A gemini run: a prompt, then an answer streamed one word an entry."""
    events = [{"type": "message", "role": "user", "content": "count"},
              *({"type": "message", "role": "assistant", "content": f"w{n} ", "delta": True}
                for n in range(words)),
              {"type": "message", "role": "user", "content": "thanks"}]
    return [_piece(json.dumps(event), n) for n, event in enumerate(events)]


def _gemini(scope: str) -> Record:
    return Record(**{**_record(scope).__dict__, "provider": "gemini"})


def test_lines_of_a_transcript_count_its_lines_and_show_a_streamed_answer_whole(
        fake: FakeJournal) -> None:
    # Before, -n 2 read the last 2 entries: "w299 " alone, a fragment of the answer.
    fake.entries = _streamed_answer(300)
    out: list[str] = []
    journal.write_logs(_gemini("system"), out.append, lines=2)
    shown = "".join(out).splitlines()
    assert len(shown) == 2 and shown[1] == "> thanks"
    assert shown[0].rstrip() == " ".join(f"w{n}" for n in range(300))  # the answer, whole
    out.clear()
    fake.reads.clear()
    journal.write_logs(_gemini("system"), out.append, lines=0)
    assert out == [] and len(fake.reads) == 1  # nothing to show: one read, of the last


def test_the_window_for_a_transcripts_last_lines_stops_growing_at_its_limit(
        fake: FakeJournal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "SHOWN_TAIL_MAX", 256)
    fake.entries = _streamed_answer(5000)  # an answer longer than the limit
    out: list[str] = []
    journal.write_logs(_gemini("system"), out.append, lines=2)
    assert "".join(out).splitlines()[-1] == "> thanks"
    sizes = [int(read[read.index("--lines") + 1]) for read in fake.reads]
    assert max(sizes) <= 257  # never past the limit (its last line read whole: one more)


def test_following_a_transcript_from_its_last_lines_shows_them_whole(
        fake: FakeJournal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "_follower", lambda *args: _Chunks())
    fake.entries = _streamed_answer(150)[:-1]  # still answering
    out: list[str] = []
    end = journal.SessionEnd()
    end.set(0.0)  # it has ended: what the journal holds is all
    journal.follow_logs(_gemini("system"), out.append, end, lines=1)
    assert "".join(out).rstrip() == " ".join(f"w{n}" for n in range(150))


# --- the collector ---------------------------------------------------------------------

def _current(record: Record) -> Record:
    return Record(**{**record.__dict__, "invocation_id": "inv1"})


def test_output_lines_are_whole(fake: FakeJournal) -> None:
    fake.entries = _numbered(2, 3)
    assert journal.output_lines(_current(_record("system"))) == ["0.0/0.1/0.2/", "1.0/1.1/1.2/"]
    assert len(fake.reads) == 1


def test_a_missing_result_is_read_on_after_the_cursor_not_from_the_start(
        fake: FakeJournal) -> None:
    fake.entries = [_piece("first", 0), _piece("half/", 1, more=True)]
    fake.late = [_piece("result", 2)]
    lines = journal.output_lines(_current(_record("system")),
                                 complete=lambda lines: "half/result" in lines, grace=3.0)
    assert lines == ["first", "half/result"]
    assert fake.reads[0] == journal.output_matches("system", [_record("system").unit])
    assert fake.reads[1][-2:] == ["--after-cursor", "c1"] and len(fake.reads) == 2


def test_a_long_ended_session_is_read_once(fake: FakeJournal) -> None:
    fake.entries = [_piece("first", 0)]
    fake.late = [_piece("never waited for", 1)]
    lines = journal.output_lines(_current(_record("system")), complete=lambda lines: False,
                                 grace=0.0)
    assert lines == ["first"] and len(fake.reads) == 1


# --- the pager -------------------------------------------------------------------------

def test_the_pager_is_chosen_as_journalctl_chooses_it() -> None:
    assert pager_commands({}) == [["less"], ["more"]]
    assert pager_commands({"PAGER": "most -s"}) == [["most", "-s"], ["less"], ["more"]]
    assert pager_commands({"PAGER": "less"}) == [["less"], ["more"]]
    assert pager_commands({"SYSTEMD_PAGER": "more", "PAGER": "most"})[0] == ["more"]
    for off in ("", "cat", " cat "):
        assert pager_commands({"PAGER": off}) == []
    assert pager_commands({"SYSTEMD_PAGER": "", "PAGER": "most"}) == []


def test_less_gets_systemds_options_unless_told_otherwise() -> None:
    assert pager_env({})["LESS"] == "FRSXMK"
    assert pager_env({"LESS": "R"})["LESS"] == "FRSXMK"  # as systemd: $LESS has no effect
    assert pager_env({"LESS": "R", "SYSTEMD_LESS": "FX"})["LESS"] == "FX"


def test_kept_open_less_stays_up_for_a_short_text_then_as_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from orch.pager import kept_open

    monkeypatch.delenv("SYSTEMD_LESS", raising=False)
    with kept_open():  # `orch top`'s logs: F would quit at once, and top draw over it
        assert pager_env(dict(os.environ))["LESS"] == "RSXMK"
    assert "SYSTEMD_LESS" not in os.environ
    monkeypatch.setenv("SYSTEMD_LESS", "FX")
    with kept_open():
        assert pager_env(dict(os.environ))["LESS"] == "X"
    assert os.environ["SYSTEMD_LESS"] == "FX"


def test_the_whitespace_journald_drops_from_the_end_of_a_piece_is_put_back() -> None:
    # journald strips each piece: a cut just after a space loses it.
    width = 40
    text = "x" * (width - 1) + " " + "y" * (width - 2) + "  " + "end"
    pieces = [text[:width].rstrip(), text[width:2 * width].rstrip(), text[2 * width:]]
    entries = [_piece("z" * width, 0, more=True, stream="s9"), _piece("w", 1, stream="s9"),
               _piece(pieces[0], 2, more=True), _piece(pieces[1], 3, more=True),
               _piece(pieces[2], 4)]
    assert _messages(list(whole_lines(entries)))[1] == text


def test_a_piece_at_journalds_default_line_max_is_the_width_when_it_is_the_only_one() -> None:
    first = "a" * (LINE_MAX_DEFAULT - 1)  # its last byte, a space, was dropped
    line = next(iter(whole_lines([_piece(first, 0, more=True), _piece("b", 1)])))
    assert line["MESSAGE"] == first + " b"


# --- the follower ----------------------------------------------------------------------

def test_a_follower_polls_the_journal_unless_only_journalctl_knows_where_to_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import journal_poll

    monkeypatch.setattr(journal_poll, "available", lambda: True)
    monkeypatch.setattr(journal_poll, "Poller", lambda matches, cursor: ("poller", cursor))
    monkeypatch.setattr(journal, "Reader", lambda args: ("journalctl", list(args)))
    since = ["--since", "1h ago", "M=x"]
    assert journal._follower(["M=x"], ["M=x"], "c1", None) == ("poller", "c1")
    assert journal._follower(["M=x"], ["M=x"], None, None) == ("poller", None)
    assert journal._follower(since, ["M=x"], "c1", "1h ago") == ("poller", "c1")
    assert journal._follower(since, ["M=x"], None, "1h ago") == (
        "journalctl", [*since, "--follow", "--lines", "all"])
    monkeypatch.setattr(journal_poll, "available", lambda: False)  # no libsystemd
    assert journal._follower(["M=x"], ["M=x"], "c1", None) == (
        "journalctl", ["M=x", "--follow", "--after-cursor", "c1"])


class _Chunks:
    """journalctl --follow, faked: each read() gives the next chunk's entries."""

    def __init__(self, *chunks: list[dict[str, str]]) -> None:
        self.chunks = list(chunks)

    def read(self, timeout: float | None) -> list[dict[str, str]] | None:
        return self.chunks.pop(0) if self.chunks else []

    def close(self) -> None:
        pass


def _said(n: int) -> dict[str, str]:
    return {"SYSLOG_IDENTIFIER": "orch-agent-1a2b3c4d", "MESSAGE": f"line {n}",
            "__REALTIME_TIMESTAMP": str(1_000_000 + n)}


def _tail() -> Any:
    from orch.journal_tail import OutputTail

    tail = OutputTail("system")
    tail._units = {"orch-agent-1a2b3c4d": TAIL_UNIT}
    return tail


TAIL_UNIT = "orch-agent-1a2b3c4d.service"


def test_a_tail_takes_in_all_that_came_in_one_poll_not_one_read() -> None:
    tail = _tail()
    tail._reader = _Chunks(*([_said(n)] for n in range(5)))
    assert tail.poll()
    # Before, a poll took one read's worth (1 MiB of a restart's last lines) and lagged.
    assert tail.last == {TAIL_UNIT: "line 4"}


def test_a_tail_restarted_on_other_units_never_goes_back_to_an_older_line() -> None:
    # A restart (a session came or went) reads each unit's last lines again: before,
    # they replaced the newer line held, so `top`'s LAST went line 151, 83, 140, 158.
    tail = _tail()
    tail._reader = _Chunks([_said(150), _said(151)])
    tail.poll()
    assert tail.last == {TAIL_UNIT: "line 151"}
    tail._reader = _Chunks([_said(83), _said(140)])  # replayed
    tail.poll()
    assert tail.last == {TAIL_UNIT: "line 151"}
    tail._reader = _Chunks([_said(151), _said(152)])
    tail.poll()
    assert tail.last == {TAIL_UNIT: "line 152"}


def test_a_tail_holds_each_units_last_lines_in_order_without_a_replays_repeats() -> None:
    from orch.journal_tail import RECENT

    tail = _tail()
    tail._reader = _Chunks([_said(n) for n in range(1, 4)])
    tail.poll()
    assert [text for _, text in tail.recent[TAIL_UNIT]] == ["line 1", "line 2", "line 3"]
    tail._reader = _Chunks([_said(2), _said(3), _said(4)])  # a restart replays the last
    tail.poll()
    assert [text for _, text in tail.recent[TAIL_UNIT]] == [f"line {n}" for n in range(1, 5)]
    tail._reader = _Chunks([_said(n) for n in range(5, 30)])
    tail.poll()
    assert [text for _, text in tail.recent[TAIL_UNIT]] == \
        [f"line {n}" for n in range(30 - RECENT, 30)]


def test_a_tails_look_back_puts_older_lines_before_those_held() -> None:
    from orch.journal_tail import RECENT

    tail = _tail()
    tail._reader = _Chunks([_said(40)])
    tail.poll()
    tail._looking_back = _Chunks([_said(n) for n in range(40, 0, -1)])  # newest first
    tail.poll()
    assert [text for _, text in tail.recent[TAIL_UNIT]] == \
        [f"line {n}" for n in range(41 - RECENT, 41)]
    assert tail._looking_back is None  # it has all it holds: read no further
    assert tail.last == {TAIL_UNIT: "line 40"}


def test_an_empty_since_is_refused_as_events_refuses_it() -> None:
    from orch import journal
    from orch.errors import UsageError

    with pytest.raises(UsageError):
        journal._since("")  # it was read as none: the whole log
    assert journal._since(None) == []
