"""A session's output, read from journald with journalctl, the reader users know."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from orch.errors import OrchError, UsageError
from orch.recovery import EXIT_MESSAGE_IDS, endings_from_journal
from orch.scope import Scope
from orch.session import Ending, Record
from orch.units import syslog_identifier


class LogFormat(StrEnum):
    """Output formats `orch logs -o` offers (journalctl's names)."""

    SHORT = "short"
    JSON = "json"
    CAT = "cat"


def _unit_field(scope: str) -> str:
    """The journal field in which the manager names a unit it logs about."""
    return "UNIT" if scope == Scope.SYSTEM else "USER_UNIT"


def _output_matches(record: Record) -> list[str]:
    matches = [f"SYSLOG_IDENTIFIER={syslog_identifier(record.unit)}"]
    if record.scope == Scope.USER:
        matches.append(f"_UID={os.geteuid()}")
    return matches


def logs_argv(record: Record, *, lines: int | None = None, follow: bool = False,
              since: str | None = None, output: LogFormat = LogFormat.SHORT) -> list[str]:
    """The journalctl command that shows RECORD's output.

    Matches on SYSLOG_IDENTIFIER, which orch sets to the unit's stem: journald stamps it
    from the stream's header on every line, even for a process that exits before
    journald could look up its unit. For user sessions, _UID keeps out lines any other
    user might have logged under the same identifier. The short format is read as JSON
    and rendered by orch, with a line where each invocation starts.
    """
    if lines is not None and lines < 0:
        raise UsageError("-n must be 0 or more")
    fmt = "json" if output is LogFormat.SHORT else str(output)
    argv = ["journalctl", "--no-pager", "--quiet", "--output", fmt]
    if lines is not None:
        argv += ["--lines", str(lines)]
    if since:
        argv += ["--since", since]
    if follow:
        argv.append("--follow")
    argv += _output_matches(record)
    return argv


def _field(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if isinstance(value, list):  # non-UTF-8 (or binary) fields come as byte arrays
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def _usec(entry: dict[str, Any]) -> int:
    try:
        return int(_field(entry, "__REALTIME_TIMESTAMP"))
    except ValueError:
        return 0


def _clock(usec: int) -> str:
    return datetime.fromtimestamp(usec / 1e6).strftime("%b %d %H:%M:%S") if usec else "-"


def render_short(entry: dict[str, Any]) -> str:
    """One journal entry as journalctl's short format shows it."""
    pid = _field(entry, "_PID")
    ident = _field(entry, "SYSLOG_IDENTIFIER")
    host = _field(entry, "_HOSTNAME")
    return (f"{_clock(_usec(entry))} {host} {ident}{f'[{pid}]' if pid else ''}: "
            f"{_field(entry, 'MESSAGE')}")


class InvocationMarks:
    """Places a line before the output of each invocation of a session.

    A line belongs to the invocation journald stamped on it (_SYSTEMD_INVOCATION_ID);
    journald cannot stamp the lines of a process that exits at once, and those belong
    to the last invocation started before they were received: an invocation's start is
    its main process's fork, which its output cannot precede. (The manager's own
    "Starting" record is no bound: it is logged after the fork.)
    """

    def __init__(self, starts: Sequence[tuple[str, int]]) -> None:
        self.starts = list(starts)  # (invocation id, start µs), oldest first
        self.current: str | None = None

    def _owner(self, entry: dict[str, Any]) -> str:
        stamped = _field(entry, "_SYSTEMD_INVOCATION_ID")
        if stamped:
            return stamped
        received = _usec(entry)
        owner = self.starts[0][0] if self.starts else ""
        for invocation, started in self.starts:
            if started and started <= received:
                owner = invocation
        return owner

    def render(self, entry: dict[str, Any]) -> list[str]:
        """ENTRY in short format, after a marker line if it begins another invocation."""
        owner = self._owner(entry)
        lines = []
        if owner != self.current:
            self.current = owner
            ids = [i for i, _ in self.starts]
            number = ids.index(owner) + 1 if owner in ids else "?"
            started = dict(self.starts).get(owner, 0)
            lines.append(f"-- invocation {number} ({owner or 'unknown'}) started "
                         f"{_clock(started)} --")
        lines.append(render_short(entry))
        return lines


def stream_short(argv: list[str], starts: Sequence[tuple[str, int]]) -> int:
    """Run journalctl ARGV (JSON output) and print its entries in short format as they
    come, marking where each invocation starts; journalctl's exit status."""
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise OrchError("journalctl is not installed") from None
    assert process.stdout is not None
    marks = InvocationMarks(starts)
    try:
        for line in process.stdout:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            sys.stdout.write("\n".join(marks.render(entry)) + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        process.terminate()
    return process.wait()


def invocation_starts(record: Record) -> list[tuple[str, int]]:
    """The session's invocations, oldest first: (id, start in µs since the epoch)."""
    runs = [(h.get("invocation_id"), h.get("started_at")) for h in record.history]
    runs.append((record.invocation_id, record.started_at))
    starts = []
    for invocation, started in runs:
        if not invocation:
            continue
        try:
            usec = int(datetime.fromisoformat(str(started)).timestamp() * 1e6) if started else 0
        except ValueError:
            usec = 0
        starts.append((str(invocation), usec))
    return starts


def _entries(argv: list[str]) -> Iterator[dict[str, Any]]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OrchError("journalctl is not installed") from None
    for line in done.stdout.splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def exit_evidence(units: Iterable[str], scope: str) -> dict[str, Ending]:
    """How the manager logged the end of each invocation of UNITS, by invocation id."""
    names = sorted(set(units))
    if not names:
        return {}
    field = _unit_field(scope)
    argv = ["journalctl", "--no-pager", "--quiet", "--output", "json",
            *(f"MESSAGE_ID={m}" for m in EXIT_MESSAGE_IDS), *(f"{field}={u}" for u in names)]
    if scope == Scope.USER:
        argv.append(f"_UID={os.geteuid()}")
    return endings_from_journal(_entries(argv))


def read_logs(record: Record, *, lines: int | None = None, since: str | None = None,
              output: LogFormat = LogFormat.CAT) -> str:
    """RECORD's output so far, as journalctl prints it in OUTPUT format."""
    argv = logs_argv(record, lines=lines, since=since, output=output)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OrchError("journalctl is not installed") from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()
        raise OrchError(f"journalctl failed: {reason[-1] if reason else done.returncode}")
    return done.stdout


def output_lines(record: Record) -> list[str]:
    """The program's output lines of RECORD's current invocation, oldest first.

    A line journald stamped with another invocation is left out; an unstamped line
    (a process that exited at once) counts if it came after this invocation started.
    """
    argv = ["journalctl", "--no-pager", "--quiet", "--output", "json",
            *_output_matches(record)]
    starts = dict(invocation_starts(record))
    started = starts.get(record.invocation_id or "", 0)
    lines = []
    for entry in _entries(argv):
        stamped = _field(entry, "_SYSTEMD_INVOCATION_ID")
        if stamped:
            if stamped != record.invocation_id:
                continue
        elif _usec(entry) < started:
            continue
        lines.append(_field(entry, "MESSAGE"))
    return lines
