"""Journal entries as `orch logs` shows them, with a line where each invocation starts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from orch.journal_format import InvocationMarks, invocation_starts, render_short
from orch.session import Record

TS = 1795220983793025


def _when(usec: int) -> str:
    return datetime.fromtimestamp(usec / 1e6).strftime("%b %d %H:%M:%S")


def _output(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"__REALTIME_TIMESTAMP": str(TS), "_HOSTNAME": "vm",
                             "SYSLOG_IDENTIFIER": "orch-x-1a2b3c4d", "_PID": "42",
                             "MESSAGE": "hello"}
    entry.update(changes)
    return entry


def test_output_line_in_short_format() -> None:
    assert render_short(_output()) == f"{_when(TS)} vm orch-x-1a2b3c4d[42]: hello"


def test_output_line_without_a_pid_has_no_brackets() -> None:
    entry = _output()
    del entry["_PID"]
    assert render_short(entry) == f"{_when(TS)} vm orch-x-1a2b3c4d: hello"


def test_message_given_as_bytes_is_decoded() -> None:
    line = render_short(_output(MESSAGE=list("café ".encode() + b"\xff")))
    assert line.endswith(": café \ufffd")


def test_entry_without_a_timestamp_renders_a_dash() -> None:
    entry = _output()
    del entry["__REALTIME_TIMESTAMP"]
    assert render_short(entry) == "- vm orch-x-1a2b3c4d[42]: hello"


STARTS = [("aaa", TS), ("bbb", TS + 10_000_000)]


def test_a_marker_precedes_each_invocations_output() -> None:
    marks = InvocationMarks(STARTS)
    rendered = [
        *marks.render(_output(_SYSTEMD_INVOCATION_ID="aaa", MESSAGE="one")),
        *marks.render(_output(_SYSTEMD_INVOCATION_ID="aaa", MESSAGE="two")),
        *marks.render(_output(_SYSTEMD_INVOCATION_ID="bbb", MESSAGE="three",
                              __REALTIME_TIMESTAMP=str(TS + 10_000_100))),
    ]
    assert [line.split(": ")[-1] if not line.startswith("--") else line[:16]
            for line in rendered] == ["-- invocation 1 ", "one", "two", "-- invocation 2 ",
                                      "three"]
    assert "(aaa)" in rendered[0] and "(bbb)" in rendered[3]


def test_an_unstamped_line_belongs_to_the_last_invocation_started_before_it() -> None:
    # journald cannot name the unit of a process that exits at once: time decides.
    marks = InvocationMarks(STARTS)
    early = marks.render(_output(__REALTIME_TIMESTAMP=str(TS + 5)))
    late = marks.render(_output(__REALTIME_TIMESTAMP=str(TS + 10_000_001)))
    assert "invocation 1 (aaa)" in early[0] and "invocation 2 (bbb)" in late[0]


def test_a_line_before_every_known_start_goes_to_the_first_invocation() -> None:
    lines = InvocationMarks(STARTS).render(_output(__REALTIME_TIMESTAMP=str(TS - 1)))
    assert "invocation 1 (aaa)" in lines[0]


def test_an_unknown_invocation_is_marked_with_a_question_mark() -> None:
    lines = InvocationMarks(STARTS).render(_output(_SYSTEMD_INVOCATION_ID="zzz"))
    assert lines[0].startswith("-- invocation ? (zzz)")


def test_invocation_starts_list_history_then_the_current_one() -> None:
    record = Record(id="s", name="n", unit="orch-n-00000000.service", scope="user",
                    argv=["x"], cwd="/", created_at="2025-01-01T00:00:00+00:00")
    record = dataclasses.replace(
        record, invocation_id="ccc", started_at="2025-01-01T00:00:02+00:00",
        history=[{"invocation_id": "aaa", "started_at": "2025-01-01T00:00:00+00:00"},
                 {"invocation_id": None, "started_at": None},
                 {"invocation_id": "bbb", "started_at": None}])
    base = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    assert invocation_starts(record) == [("aaa", base), ("bbb", 0), ("ccc", base + 2_000_000)]
