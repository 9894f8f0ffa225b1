"""A session's output, read from journald with journalctl, the reader users know.

Every read goes through this module, the one place journalctl is run and its failures
worded, and always as `journalctl --output json --all`: without --all, journalctl gives
any field over 4,096 bytes as null. orch renders the short, cat and json formats itself
from those entries, after joining the pieces of each line journald split at its
LineMax= (the earlier pieces carry _LINE_BREAK=line-max), so that every format, `-n`,
and the agents' results deal in whole lines.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from orch.errors import OrchError, UsageError
from orch.recovery import EXIT_MESSAGE_IDS, endings_from_journal
from orch.scope import Scope
from orch.session import Ending, Record
from orch.units import syslog_identifier

Entry = dict[str, Any]  # one journal entry as `journalctl -o json` gives it
Write = Callable[[str], object]

# After a session ended, how long to wait for its last lines when journald cannot be
# asked to catch up (journalctl --sync is root's): until nothing came for QUIET seconds.
QUIET = 1.0


class LogFormat(StrEnum):
    """Output formats `orch logs -o` offers (journalctl's names)."""

    SHORT = "short"
    JSON = "json"
    CAT = "cat"


# --- journalctl: the one place it runs -------------------------------------------------

_READ = ("journalctl", "--no-pager", "--quiet", "--all", "--output", "json")


def _failed(code: int, stderr: bytes) -> OrchError:
    reason = stderr.decode("utf-8", "replace").strip().splitlines()
    return OrchError(f"journalctl failed: {reason[-1] if reason else f'exit status {code}'}")


def _run(args: Sequence[str], *, check: bool = True) -> list[Entry]:
    """The entries `journalctl -o json --all ARGS` prints (it must not follow)."""
    try:
        done = subprocess.run([*_READ, *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise OrchError("journalctl is not installed") from None
    if check and done.returncode != 0:
        raise _failed(done.returncode, done.stderr)
    return [entry for entry in map(_parse, done.stdout.splitlines()) if entry is not None]


def _parse(line: bytes) -> Entry | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _Reader:
    """A running `journalctl -o json --all ARGS` (following, or a long read), whose
    entries are taken as they come, with a timeout."""

    def __init__(self, args: Sequence[str]) -> None:
        try:
            self.process = subprocess.Popen([*_READ, *args], stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise OrchError("journalctl is not installed") from None
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()
        self.buffer = b""

    def read(self, timeout: float | None) -> list[Entry] | None:
        """The entries that arrive within TIMEOUT seconds (None: wait for some); None
        once journalctl has ended (an error if it failed)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            code = self.process.wait()
            stderr = self.process.stderr.read() if self.process.stderr else b""
            if code != 0:
                raise _failed(code, stderr)
            return None
        *lines, self.buffer = (self.buffer + chunk).split(b"\n")
        return [entry for entry in map(_parse, lines) if entry is not None]

    def entries(self) -> Iterator[Entry]:
        """Every entry until journalctl ends."""
        while (batch := self.read(None)) is not None:
            yield from batch

    def close(self) -> None:
        """End journalctl, if it still runs."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def _sync() -> bool:
    """Ask journald to take in everything already sent to it (journalctl --sync
    returns once it has); False where that is not allowed (only root may)."""
    if os.geteuid() != 0:
        return False
    try:
        done = subprocess.run(["journalctl", "--sync"], capture_output=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# --- entries and their fields ----------------------------------------------------------

def field_values(entry: Entry, name: str) -> list[bytes]:
    """Every value of field NAME in ENTRY, as bytes. journalctl's JSON gives a field as a
    string, as a list of byte values (binary or non-UTF-8), or, when an entry has the
    field more than once, as a list of those; --all means never null."""
    value = entry.get(name)
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(v, int) for v in value):
        return [_bytes(value)]
    values = value if isinstance(value, list) else [value]
    found = []
    for item in values:
        if isinstance(item, list) and all(isinstance(v, int) for v in item):
            found.append(_bytes(item))
        elif item is not None:
            found.append((item if isinstance(item, str) else json.dumps(item)).encode())
    return found


def _bytes(values: list[int]) -> bytes:
    return bytes(v & 0xFF for v in values)


def field_text(entry: Entry, name: str, separator: str = "\n") -> str:
    """Field NAME as text: a repeated field's values joined by SEPARATOR, bytes that are
    not UTF-8 shown as U+FFFD."""
    return separator.join(v.decode("utf-8", "replace") for v in field_values(entry, name))


def message(entry: Entry) -> bytes:
    """The entry's MESSAGE; a repeated one's values, one per line."""
    return b"\n".join(field_values(entry, "MESSAGE"))


def json_value(raw: bytes) -> str | list[int]:
    """RAW as journalctl's JSON gives a field: a string if it is printable UTF-8, else
    a list of byte values."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return list(raw)
    if any((ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in text):
        return list(raw)
    return text


def _cursor(entry: Entry) -> str | None:
    return field_text(entry, "__CURSOR") or None


def _usec(entry: Entry) -> int:
    try:
        return int(field_text(entry, "__REALTIME_TIMESTAMP"))
    except ValueError:
        return 0


# --- whole lines -----------------------------------------------------------------------

class Line(NamedTuple):
    """A whole output line: ENTRY is as journalctl's json would give it if journald had
    not split the line, and OPENS says its first piece was the first entry of its stream
    the Lines that made it saw (so it may be the tail of an earlier line)."""

    entry: Entry
    opens: bool


def _stream(entry: Entry) -> tuple[str, ...]:
    stream = field_text(entry, "_STREAM_ID")
    if stream:
        return ("stream", stream)
    return ("process", field_text(entry, "_PID"), field_text(entry, "SYSLOG_IDENTIFIER"))


def _continued(entry: Entry) -> bool:
    return "line-max" in field_text(entry, "_LINE_BREAK").split("\n")


# journald cuts a long line into pieces of exactly LineMax= bytes (48 KiB by default),
# then drops the whitespace that ends each piece (it strips every line it receives).
LINE_MAX_DEFAULT = 48 * 1024
_STRIPPED_MAX = 64  # a longer shortfall is a piece of another LineMax=, not stripping


def _restored(piece: bytes, width: int) -> bytes:
    """PIECE of a split line, with the whitespace journald dropped from its end put back
    as spaces (exact for JSON, which escapes tabs and carriage returns), given WIDTH,
    the longest piece seen (the LineMax= in force, unless every piece lost some)."""
    lost = [w - len(piece) for w in (width, LINE_MAX_DEFAULT)
            if 0 <= w - len(piece) <= _STRIPPED_MAX]
    return piece + b" " * max(lost, default=0)


def joined(pieces: Sequence[Entry], width: int = 0) -> Entry:
    """One entry for a line journald split into PIECES: the last piece's entry (its
    cursor and time are those of the line's end, so reading on after its cursor repeats
    nothing), with MESSAGE the whole line (see _restored for WIDTH)."""
    if len(pieces) == 1:
        return pieces[0]
    raw = [_restored(message(p), width) for p in pieces[:-1]] + [message(pieces[-1])]
    return {**pieces[-1], "MESSAGE": json_value(b"".join(raw))}


class Lines:
    """Joins the pieces of the lines journald split at LineMax=: consecutive entries of
    one stream (the same _STREAM_ID, else the same _PID and SYSLOG_IDENTIFIER) in which
    every piece but the last carries _LINE_BREAK=line-max. Other streams' lines may come
    in between; a line is given once its last piece has come."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, ...], tuple[bool, list[Entry]]] = {}
        self.seen: set[tuple[str, ...]] = set()
        self.width = 0  # the longest piece seen

    def feed(self, entry: Entry) -> list[Line]:
        """The lines ENTRY completes (none while a line goes on)."""
        stream = _stream(entry)
        opens, pieces = self.pending.pop(stream, (stream not in self.seen, []))
        self.seen.add(stream)
        pieces.append(entry)
        if _continued(entry):
            self.width = max(self.width, len(message(entry)))
            self.pending[stream] = (opens, pieces)
            return []
        return [Line(joined(pieces, self.width), opens)]

    def flush(self) -> list[Line]:
        """The lines still waiting for pieces, as far as they go."""
        lines = [Line(joined(pieces, self.width), opens)
                 for opens, pieces in self.pending.values()]
        self.pending.clear()
        return lines


# --- rendering -------------------------------------------------------------------------

def _clock(usec: int) -> str:
    return datetime.fromtimestamp(usec / 1e6).strftime("%b %d %H:%M:%S") if usec else "-"


def render_short(entry: Entry) -> str:
    """One journal entry as journalctl's short format shows it."""
    pid = field_text(entry, "_PID", ",")
    ident = field_text(entry, "SYSLOG_IDENTIFIER", ",")
    host = field_text(entry, "_HOSTNAME", ",")
    text = message(entry).decode("utf-8", "replace")
    return f"{_clock(_usec(entry))} {host} {ident}{f'[{pid}]' if pid else ''}: {text}"


def render_cat(entry: Entry) -> str:
    """The entry's message alone, as journalctl's cat format shows it."""
    return message(entry).decode("utf-8", "replace")


def render_json(entry: Entry) -> str:
    """The entry as one line of journalctl's json format."""
    return json.dumps(entry, ensure_ascii=False)


class InvocationMarks:
    """Places a line before the output of each invocation of a session.

    A line belongs to the invocation journald stamped on it (_SYSTEMD_INVOCATION_ID);
    journald cannot stamp the lines of a process that exits at once, and those belong
    to the last invocation started before they were received: an invocation's start is
    its main process's fork, which its output cannot precede. (The manager's own
    "Starting" record is no bound: it is logged after the fork.) REFRESH, if given,
    reads the invocations again when a line names one not known yet (a session that
    was restarted while its output is followed).
    """

    def __init__(self, starts: Sequence[tuple[str, int]],
                 refresh: Callable[[], Sequence[tuple[str, int]]] | None = None) -> None:
        self.starts = list(starts)  # (invocation id, start µs), oldest first
        self.refresh = refresh
        self.current: str | None = None

    def _owner(self, entry: Entry) -> str:
        stamped = field_text(entry, "_SYSTEMD_INVOCATION_ID")
        if stamped:
            if self.refresh is not None and stamped not in dict(self.starts):
                self.starts = list(self.refresh())
            return stamped
        received = _usec(entry)
        owner = self.starts[0][0] if self.starts else ""
        for invocation, started in self.starts:
            if started and started <= received:
                owner = invocation
        return owner

    def render(self, entry: Entry) -> list[str]:
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


def printer(output: LogFormat, write: Write, starts: Sequence[tuple[str, int]] = (),
            refresh: Callable[[], Sequence[tuple[str, int]]] | None = None
            ) -> Callable[[Entry], None]:
    """A function that WRITEs one whole line in OUTPUT format (short: marking where
    each invocation starts)."""
    marks = InvocationMarks(starts, refresh)
    render = render_json if output is LogFormat.JSON else render_cat

    def show(entry: Entry) -> None:
        if output is LogFormat.SHORT:
            write("".join(line + "\n" for line in marks.render(entry)))
        else:
            write(render(entry) + "\n")

    return show


# --- a session's output ----------------------------------------------------------------

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
    """A journalctl command that shows RECORD's output, for whoever wants to run
    journalctl themselves (orch reads and renders it itself: see write_logs).

    Matches on SYSLOG_IDENTIFIER, which orch sets to the unit's stem: journald stamps it
    from the stream's header on every line, even for a process that exits before
    journald could look up its unit. For user sessions, _UID keeps out lines any other
    user might have logged under the same identifier. journalctl shows a line journald
    split at LineMax= as its pieces; --all keeps long fields from showing as null.
    """
    _check_lines(lines)
    argv = ["journalctl", "--no-pager", "--quiet", "--all", "--output", str(output)]
    if lines is not None:
        argv += ["--lines", str(lines)]
    if since:
        argv += ["--since", since]
    if follow:
        argv.append("--follow")
    return argv + _output_matches(record)


def _check_lines(lines: int | None) -> None:
    if lines is not None and lines < 0:
        raise UsageError("-n must be 0 or more")


def _after(cursor: str | None) -> list[str]:
    """journalctl's arguments to read on after CURSOR (from the start without one)."""
    return ["--after-cursor", cursor] if cursor else []


def _tail(args: Sequence[str], count: int, *, finish: bool
          ) -> tuple[list[Entry], Lines, str | None]:
    """The last COUNT whole lines journalctl ARGS gives, the Lines holding a line still
    going on (given as far as it goes if FINISH), and the cursor of the last entry read.

    journalctl --lines counts entries, and a line journald split is several: read ever
    more entries until the last COUNT lines are known to start inside what was read (the
    first line of each stream read may be the tail of an earlier one), or all was read.
    """
    size = count + 1
    while True:
        entries = _run([*args, "--lines", str(size)])
        joiner = Lines()
        lines = [line for entry in entries for line in joiner.feed(entry)]
        if finish:
            lines += joiner.flush()
        last = lines[-count:] if count else []
        if len(entries) < size or not any(line.opens for line in last):
            cursor = _cursor(entries[-1]) if entries else None
            return [line.entry for line in last], joiner, cursor
        size *= 2


def write_logs(record: Record, write: Write, *, lines: int | None = None,
               since: str | None = None, output: LogFormat = LogFormat.SHORT) -> None:
    """WRITE RECORD's output so far in OUTPUT format, whole line by whole line: every
    invocation's, or the last LINES lines (LINES counts whole lines, not journal
    entries). In json, a line journald split is one entry (see joined)."""
    _check_lines(lines)
    args = [*(["--since", since] if since else []), *_output_matches(record)]
    show = printer(output, write, invocation_starts(record))
    if lines is not None:
        for entry in _tail(args, lines, finish=True)[0]:
            show(entry)
        return
    reader = _Reader(args)
    try:
        for entry in whole_lines(reader.entries()):
            show(entry)
    finally:
        reader.close()


def whole_lines(entries: Iterable[Entry]) -> Iterator[Entry]:
    """ENTRIES with every split line joined into one entry, as they come."""
    joiner = Lines()
    for entry in entries:
        for line in joiner.feed(entry):
            yield line.entry
    for line in joiner.flush():
        yield line.entry


def read_logs(record: Record, *, lines: int | None = None, since: str | None = None,
              output: LogFormat = LogFormat.CAT) -> str:
    """RECORD's output so far in OUTPUT format, as `orch logs` prints it."""
    parts: list[str] = []
    write_logs(record, parts.append, lines=lines, since=since, output=output)
    return "".join(parts)


class SessionEnd:
    """Set by whoever watches the manager once the session has ended, with how long
    its last lines may still take to reach the journal (0 if it ended long ago)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.grace = 0.0

    def set(self, grace: float) -> None:
        """The session has ended; wait up to GRACE seconds for its last lines."""
        self.grace = grace
        self._event.set()

    def is_set(self) -> bool:
        """Whether the session has ended."""
        return self._event.is_set()


class _Collector:
    """Whole lines taken from entries as they come, and the cursor to read on after."""

    def __init__(self, take: Callable[[Entry], None], joiner: Lines | None = None,
                 cursor: str | None = None) -> None:
        self.take = take
        self.joiner = joiner or Lines()
        self.cursor = cursor

    def feed(self, entries: Iterable[Entry]) -> bool:
        """Take ENTRIES; whether there were any."""
        some = False
        for entry in entries:
            some = True
            self.cursor = _cursor(entry) or self.cursor
            for line in self.joiner.feed(entry):
                self.take(line.entry)
        return some

    def finish(self) -> None:
        """Take the lines still waiting for pieces, as far as they go."""
        for line in self.joiner.flush():
            self.take(line.entry)


def _settle(args: Sequence[str], collector: _Collector, grace: float,
            done: Callable[[], bool], *, caught_up: bool) -> None:
    """Bring in an ended session's last lines: what the journal holds after the
    collector's cursor (unless CAUGHT_UP: it has just read all there was), and those
    still on their way to it, if it ended GRACE seconds ago or less.

    journald takes a program's output and the manager's word that it ended on different
    sockets, so the end can be known before the last lines are in. Where journalctl
    --sync may be run, it returns once journald has taken in all that was sent before
    it, and one more read gets the rest. Elsewhere, follow on after the cursor until
    DONE() holds, nothing came for QUIET seconds, or GRACE seconds passed.
    """
    if not caught_up:
        collector.feed(_run([*args, *_after(collector.cursor)]))
    if grace <= 0 or done():
        return
    if _sync():
        collector.feed(_run([*args, *_after(collector.cursor)]))
        return
    follower = _Reader([*args, "--follow", *(_after(collector.cursor) or ["--lines", "all"])])
    try:
        deadline = time.monotonic() + grace
        quiet_until = time.monotonic() + QUIET
        while not done():
            remaining = min(deadline, quiet_until) - time.monotonic()
            if remaining <= 0:
                return
            batch = follower.read(remaining)
            if batch is None:
                return
            if collector.feed(batch):
                quiet_until = time.monotonic() + QUIET
    finally:
        follower.close()


def follow_logs(record: Record, write: Write, end: SessionEnd, *, lines: int | None = None,
                since: str | None = None, output: LogFormat = LogFormat.SHORT,
                refresh: Callable[[], Sequence[tuple[str, int]]] | None = None) -> None:
    """WRITE RECORD's output (all of it, or from the last LINES lines) and then its new
    lines as they come, until END is set and the last lines have arrived (see _settle).
    REFRESH gives the session's invocations again when one not known yet shows up."""
    _check_lines(lines)
    args = [*(["--since", since] if since else []), *_output_matches(record)]
    show = printer(output, write, invocation_starts(record), refresh)
    collector = _Collector(show)
    start: list[str] = ["--lines", "all"]
    if lines is not None:
        shown, joiner, cursor = _tail(args, lines, finish=False)
        for entry in shown:
            show(entry)
        collector = _Collector(show, joiner, cursor)
        start = _after(cursor) or start
    reader = _Reader([*args, "--follow", *start])
    try:
        while not end.is_set():
            batch = reader.read(0.2)
            if batch is None:
                break
            collector.feed(batch)
    finally:
        reader.close()
    _settle(args, collector, end.grace, lambda: False, caught_up=False)
    collector.finish()


def output_lines(record: Record, *, complete: Callable[[list[str]], bool] | None = None,
                 grace: float = 0.0) -> list[str]:
    """The program's whole output lines of RECORD's current invocation, oldest first.

    A line journald stamped with another invocation is left out; an unstamped line
    (a process that exited at once) counts if it came after this invocation started.
    Read once; if COMPLETE(lines) does not hold, the session ended GRACE seconds ago
    or less, and lines may still be on their way: read on after what was read (see
    _settle), never from the start again.
    """
    args = _output_matches(record)
    started = dict(invocation_starts(record)).get(record.invocation_id or "", 0)
    lines: list[str] = []

    def take(entry: Entry) -> None:
        stamped = field_text(entry, "_SYSTEMD_INVOCATION_ID")
        mine = stamped == record.invocation_id if stamped else _usec(entry) >= started
        if mine:
            lines.append(message(entry).decode("utf-8", "replace"))

    collector = _Collector(take)
    collector.feed(_run(args))
    _settle(args, collector, grace, lambda: complete is not None and complete(lines),
            caught_up=True)
    collector.finish()
    return lines


def exit_evidence(units: Iterable[str], scope: str) -> dict[str, Ending]:
    """How the manager logged the end of each invocation of UNITS, by invocation id."""
    names = sorted(set(units))
    if not names:
        return {}
    field = _unit_field(scope)
    args = [*(f"MESSAGE_ID={m}" for m in EXIT_MESSAGE_IDS), *(f"{field}={u}" for u in names)]
    if scope == Scope.USER:
        args.append(f"_UID={os.geteuid()}")
    return endings_from_journal(_run(args, check=False))
