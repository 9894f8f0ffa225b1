"""The last lines of many sessions at once, as they come, for `orch top`'s LAST column:
one `journalctl --follow` over all of them, not one per session."""

from __future__ import annotations

import time
from collections.abc import Iterable

# journal's own reader and matches: this module is its part for top.
from orch.journal import Reader, lines_arg, output_matches
from orch.journal_entries import Entry, Lines, field_text, message, realtime_usec
from orch.units import syslog_identifier

RECENT = 8  # lines OutputTail holds for each unit


class OutputTail:
    """The last whole lines (RECENT) each of some units' sessions wrote, as they come:
    one `journalctl --follow` over their output, restarted when the units change (it
    reads their last LINES first: nothing said meanwhile is missed, nor a line older
    than those held taken); for those whose lines that may not reach (a loud unit's push
    out a quiet one's), one read backwards until each has said RECENT (LOOK_BACK lines
    at most, LOOK_BACK_S a poll). Several, not one: an agent's newest line may be an
    event its transcript does not show (copilot's turn end), and top shows the one
    before."""

    def __init__(self, scope: str, lines: int = 200, look_back: int = 20_000,
                 look_back_s: float = 0.1) -> None:
        self.scope, self.lines, self.look_back, self.look_back_s = \
            scope, lines, look_back, look_back_s
        # unit: its last lines, oldest first, each as (when journald got it (µs), text)
        self.recent: dict[str, list[tuple[int, str]]] = {}
        self._units: dict[str, str] = {}  # syslog identifier: unit
        self._reader: Reader | None = None
        self._looking_back: Reader | None = None
        self._joiner = Lines()

    def watch(self, units: Iterable[str]) -> None:
        """Follow UNITS' output from now on (and their last lines)."""
        wanted = {syslog_identifier(unit): unit for unit in units}
        if wanted == self._units and self._reader is not None:
            return
        self.close()
        self._units = wanted
        if wanted:
            self._reader = Reader(["--follow", "--lines", lines_arg(self.lines),
                                    *output_matches(self.scope, wanted.values())])
            unknown = [unit for unit in wanted.values()
                       if len(self.recent.get(unit, ())) < RECENT]
            if unknown:
                self._looking_back = Reader(["--reverse", "--lines", lines_arg(self.look_back),
                                              *output_matches(self.scope, unknown)])

    def poll(self, timeout: float = 0.0) -> bool:
        """Take in all that came within TIMEOUT seconds (a restart's last lines may be
        megabytes: a read each poll lagged behind), LOOK_BACK_S at most; whether any did."""
        looked, heard, until = self._look_back(), False, time.monotonic() + self.look_back_s
        while self._reader is not None:
            batch = self._reader.read(timeout)
            if batch is None:
                self._reader = None
                break
            for entry in batch:
                for line in self._joiner.feed(entry):
                    self._heard(line.entry, newest=True)
            heard, timeout = heard or bool(batch), 0.0
            if not batch or time.monotonic() > until:
                break
        return heard or looked

    @property
    def last(self) -> dict[str, str]:
        """Each unit's last line."""
        return {unit: lines[-1][1] for unit, lines in self.recent.items() if lines}

    def _heard(self, entry: Entry, newest: bool) -> bool:
        """Take ENTRY's line: NEWEST, as the follow reads them (never older than those
        held: a restart replays them); else read backwards, older than those held."""
        unit = self._units.get(field_text(entry, "SYSLOG_IDENTIFIER"))
        if unit is None:
            return False
        line = (realtime_usec(entry), message(entry).decode("utf-8", "replace"))
        lines = self.recent.setdefault(unit, [])
        if line in lines:
            return False
        if newest:
            if lines and line[0] < lines[-1][0]:
                return False
            lines.append(line)
            del lines[:-RECENT]
        else:
            if len(lines) >= RECENT or (lines and line[0] > lines[0][0]):
                return False
            lines.insert(0, line)
        return True

    def _look_back(self) -> bool:
        """Last lines read backwards for each unit with fewer than RECENT yet; whether any
        came."""
        found, until = False, time.monotonic() + self.look_back_s
        while self._looking_back is not None and time.monotonic() < until:
            batch = self._looking_back.read(self.look_back_s)
            found = any([self._heard(entry, newest=False) for entry in batch or ()]) or found
            if batch is None or all(len(self.recent.get(unit, ())) >= RECENT
                                    for unit in self._units.values()):
                self._looking_back.close()
                self._looking_back = None
        return found

    def close(self) -> None:
        """Stop following."""
        for reader in filter(None, (self._reader, self._looking_back)):
            reader.close()
        self._reader = self._looking_back = None
