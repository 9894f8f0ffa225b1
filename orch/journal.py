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

# The manager logs "Starting UNIT..." with the new invocation's id at every start.
UNIT_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"


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


def _start_matches(record: Record) -> list[str]:
    matches = [f"MESSAGE_ID={UNIT_STARTING}", f"{_unit_field(record.scope)}={record.unit}"]
    if record.scope == Scope.USER:
        matches.append(f"_UID={os.geteuid()}")
    return matches


def logs_argv(record: Record, *, lines: int | None = None, follow: bool = False,
              since: str | None = None, output: LogFormat = LogFormat.SHORT) -> list[str]:
    """The journalctl command that shows RECORD's output.

    Matches on SYSLOG_IDENTIFIER, which orch sets to the unit's stem: journald stamps it
    from the stream's header on every line, even for a process that exits before
    journald could look up its unit. For user sessions, _UID keeps out lines any other
    user might have logged under the same identifier. The short format also asks for the
    manager's "Starting" records, rendered as a line where each invocation starts.
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
    if output is LogFormat.SHORT:
        argv += ["+", *_start_matches(record)]
    return argv


def _field(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if isinstance(value, list):  # non-UTF-8 (or binary) fields come as byte arrays
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def render_short(entry: dict[str, Any], invocations: Sequence[str]) -> str:
    """One journal entry as journalctl's short format shows it, or, for the manager's
    record of a start, a line marking where that invocation of the session starts."""
    try:
        stamp = datetime.fromtimestamp(int(_field(entry, "__REALTIME_TIMESTAMP")) / 1e6)
        when = stamp.strftime("%b %d %H:%M:%S")
    except ValueError:
        when = "-"
    if _field(entry, "MESSAGE_ID") == UNIT_STARTING:
        invocation = _field(entry, "INVOCATION_ID") or _field(entry, "USER_INVOCATION_ID")
        number = invocations.index(invocation) + 1 if invocation in invocations else "?"
        return f"-- {when} invocation {number} starts ({invocation or 'unknown id'}) --"
    pid = _field(entry, "_PID")
    ident = _field(entry, "SYSLOG_IDENTIFIER")
    host = _field(entry, "_HOSTNAME")
    return f"{when} {host} {ident}{f'[{pid}]' if pid else ''}: {_field(entry, 'MESSAGE')}"


def _made_at(entry: dict[str, Any]) -> int:
    """When an entry was made: the manager stamps its records at the source, while a
    program's stdout lines carry only when journald received them (later, and after
    the manager's record of the start that preceded them)."""
    for name in ("_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"):
        try:
            return int(_field(entry, name))
        except ValueError:
            continue
    return 0


def stream_short(argv: list[str], invocations: Sequence[str], follow: bool = False) -> int:
    """Run journalctl ARGV (JSON output) and print its entries in short format, in the
    order they were made; when following, as they come. journalctl's exit status."""
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise OrchError("journalctl is not installed") from None
    assert process.stdout is not None
    entries: list[dict[str, Any]] = []
    try:
        for line in process.stdout:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if follow:
                sys.stdout.write(render_short(entry, invocations) + "\n")
                sys.stdout.flush()
            else:
                entries.append(entry)
    except KeyboardInterrupt:
        process.terminate()
    for entry in sorted(entries, key=_made_at):
        sys.stdout.write(render_short(entry, invocations) + "\n")
    return process.wait()


def invocation_ids(record: Record) -> list[str]:
    """The session's invocation ids, oldest first."""
    ids = [str(h.get("invocation_id")) for h in record.history if h.get("invocation_id")]
    if record.invocation_id:
        ids.append(record.invocation_id)
    return ids


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
