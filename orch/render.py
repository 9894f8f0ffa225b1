"""Sessions as people read them: `orch show` in the manner of `systemctl status`, and
the `orch ps` table fitted to the terminal as systemctl's tables are.

Pure functions of the data, a given "now" and the local time zone, apart from
table_width() and utf8(), which ask about stdout. Scripts read --json's, never this
text. Free of typer, pystemd and psutil at import."""

from __future__ import annotations

import os
import unicodedata
from datetime import UTC, datetime

from orch import shellwords, timespan
from orch.session import Status
from orch.visible import MULTILINE, visible

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from typing import Any, TextIO

    from orch.events import Event
    from orch.session import Session

ELLIPSIS = "…"
# systemctl status's marks (systemd's special glyphs), and their ASCII stand-ins.
ACTIVE, FAILED, ENDED = "\u25cf", "\u00d7", "\u25cb"  # black circle, cross, white circle
ASCII_ELLIPSIS = "..."  # systemd's special_glyph() outside a UTF-8 locale
DEFAULT_COLUMNS = 80  # systemd's columns() when the terminal does not say

# systemd's units in microseconds (orch.timespan owns them), under short names.
_SEC, _MIN, _HOUR, _DAY = (timespan.USEC_PER_SEC, timespan.USEC_PER_MINUTE,
                           timespan.USEC_PER_HOUR, timespan.USEC_PER_DAY)
_WEEK, _MONTH, _YEAR = timespan.USEC_PER_WEEK, timespan.USEC_PER_MONTH, timespan.USEC_PER_YEAR
_TIMESPAN_UNITS = (("y", _YEAR), ("month", _MONTH), ("w", _WEEK), ("d", _DAY),
                   ("h", _HOUR), ("min", _MIN), ("s", _SEC), ("ms", 1000), ("us", 1))


# --- the terminal ---------------------------------------------------------------------

def columns(stream: TextIO) -> int:
    """The terminal's width as systemd's columns() (src/basic/terminal-util.c) reads it:
    $COLUMNS if it is a positive number, else the width of the terminal STREAM is, else
    80."""
    try:
        width = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        width = 0
    if 0 < width <= 0xFFFF:
        return width
    try:
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_COLUMNS
    except (OSError, ValueError):
        return DEFAULT_COLUMNS


def table_width(stream: TextIO, full: bool = False) -> int | None:
    """The width a table printed on STREAM fits in; None for whole lines.

    As systemd's tables (table_print() in src/shared/format-table.c, v252, which
    `systemctl list-units` uses): whole lines with --full, and whole lines when STREAM
    is not a terminal (a pipe or a file: what reads it gets every character, whatever
    $COLUMNS says); on a terminal, columns(). `systemctl list-units | cat` does the same."""
    if full or not stream.isatty():
        return None
    return columns(stream)


def utf8(stream: TextIO) -> bool:
    """Whether STREAM carries "…" and "●" (else "..." and "*", as systemd outside UTF-8)."""
    try:
        (ELLIPSIS + ACTIVE + FAILED + ENDED).encode(stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# --- time, as systemd writes it -------------------------------------------------------

def parse_time(iso: str | None) -> datetime | None:
    """An ISO 8601 stamp of a record as an aware datetime (UTC if it names no zone, as
    orch writes UTC); None for none or one that does not parse."""
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _usec(delta_seconds: float) -> int:
    return round(delta_seconds * _SEC)


def format_timestamp(when: datetime) -> str:
    """WHEN in local time as systemd's format_timestamp(): "Sat 2026-12-05 23:49:12 CET"."""
    return when.astimezone().strftime("%a %Y-%m-%d %H:%M:%S %Z")


def format_relative(when: datetime, now: datetime) -> str:
    """How long before (or after) NOW WHEN is, as systemd's format_timestamp_relative()
    (src/basic/time-util.c): "3min 2s ago", "2h 5min ago", "1 day 3h ago", "5s left"."""
    d = _usec((now - when).total_seconds())
    suffix, d = "ago" if d > 0 else "left", abs(d)
    if d >= _YEAR:
        return f"{d // _YEAR} years {d % _YEAR // _MONTH} months {suffix}"
    if d >= _MONTH:
        return f"{d // _MONTH} months {d % _MONTH // _DAY} days {suffix}"
    if d >= _WEEK:
        return f"{d // _WEEK} weeks {d % _WEEK // _DAY} days {suffix}"
    if d >= 2 * _DAY:
        return f"{d // _DAY} days {suffix}"
    if d >= 25 * _HOUR:
        return f"1 day {(d - _DAY) // _HOUR}h {suffix}"
    if d >= 6 * _HOUR:
        return f"{d // _HOUR}h {suffix}"
    if d >= _HOUR:
        return f"{d // _HOUR}h {d % _HOUR // _MIN}min {suffix}"
    if d >= 5 * _MIN:
        return f"{d // _MIN}min {suffix}"
    if d >= _MIN:
        return f"{d // _MIN}min {d % _MIN // _SEC}s {suffix}"
    if d >= _SEC:
        return f"{d // _SEC}s {suffix}"
    if d >= 1000:
        return f"{d // 1000}ms {suffix}"
    return f"{d}us {suffix}" if d > 0 else "now"


def format_timespan(usec: int, accuracy: int = _SEC) -> str:
    """USEC as systemd's format_timespan() writes a duration: "5min 3s", "1h 2min",
    "250ms"; parts finer than ACCURACY are dropped once a coarser one is written."""
    if usec <= 0:
        return "0"
    parts: list[str] = []
    for suffix, size in _TIMESPAN_UNITS:
        if usec <= 0 or (usec < accuracy and parts):
            break
        if usec < size:
            continue
        whole, rest = divmod(usec, size)
        digits = len(str(size)) - len(str(accuracy))  # the decimals ACCURACY allows
        if usec < _MIN and rest and digits > 0:  # below a minute: "1.500s", as systemd
            parts.append(f"{whole}.{rest // accuracy:0{digits}d}{suffix}")
            break
        parts.append(f"{whole}{suffix}")
        usec = rest
    return " ".join(parts)


def _queue_place(s: Session) -> str:
    """Where queued S waits, how it is ordered, and what holds it with no time (memory)."""
    said = [f"#{s.position} in line"] if s.position else []
    said += [f"priority {s.priority}"] if s.priority else []
    held = f"; waiting for {s.waiting_for}" if s.waiting_for and not s.resumes_at else ""
    return (f" ({', '.join(said)})" if said else "") + held


def _stamp(iso: str | None, now: datetime) -> str | None:
    """"Sat 2026-12-05 23:49:12 UTC; 3min ago" for ISO; ISO itself if it does not parse."""
    when = parse_time(iso)
    if when is None:
        return iso or None
    return f"{format_timestamp(when)}; {format_relative(when, now)}"


def _ran(started: str | None, ended: str | None) -> str | None:
    """How long an invocation ran from STARTED to ENDED, if both are known."""
    start, end = parse_time(started), parse_time(ended)
    if start is None or end is None:
        return None
    return format_timespan(max(_usec((end - start).total_seconds()), 0))


def age(iso: str | None, now: datetime | None = None) -> str:
    """The AGE column of `orch ps`: "45s", "3m", "2h", "4d"; "-" if unknown."""
    when = parse_time(iso)
    if when is None:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


# --- resources ------------------------------------------------------------------------

def format_bytes(count: int) -> str:
    """COUNT bytes as systemd's format_bytes() writes them: "512B", "180.0K", "1.2G"."""
    for suffix, factor in (("E", 1 << 60), ("P", 1 << 50), ("T", 1 << 40), ("G", 1 << 30),
                           ("M", 1 << 20), ("K", 1 << 10)):
        if count >= factor:
            return f"{count // factor}.{count * 10 // factor % 10}{suffix}"
    return f"{count}B"


def cpu_time(nsec: int) -> str:
    """CPU time as `systemctl status` shows it: "1.234s", "5ms", "2min 3.101s"."""
    return format_timespan(nsec // 1000, 1000)


def resources(memory: int | None, cpu_nsec: int | None, cost: float | None
              ) -> tuple[str, str, str]:
    """The MEM, CPU and COST cells of a table row; "-" where nothing is known."""
    return (format_bytes(memory) if memory is not None else "-",
            cpu_time(cpu_nsec) if cpu_nsec is not None else "-",
            money(cost) if cost is not None else "-")


# --- money and tokens -----------------------------------------------------------------

def money(usd: float) -> str:
    """A cost in dollars: to the cent from a cent up ("$1.24"), else to 4 significant
    digits ("$0.00013"): float noise such as 0.00013000000000000002 never shows."""
    if usd >= 0.01 or usd <= 0:
        return f"${usd:.2f}"
    from decimal import Decimal

    return f"${Decimal(f'{usd:.4g}'):f}"


# Token counts (orch.results) that add up to what was processed: OpenAI's cached and
# reasoning counts are parts of input and output; Anthropic's cache counts come on top.
_ADDITIVE_TOKENS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                    "cache_read_input_tokens")
_TOKEN_LABELS = {"input_tokens": "input", "output_tokens": "output",
                 "cache_creation_input_tokens": "cache write", "cached_input_tokens": "cached",
                 "cache_read_input_tokens": "cache read", "reasoning_output_tokens": "reasoning",
                 "premiumRequests": "premium requests"}


def tokens(usage: dict[str, int]) -> str:
    """USAGE as a total (the provider's total_tokens where given) and its parts: "15,234
    (input 1,200, output 34)"; "none counted (premium requests 2)" for copilot's."""
    if not any(key.endswith("_tokens") for key in usage):
        counted = (f"{_TOKEN_LABELS.get(key, key)} {n:,}" for key, n in usage.items())
        return f"none counted ({', '.join(counted)})"
    total = usage.get("total_tokens")
    if total is None:
        total = sum(usage.get(key, 0) for key in _ADDITIVE_TOKENS)
    parts = [f"{_TOKEN_LABELS.get(key) or key.removesuffix('_tokens').replace('_', ' ')} "
             f"{count:,}" for key, count in usage.items() if key != "total_tokens" and count]
    return f"{total:,}" + (f" ({', '.join(parts)})" if parts else "")


# --- orch show ------------------------------------------------------------------------

_MAX_RESULT_LINES = 10


def outcome(status: str, exit_code: int | None, exit_signal: str | None,
            result: str | None) -> str:
    """A status with how it ended: "failed (exit code 3)", "failed (SIGKILL, timeout)"."""
    why = [f"exit code {exit_code}" if exit_code is not None else exit_signal or ""]
    if result and result not in ("success", "exit-code", "signal"):
        why.append(result)
    why = [w for w in why if w]
    return status + (f" ({', '.join(why)})" if why else "")


def _value(value: Any) -> str:
    """A value of a dict or list as one word: lists joined with commas."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(_value(v) for v in value)
    return str(value)


def key_values(options: dict[str, Any]) -> str:
    """A session's OPTIONS as systemd writes settings (key=value, quoted where needed),
    durations and sizes as it writes them: "timeout=2h", "memory_max=100.0M"."""
    return " ".join(_option(key, value) for key, value in options.items())


def _option(key: str, value: Any) -> str:
    if key.endswith("_sec"):  # a duration, in seconds
        return f"{key.removesuffix('_sec')}={format_timespan(_usec(value))}"
    if key == "memory_max":
        return f"{key}={format_bytes(value)}"
    return f"{key}={shellwords.quote(_value(value))}{'%' if key == 'cpu_quota' else ''}"


def _result_text(text: str, ref: str, ellipsis: str) -> str:
    """TEXT, its first lines only if it is long (`orch result` prints it all)."""
    lines = text.rstrip("\n").split("\n")
    if len(lines) <= _MAX_RESULT_LINES:
        return "\n".join(lines)
    more = len(lines) - _MAX_RESULT_LINES
    return "\n".join([*lines[:_MAX_RESULT_LINES],
                      f"{ellipsis} {more} more lines: orch result {ref}"])


def _dot(status: Status, unicode: bool) -> str:
    """systemctl status's mark: ACTIVE if not ended, FAILED if failed or lost, else ENDED."""
    if not status.ended:
        return ACTIVE if unicode else "*"
    if status in (Status.FAILED, Status.LOST):
        return FAILED if unicode else "x"
    return ENDED if unicode else "o"


def details(session: Session, now: datetime | None = None, unicode: bool = True) -> str:
    """The `orch show` text: a heading, then one labelled line per field that has a
    value (empty ones left out), times in local time with how long ago, and one entry
    per invocation once the session has run more than once."""
    now = now or datetime.now(UTC)
    ellipsis = ELLIPSIS if unicode else ASCII_ELLIPSIS
    s = session
    status = str(s.status)
    ended = s.status.ended
    since = s.ended_at if ended or s.status.waiting_to_resume else s.started_at  # run's end
    stamp = _stamp(since, now)
    state = outcome(status, s.exit_code, s.exit_signal, s.result) if ended else \
        "idle: waiting for its next message; running" if s.status is Status.IDLE else \
        status_cell(s.json_view())  # waiting, as ps says, for a dependent not yet started
    fields: list[tuple[str, str | None]] = [
        ("Status", f"{state} since {stamp}" if stamp else state),
        ("Started", _stamp(s.started_at, now) if ended else None),
        ("Duration", _ran(s.started_at, s.ended_at)),
        ("Main PID", str(s.main_pid) if s.main_pid else None),
        ("Blocked", s.blocked),
        ("Unit", f"{s.unit} ({s.scope})"),
        ("Invocation", s.invocation_id),
        ("Command", shellwords.join(s.argv) if s.argv else None),
        ("Directory", s.cwd),
        ("Tags", ", ".join(s.tags)),
        ("After", ", ".join(s.after) + (" (waiting for them to end successfully)"
                                         if waits_after(s.json_view()) else "")),
        ("Created", _stamp(s.created_at, now)), ("Parent", s.parent_id),
        ("Persistent", "yes" if s.persistent else None),
        ("Restarts", str(s.restarts) if s.restarts else None),
        ("Provider", " ".join(filter(None, [
            s.provider, s.provider_session_id and f"(session {s.provider_session_id})"]))),
        ("Tokens", tokens(s.usage) if s.usage else None),
        ("Cost", money(s.cost_usd) if s.cost_usd is not None else None),
        ("Tasks", str(s.tasks_current) if s.tasks_current is not None else None),
        ("Memory", format_bytes(s.memory_current) if s.memory_current is not None else None),
        ("CPU", cpu_time(s.cpu_usage_nsec) if s.cpu_usage_nsec is not None else None),
        ("IO", f"{format_bytes(s.io_read_bytes)} read, {format_bytes(s.io_write_bytes)} "
         "written" if s.io_read_bytes is not None and s.io_write_bytes is not None
         else None),
        ("Options", key_values(s.options)),
        ("Worktree", s.worktree), ("Placement", s.placement),
        ("Queue", s.queue and s.queue + _queue_place(s)),
        ("Resumes", s.resumes_at and f"{_stamp(s.resumes_at, now)} ({s.waiting_for})"),
        ("Result", _result_text(s.final_result, s.id[:8], ellipsis) if s.final_result else None),
        ("Processes", _processes(s.processes) if s.processes else None),
    ]
    shown = [(label, value) for label, value in fields if value]
    several = len(s.invocations) > 1
    width = max(len(label) for label in [*(label for label, _ in shown),
                                         *(["Invocations"] if several else [])]) + 1
    indent = "\n" + " " * (width + 1)
    lines = [f"{_dot(s.status, unicode)} {s.name} ({s.id})"
             + (f" - {s.description}" if s.description else "")]
    lines += [f"{label + ':':>{width}} {visible(value, MULTILINE).replace(chr(10), indent)}"
              for label, value in shown]
    if several:
        lines.append(f"{'Invocations:':>{width}}")
        lines += [_invocation(number, run, now, width)
                  for number, run in enumerate(s.invocations, 1)]
    return "\n".join(lines)


def _processes(processes: list[dict[str, Any]]) -> str:
    """A session's processes, one a line: pid, memory, CPU time and command line."""
    rows = [(str(p["pid"]), format_bytes(p["memory_rss"]), cpu_time(p["cpu_usage_nsec"]),
             shellwords.join(p["command"])) for p in processes]
    return layout(rows)


def _invocation(number: int, run: dict[str, Any], now: datetime, width: int) -> str:
    """One invocation: its outcome and id, then when it started, ended and how long it ran."""
    how = outcome(run["status"], run["exit_code"], run["exit_signal"], run["result"])
    head = f"{' ' * (width - 3)}{number:>2}. {how}"
    if run["invocation_id"]:
        head += f"  {run['invocation_id']}"
    start, end = parse_time(run["started_at"]), parse_time(run["ended_at"])
    when = [f"started {format_timestamp(start)}" if start else "",
            f"ended {format_timestamp(end)}" if end else "",
            f"ran for {_ran(run['started_at'], run['ended_at'])}" if start and end else
            f"running for {format_timespan(_usec((now - start).total_seconds()))}"
            if start and not end and run["status"] in ("running", "starting") else ""]
    body = ", ".join(w for w in when if w)
    return head + (f"\n{' ' * (width + 1)}{body}" if body else "")


# --- orch ps --------------------------------------------------------------------------

COLUMNS = ("ID", "NAME", "STATUS", "PID", "MEM", "CPU", "COST", "AGE", "COMMAND")
_FLEXIBLE = ("HOST", "NAME", "COMMAND")  # the columns cut to fit, widest first
_GAP = "  "


def _cut(text: str, width: int, ellipsis: str) -> str:
    """TEXT in at most WIDTH columns, ending in ELLIPSIS where it was cut."""
    if _width(text) <= width:
        return text
    room = max(width - _width(ellipsis), 0)
    if text.isascii():
        return text[:room] + ellipsis
    kept: list[str] = []
    used = 0
    for char in text:
        used += _width(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + ellipsis


def _width(text: str) -> int:
    """The columns TEXT takes on a terminal: two for a wide (East Asian) character, none
    for a combining one."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF"
               else 1 for c in text)


def layout(rows: Sequence[Sequence[str]], width: int | None = None,
           flexible: Collection[int] = (), ellipsis: str = ELLIPSIS) -> str:
    """ROWS (the first is the header) in columns two spaces apart, each padded to its
    widest cell but the last (in terminal columns; each cell made visible()). With a
    WIDTH, lines wider than that are brought within it as systemd's tables are: the
    widest of the FLEXIBLE columns is narrowed first, down to its heading's width, its
    cut cells ending in ELLIPSIS; then the last columns are left out whole (a time cut
    short would read as another: 19ms as 19m...). With no WIDTH every cell is whole."""
    rows = [[visible(cell) for cell in row] for row in rows]
    count = len(rows[0])
    widths = whole = [max(_width(row[i]) for row in rows) for i in range(count)]
    if width is not None:
        widths, excess = list(whole), sum(whole) + len(_GAP) * (count - 1) - width
        floor = {i: max(_width(rows[0][i]), _width(ellipsis) + 1) for i in flexible}
        while excess > 0 and (narrowable := [i for i in flexible if widths[i] > floor[i]]):
            widest = max(narrowable, key=lambda i: (widths[i], i))
            widths[widest], excess = widths[widest] - 1, excess - 1
        while excess > 0 and count > 1:
            count, excess = count - 1, excess - widths[count - 1] - len(_GAP)
        for i in (i for i in flexible if i < count):  # what the columns left out freed
            back = min(-excess, whole[i] - widths[i]) if excess < 0 else 0
            widths[i], excess = widths[i] + back, excess + back
        rows = [row[:count] for row in rows]
    last = count - 1
    lines = []
    for row in rows:
        cells = [_cut(cell, widths[i], ellipsis) for i, cell in enumerate(row)]
        line = _GAP.join([*(c + " " * (w - _width(c))
                            for c, w in zip(cells[:last], widths, strict=False)),
                          cells[last]])
        lines.append(line if width is None else _cut(line, width, ellipsis))
    return "\n".join(lines)


def _flexible(header: Sequence[str]) -> list[int]:
    return [i for i, name in enumerate(header) if name in _FLEXIBLE]


def table(sessions: list[Session], width: int | None = None, ellipsis: str = ELLIPSIS,
          now: datetime | None = None) -> str:
    """The `orch ps` table, fitted to WIDTH (None: every cell whole)."""
    rows: list[Sequence[str]] = [COLUMNS]
    rows += [(s.id[:8], s.name, status_cell(s.json_view()),
              str(s.main_pid or "-"), *resources(s.memory_current, s.cpu_usage_nsec,
                                                 s.cost_usd),
              age(s.created_at, now), shellwords.join(s.argv))
             for s in sessions]
    return layout(rows, width, _flexible(COLUMNS), ellipsis)


def event_line(event: Event) -> str:
    """One `orch events` line: local time (journalctl's short), session, event, status."""
    when = parse_time(event.time)
    stamp = when.astimezone().strftime("%b %d %H:%M:%S") if when else event.time
    how = []
    if event.exit_code is not None:
        how.append(f"exit code {event.exit_code}")
    if event.result and event.result not in ("success", event.status) \
            and not (event.detail or "").startswith(event.result):  # said once
        how.append(event.result)
    if event.detail:
        how.append(event.detail)
    tail = f" ({', '.join(how)})" if how else ""
    return (f"{stamp} {event.session_id[:8]} {event.name}: {event.event}, "
            f"{event.status}{tail}")


def status_cell(session: Mapping[str, Any]) -> str:
    """A status as `ps` shows it (SESSION as --json gives it): a queued session with its
    place in its queue; one whose unit waits for its dependencies (--after) as waiting
    (--json: starting, the unit's own state)."""
    status, position = str(session.get("status", "")), session.get("position")
    if isinstance(position, int):
        return f"{status} #{position}"
    return "waiting" if waits_after(session) else status


def waits_after(session: Mapping[str, Any]) -> bool:
    """Whether SESSION (as --json gives it) has not started yet for its dependencies."""
    return session.get("status") == "starting" and bool(session.get("after")) \
        and not session.get("invocation_id")


def hosts_table(sessions: list[dict[str, Any]], width: int | None = None,
                ellipsis: str = ELLIPSIS, now: datetime | None = None) -> str:
    """The `orch ps --all-hosts` table: each session (as --json) with its host, as table()."""
    header = ("HOST", *COLUMNS)
    rows: list[Sequence[str]] = [header]
    rows += [(str(s["host"]), str(s.get("id", ""))[:8], str(s.get("name", "")),
              status_cell(s),
              str(s.get("main_pid") or "-"),
              *resources(s.get("memory_current"), s.get("cpu_usage_nsec"), s.get("cost_usd")),
              age(s.get("created_at"), now),
              shellwords.join(str(word) for word in s.get("argv") or [])) for s in sessions]
    return layout(rows, width, _flexible(header), ellipsis)
