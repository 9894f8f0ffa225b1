"""A session's output, read from journald with journalctl, the reader users know."""

from __future__ import annotations

import os
import subprocess
from enum import StrEnum

from orch.errors import OrchError, UsageError
from orch.scope import Scope
from orch.session import Record
from orch.units import syslog_identifier


class LogFormat(StrEnum):
    """Output formats `orch logs -o` offers (journalctl's names)."""

    SHORT = "short"
    JSON = "json"
    CAT = "cat"


def logs_argv(record: Record, *, lines: int | None = None, follow: bool = False,
              since: str | None = None, output: LogFormat = LogFormat.SHORT) -> list[str]:
    """The journalctl command that shows RECORD's output.

    Matches on SYSLOG_IDENTIFIER, which orch sets to the unit's stem: journald stamps it
    from the stream's header on every line, even for a process that exits before
    journald could look up its unit. For user sessions, _UID keeps out lines any other
    user might have logged under the same identifier.
    """
    if lines is not None and lines < 0:
        raise UsageError("-n must be 0 or more")
    argv = ["journalctl", "--no-pager", "--quiet", "--output", str(output)]
    if lines is not None:
        argv += ["--lines", str(lines)]
    if since:
        argv += ["--since", since]
    if follow:
        argv.append("--follow")
    argv.append(f"SYSLOG_IDENTIFIER={syslog_identifier(record.unit)}")
    if record.scope == Scope.USER:
        argv.append(f"_UID={os.geteuid()}")
    return argv


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
