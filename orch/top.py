"""`orch top`: the sessions live on a full screen (rich's Live), refreshed every
interval: name, status, age, memory, CPU, cost and the last thing each one said, sorted
as asked; keys to read a session's logs, stop it, or kill it (asked first).

The Board holds what is shown and decides what each key does, with no terminal; the
loop (run) reads keys, refreshes and acts.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from enum import StrEnum

from orch.errors import OrchError, UsageError
from orch.frozen import dataclass
from orch.render import (
    age,
    format_bytes,
    money,
    parse_time,
    resources,
    status_cell,
    waits_after,
)
from orch.session import Status
from orch.visible import visible

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from rich.console import RenderableType

    from orch.hosts import Host

    Sessions = Callable[[], "list[dict[str, Any]]"]
    Act = Callable[[dict[str, Any], str], str]

DEFAULT_INTERVAL = 2.0
MAX_INTERVAL = 86400.0
MESSAGE_SECONDS = 3.0
KEYS_HELP = ("↑/↓ select  m memory  c CPU  $ cost  a age  l logs  s stop  k kill  "
             "q quit")


class Sort(StrEnum):
    MEMORY = "memory"
    CPU = "cpu"
    COST = "cost"
    AGE = "age"


SORT_KEYS = {"m": Sort.MEMORY, "c": Sort.CPU, "$": Sort.COST, "a": Sort.AGE}
_ENDED = frozenset(str(status) for status in Status if status.ended)  # as JSON says them
# Escape sequences of the keys a terminal sends, as read in cbreak mode.
UP, DOWN = "\x1b[A", "\x1b[B"


@dataclass(frozen=True)
class Row:
    """One session as a line of the board."""

    key: str  # host and id: stable across refreshes
    session: dict[str, Any]
    cpu_percent: float | None  # over the last interval; None on the first sight


def _key(session: dict[str, Any]) -> str:
    return f"{session.get('host', '')}/{session['id']}"


class Board:
    """The sessions as last read, their CPU use between reads, the sort, the selection,
    and a kill waiting for its yes."""

    def __init__(self, sort: Sort = Sort.MEMORY) -> None:
        self.sort = sort
        self.rows: list[Row] = []
        self.selected: str | None = None
        self.first = 0  # the first row in sight: it moves only to keep the selection in sight
        self.confirming: str | None = None  # the key of a session a kill awaits a yes for
        self.message = ""
        self.message_until = 0.0  # monotonic seconds: a message shows until then
        self._samples: dict[str, tuple[int, float]] = {}  # key: (cpu ns, monotonic s)

    def say(self, message: str, now: float) -> None:
        """Show MESSAGE instead of the keys' help for a few seconds from NOW."""
        self.message, self.message_until = message, now + MESSAGE_SECONDS

    def take(self, told: list[str], now: float) -> None:
        """Show the next of TOLD (what background actions said), taken from it, unless a
        kill's question is being asked: that stays until answered."""
        if told and self.confirming is None:
            self.say(told.pop(0), now)

    def footer(self, now: float) -> str:
        """The line under the table: a question, a recent message, or the keys."""
        if self.confirming is not None or (self.message and now < self.message_until):
            return self.message
        return KEYS_HELP

    def update(self, sessions: Sequence[dict[str, Any]], now: float) -> None:
        """Take in a new reading of SESSIONS made at NOW (monotonic seconds)."""
        rows, samples = [], {}
        for session in sessions:
            key = _key(session)
            cpu = session.get("cpu_usage_nsec")
            percent = None
            if isinstance(cpu, int):
                samples[key] = (cpu, now)
                before = self._samples.get(key)
                if before is not None and now > before[1]:
                    percent = max(cpu - before[0], 0) / ((now - before[1]) * 1e9) * 100
            rows.append(Row(key, session, percent))
        self._samples = samples
        self.rows = sorted(rows, key=self._order)
        keys = [row.key for row in self.rows]
        if self.selected not in keys:
            self.selected = keys[0] if keys else None

    def _order(self, row: Row) -> tuple[Any, ...]:
        session = row.session
        # Ties (a user manager counts no memory: all `-`) go to the live, newest first.
        rest = (session.get("status") in _ENDED, -started_at(session), row.key)
        if self.sort is Sort.MEMORY:
            return (-(session.get("memory_current") or -1), *rest)
        if self.sort is Sort.CPU:
            cpu = row.cpu_percent if row.cpu_percent is not None else -1.0
            return (-cpu, -(session.get("cpu_usage_nsec") or -1), *rest)
        if self.sort is Sort.COST:
            return (-(session.get("cost_usd") or -1.0), *rest)
        return (-started_at(session), row.key)  # newest first

    def in_sight(self, room: int) -> list[Row]:
        """The ROOM rows to show: from the first in sight, moved only as far as it takes
        to keep the selection in sight (a list that got shorter shows its end)."""
        keys = [row.key for row in self.rows]
        at = keys.index(self.selected) if self.selected in keys else 0
        first = min(self.first, at)
        first = max(first, at - room + 1)
        self.first = min(max(first, 0), max(len(keys) - room, 0))
        return self.rows[self.first:self.first + room]

    def current(self) -> Row | None:
        """The selected row."""
        return next((row for row in self.rows if row.key == self.selected), None)

    def move(self, step: int) -> None:
        """Select the row STEP rows down (up if negative), within the board."""
        keys = [row.key for row in self.rows]
        if not keys:
            return
        at = keys.index(self.selected) if self.selected in keys else 0
        self.selected = keys[min(max(at + step, 0), len(keys) - 1)]

    def press(self, key: str, now: float) -> tuple[str, Row] | str | None:
        """What KEY, pressed at NOW, asks for: ("logs"|"stop"|"kill", row) to act on a
        session, "quit", or None (the board changed, or nothing to do)."""
        if self.confirming is not None:
            asked, self.confirming = self.confirming, None
            row = next((row for row in self.rows if row.key == asked), None)
            if key in ("y", "Y") and row is not None:
                return ("kill", row)
            self.say("kill cancelled", now)
            return None
        if key in ("q", "Q", "\x03"):
            return "quit"
        if key in SORT_KEYS:  # the top of the new order in sight, and selected
            self.sort = SORT_KEYS[key]
            self.rows.sort(key=self._order)
            self.selected, self.first = (self.rows[0].key if self.rows else None), 0
            self.say(f"sorted by {self.sort}", now)
        elif key in (UP, DOWN):
            self.move(-1 if key == UP else 1)
        elif key in ("l", "s", "k"):
            row = self.current()
            if row is None:
                return None
            if key == "k":
                self.confirming = row.key
                self.message = (f"kill {row.session.get('name')} "
                                f"({str(row.session['id'])[:8]})? [y/N]")
                return None
            return ({"l": "logs", "s": "stop"}[key], row)
        return None


def cpu_cell(row: Row) -> str:
    """CPU as a percentage over the last interval; before there is one, the time so far."""
    if row.cpu_percent is not None:
        return f"{row.cpu_percent:.1f}%"
    return resources(None, row.session.get("cpu_usage_nsec"), None)[1]


def summary(board: Board, compact: bool = False) -> str:
    """How many sessions, what they use together, and their order (COMPACT: in fewer
    words)."""
    sessions = [row.session for row in board.rows]
    live = sum(1 for s in sessions if s.get("status") in ("running", "idle", "starting")
               and not waits_after(s))
    memory = [s["memory_current"] for s in sessions if s.get("memory_current") is not None]
    # Before a second reading there is no percentage to add up: '-', not 0.0%.
    percents = [row.cpu_percent for row in board.rows if row.cpu_percent is not None]
    cpu = f"{sum(percents):.1f}%" if percents else "-"
    costs = [s["cost_usd"] for s in sessions if s.get("cost_usd") is not None]
    count = f"{len(sessions)} session" + ("" if len(sessions) == 1 else "s")
    return (f"{count}, {live} running · MEM {format_bytes(sum(memory)) if memory else '-'} · "
            f"CPU {cpu} · COST {money(sum(costs)) if costs else '-'} · "
            f"{'by' if compact else 'sorted by'} {board.sort}")


def headline(board: Board, interval: float, width: int) -> str:
    """The top line: the summary and how often it is read, in as many of its words as
    WIDTH columns hold ("orch top" goes first; what is still too wide is cut)."""
    every = f"every {interval:g}s"
    fullest = f"orch top · {summary(board)} · {every}"
    for text in (fullest, f"{summary(board)} · {every}",
                 f"{summary(board, compact=True)} · {interval:g}s"):
        if len(text) <= width:
            return text
    return text


class Said:
    """The last thing each session said, as its transcript shows it (the agent's
    current tool call, or its last words); a plain program's last line."""

    def __init__(self) -> None:
        # unit: the oldest and newest of the lines last read, and what was shown
        self._shown: dict[str, tuple[tuple[int, str], tuple[int, str], str]] = {}

    def of(self, session: dict[str, Any], recent: Sequence[tuple[int, str]] | None) -> str:
        """What SESSION said last, from RECENT, its last lines (when, text), oldest
        first, as orch.journal_tail.OutputTail holds them: the newest its transcript
        shows (an agent's newest line may be an event it does not show), read afresh
        whenever they change; what was shown before if none of them shows anything."""
        if not recent:
            return ""
        unit = str(session.get("unit"))
        known = self._shown.get(unit)
        if known is not None and known[:2] == (recent[0], recent[-1]):
            return known[2]
        from orch.agents import provider_format
        from orch.transcript import Transcript

        transcript = Transcript(provider_format(session.get("provider"),
                                                str(session.get("scope"))))
        lines = [text for _, line in recent for text in transcript.feed(line) if text.strip()]
        # One line, and nothing the terminal would take as a command (an escape
        # sequence would redraw top's own screen).
        shown = visible(" ".join(lines[-1].split())) if lines else (known[2] if known else "")
        self._shown[unit] = (recent[0], recent[-1], shown)
        return shown


def view(board: Board, said: Callable[[dict[str, Any]], str], height: int,
         hosts: bool, interval: float, width: int = 80) -> RenderableType:
    """The screen of HEIGHT lines and WIDTH columns: headline (cut to one line), table
    (scrolled to keep the selection in sight), keys (on as many lines as they take)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, expand=True, pad_edge=False, header_style="bold")
    if hosts:
        table.add_column("HOST", no_wrap=True, max_width=16)
    for name in ("NAME", "STATUS", "AGE", "MEM", "CPU", "COST"):
        table.add_column(name, no_wrap=True, max_width=24 if name == "NAME" else None,
                         justify="right" if name in ("MEM", "CPU", "COST") else "left")
    table.add_column("LAST", no_wrap=True, ratio=1, overflow="ellipsis")
    footer = board.footer(time.monotonic())
    room = max(height - 3 - max(1, -(-len(footer) // max(width, 1))), 1)
    for row in board.in_sight(room):
        s = row.session
        memory, _, cost = resources(s.get("memory_current"), None, s.get("cost_usd"))
        cells = [str(s.get("name", "")), status_cell(s),
                 age(s.get("created_at")), memory, cpu_cell(row), cost, said(s)]
        if hosts:
            cells.insert(0, str(s.get("host", "")))
        # As text, not rich's markup: a program's "[/b]" is its own words.
        table.add_row(*(Text(cell) for cell in cells),
                      style="reverse" if row.key == board.selected else None)
    head = Text(headline(board, interval, width), style="bold", no_wrap=True,
                overflow="ellipsis")
    foot = Text(footer, style="dim" if footer == KEYS_HELP else "bold")
    if not board.rows:
        return Group(head, Text("no sessions"), foot)
    return Group(head, table, foot)


# --- the loop ------------------------------------------------------------------------

def keys(data: str) -> list[str]:
    """The keys in DATA, as read from a terminal in cbreak mode: each character, or an
    escape sequence whole (an arrow is ESC [ A); keys typed fast come in one read."""
    found: list[str] = []
    at = 0
    while at < len(data):
        if data.startswith("\x1b[", at) or data.startswith("\x1bO", at):
            end = at + 2
            while end < len(data) and not ("@" <= data[end] <= "~"):
                end += 1
            found.append(data[at:end + 1])
            at = end + 1
        else:
            found.append(data[at])
            at += 1
    return found


def _read_keys(fd: int, timeout: float) -> list[str] | None:
    """The keys pressed within TIMEOUT seconds; None if none were."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    data = os.read(fd, 256)
    if not data:
        return ["q"]  # the terminal went away
    return keys(data.decode("utf-8", "replace"))


def run(read: Sessions, act: Act, logs: Callable[[dict[str, Any]], None], *,
        scope: str, interval: float = DEFAULT_INTERVAL, hosts: bool = False,
        notes: Callable[[], list[str]] | None = None) -> int:
    """Show READ's sessions until q; ACT(session, "stop"|"kill") does it and says what
    happened; LOGS(session) shows its logs (the screen is left meanwhile); NOTES, asked
    at each refresh, are news to say (a host that stopped answering)."""
    import termios
    import tty

    from rich.console import Console
    from rich.live import Live

    from orch.journal_tail import OutputTail

    if not 0 < interval <= MAX_INTERVAL:  # NaN too
        raise UsageError(f"--interval must be more than 0 and at most {MAX_INTERVAL:.0f} "
                         "(seconds)")
    from orch.terminal import on_terminal

    if not on_terminal():
        raise UsageError("orch top needs a terminal: use `orch ps` (or `ps --json`) "
                         "elsewhere")
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    console = Console()
    board, said, tail = Board(), Said(), OutputTail(scope)
    done: list[str] = []  # what background actions said, for the message line
    lock = threading.Lock()

    def said_now(session: dict[str, Any]) -> str:
        if session.get("host", "local") != "local":
            return ""  # another host's output stays there: `orch --host H top`
        return said.of(session, tail.recent.get(str(session.get("unit"))))

    def refresh() -> RenderableType:
        sessions = read()
        if notes is not None:
            news = notes()
            with lock:
                done.extend(news)
        tail.watch(str(s["unit"]) for s in sessions
                   if s.get("host", "local") == "local"
                   and s.get("status") not in ("queued", "lost"))
        tail.poll()
        board.update(sessions, time.monotonic())
        return screen()

    def screen() -> RenderableType:
        with lock:
            board.take(done, time.monotonic())
        return view(board, said_now, console.size.height, hosts, interval,
                    console.size.width)

    def in_background(row: Row, verb: str) -> None:
        def work() -> None:
            try:
                text = act(row.session, verb)
            except OrchError as err:
                text = f"{verb}: {err.message}"
            except Exception as err:  # a thread's trace would be drawn over the screen
                text = f"{verb}: internal error: {err!r}"
            with lock:
                done.append(text)

        board.say(f"{verb}ping {row.session.get('name')}…" if verb == "stop"
                  else f"killing {row.session.get('name')}…", time.monotonic())
        threading.Thread(target=work, daemon=True).start()

    try:
        tty.setcbreak(fd)
        with Live(refresh(), console=console, screen=True, auto_refresh=False) as live:
            next_refresh = time.monotonic() + interval
            while True:
                pressed = _read_keys(fd, max(next_refresh - time.monotonic(), 0.0))
                if pressed is None:
                    live.update(refresh(), refresh=True)
                    next_refresh = time.monotonic() + interval
                    continue
                for key in pressed:
                    wanted = board.press(key, time.monotonic())
                    if wanted == "quit":
                        return 0
                    if isinstance(wanted, tuple):
                        verb, row = wanted
                        if verb == "logs":
                            live.stop()
                            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
                            try:
                                logs(row.session)
                            finally:
                                tty.setcbreak(fd)
                                live.start(refresh=True)
                        else:
                            in_background(row, verb)
                live.update(screen(), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        tail.close()


# --- the command ---------------------------------------------------------------------

ACTION_TIMEOUT = 120.0  # a stop waits for the session to end: up to its stop timeout


def act_there(host: Host, verb: str, ref: str, name: object,
              scope_args: list[str]) -> str:
    """What `orch VERB REF` on HOST came to, in one line: its refusal (a session that
    has ended), or ssh's reason (a host gone silent) included."""
    from orch import ssh

    try:
        ssh.capture(host.address, [host.orch, verb, ref, *scope_args], ACTION_TIMEOUT)
    except ssh.Unanswered as err:
        return f"{verb} on {host.name}: {err.reason}"
    return f"{name} on {host.name}: {verb} done"


def command(interval: float = DEFAULT_INTERVAL, all_hosts: bool = False,
            user: bool = False, system: bool = False) -> int:
    """`orch top` (`--host H top` runs it there, on this terminal: orch.hostcli)."""
    from orch import api, hosts, vendor

    vendor.activate()  # a package carries rich there

    scope = api.current_scope(user, system)
    scope_args = [*(["--user"] if user else []), *(["--system"] if system else [])]

    def local() -> list[dict[str, Any]]:
        return [{**s.to_json(), "host": hosts.LOCAL} for s in api.list_sessions(scope)]

    read: Sessions = local
    fleet: dict[str, hosts.Host] = {}
    others: remote.Following | None = None
    if all_hosts:
        from orch import config, remote

        fleet = hosts.fleet(config.load(scope).hosts)
        others = remote.Following(list(fleet.values()), scope_args)

        def read() -> list[dict[str, Any]]:
            assert others is not None
            return [*local(), *others.sessions()]

    def act(session: dict[str, Any], verb: str) -> str:
        name, ref = session.get("name"), str(session["id"])
        if session.get("host", hosts.LOCAL) == hosts.LOCAL:
            ended = api.stop(ref, scope) if verb == "stop" else api.kill(ref, scope=scope)
            return f"{name}: {ended.status}"
        return act_there(fleet[str(session["host"])], verb, ref, name, scope_args)

    def logs(session: dict[str, Any]) -> None:
        if session.get("host", hosts.LOCAL) == hosts.LOCAL:
            from orch.commands import logs as show_logs
            from orch.pager import kept_open

            with kept_open():  # top redraws over the terminal as soon as the pager ends
                show_logs(str(session["id"]), user=user, system=system)
            return
        from orch import remote

        remote.run(fleet[str(session["host"])], ["logs", str(session["id"]), *scope_args],
                   terminal=True)

    return run(read, act, logs, scope=str(scope), interval=interval, hosts=all_hosts,
               notes=others.news if others is not None else None)


def started_at(session: dict[str, Any]) -> float:
    """When SESSION was created, as seconds since the epoch (0 if unknown)."""
    when = parse_time(session.get("created_at"))
    return when.timestamp() if when else 0.0
