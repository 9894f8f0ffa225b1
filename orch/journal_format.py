"""A session's output as `orch logs` shows it: journalctl's short, cat and json formats,
rendered by orch from whole lines, or an agent's transcript (orch.transcript), with a
mark where each invocation's output starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum

from orch import jsontext
from orch.journal_entries import Entry, field_text, message, realtime_usec
from orch.session import Record
from orch.visible import MULTILINE, visible

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.transcript import Transcript

Write = Callable[[str], object]


class LogFormat(StrEnum):
    """Output formats `orch logs -o` offers (journalctl's names)."""

    SHORT = "short"
    JSON = "json"
    CAT = "cat"
    TRANSCRIPT = "transcript"  # an agent's output as a person reads it (orch.transcript)


def _clock(usec: int) -> str:
    return datetime.fromtimestamp(usec / 1e6).strftime("%b %d %H:%M:%S") if usec else "-"


def render_short(entry: Entry) -> str:
    """One journal entry as journalctl's short format shows it."""
    pid = field_text(entry, "_PID", ",")
    ident = field_text(entry, "SYSLOG_IDENTIFIER", ",")
    host = field_text(entry, "_HOSTNAME", ",")
    # A program's escape sequences shown, not run by the terminal (cat gives them raw).
    text = visible(message(entry).decode("utf-8", "replace"), MULTILINE)
    return f"{_clock(realtime_usec(entry))} {host} {ident}{f'[{pid}]' if pid else ''}: {text}"


def render_cat(entry: Entry) -> str:
    """The entry's message alone, as journalctl's cat format shows it."""
    return message(entry).decode("utf-8", "replace")


def render_json(entry: Entry) -> str:
    """The entry as one line of journalctl's json format."""
    return jsontext.dumps(entry, ascii=False)


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
        received = realtime_usec(entry)
        owner = self.starts[0][0] if self.starts else ""
        for invocation, started in self.starts:
            if started and started <= received:
                owner = invocation
        return owner

    def render(self, entry: Entry) -> list[str]:
        """ENTRY in short format, after a marker line if it begins another invocation."""
        mark = self.mark(entry)
        return [*([] if mark is None else [mark]), render_short(entry)]

    def mark(self, entry: Entry) -> str | None:
        """The line that marks where ENTRY's invocation begins, if ENTRY is its first."""
        owner = self._owner(entry)
        if owner == self.current:
            return None
        self.current = owner
        ids = [i for i, _ in self.starts]
        number = ids.index(owner) + 1 if owner in ids else "?"
        started = dict(self.starts).get(owner, 0)
        return f"-- invocation {number} ({owner or 'unknown'}) started {_clock(started)} --"


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


class Printer:
    """WRITEs whole lines in OUTPUT format, one journal entry at a time (short and
    transcript: marking where each invocation starts). TRANSCRIPT renders the entries'
    messages in that format; finish() writes what it holds back."""

    def __init__(self, output: LogFormat, write: Write, starts: Sequence[tuple[str, int]] = (),
                 refresh: Callable[[], Sequence[tuple[str, int]]] | None = None,
                 transcript: Transcript | None = None) -> None:
        self.output = output
        self.write = write
        self.marks = InvocationMarks(starts, refresh)
        self.transcript = transcript

    def __call__(self, entry: Entry) -> None:
        if self.output is LogFormat.JSON:
            self.write(render_json(entry) + "\n")
        elif self.output is LogFormat.CAT:
            self.write(render_cat(entry) + "\n")
        elif self.output is LogFormat.SHORT or self.transcript is None:
            self.write("".join(line + "\n" for line in self.marks.render(entry)))
        else:
            mark = self.marks.mark(entry)
            lines = [] if mark is None else [*self.transcript.restart(), mark]
            lines += self.transcript.feed(render_cat(entry))
            if lines:
                self.write("".join(line + "\n" for line in lines))

    def finish(self) -> None:
        """Write what the transcript holds back (text still streaming in)."""
        if self.transcript is not None:
            held = self.transcript.flush()
            if held:
                self.write("".join(line + "\n" for line in held))
