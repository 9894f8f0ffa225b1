"""Journal entries as `journalctl --output json --all` gives them: their fields in every
shape, the lines journald split at LineMax= joined whole, and the manager's records of
how a unit's invocation ended. Pure: reading the journal is orch.journal's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from orch import jsontext
from orch.session import Ending, ending_from_exit, now_iso, usec_to_iso

Entry = dict[str, Any]  # one journal entry as `journalctl -o json` gives it


# --- fields ----------------------------------------------------------------------------

def field_values(entry: Mapping[str, Any], name: str) -> list[bytes]:
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
            found.append((item if isinstance(item, str) else jsontext.dumps(item)).encode())
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


def cursor_of(entry: Entry) -> str | None:
    """The entry's cursor: where to read on after it."""
    return field_text(entry, "__CURSOR") or None


# A journal cursor as sd_journal_get_cursor() writes one (journalctl refuses any other):
# "KEY=HEX" fields, ";"-separated: file (s), seqnum (i), boot (b), monotonic (m),
# realtime (t) and xor hash (x).
CURSOR_PATTERN = r"^[sibmtx]=[0-9a-fA-F]+(;[sibmtx]=[0-9a-fA-F]+)*$"


def realtime_usec(entry: Entry) -> int:
    """When journald received the entry, in µs since the epoch (0 if unknown)."""
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


def whole_lines(entries: Iterable[Entry]) -> Iterator[Entry]:
    """ENTRIES with every split line joined into one entry, as they come."""
    joiner = Lines()
    for entry in entries:
        for line in joiner.feed(entry):
            yield line.entry
    for line in joiner.flush():
        yield line.entry


# --- how an invocation ended -----------------------------------------------------------

# The manager's journal records of a unit's end (see shared/systemd-in-a-box.md).
MAIN_EXITED = "98e322203f7a4ed290d09fe03c09fe15"  # EXIT_CODE, EXIT_STATUS
UNIT_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"  # UNIT_RESULT
UNIT_SUCCEEDED = "7ad2d189f7e94e70a38c781354912448"  # "Deactivated successfully."
UNIT_STOPPED = "9d1aaa27d60140bd96365438aad20286"  # "Stopped …": a stop job's end
EXIT_MESSAGE_IDS = (MAIN_EXITED, UNIT_FAILED, UNIT_SUCCEEDED, UNIT_STOPPED)
# The signal a stop sends (KillSignal=, which orch's units leave at its default).
STOP_SIGNAL = "SIGTERM"


def last_text(entry: Mapping[str, Any], name: str) -> str:
    """Field NAME as text; of a field the entry holds more than once, the last value
    (the manager's own last word)."""
    values = field_values(entry, name)
    return values[-1].decode("utf-8", "replace") if values else ""


def endings_from_journal(entries: Iterable[Mapping[str, Any]]) -> dict[str, Ending]:
    """Each invocation's end as the manager logged it, keyed by invocation id.

    A main process that exits 0 is logged only at debug level: "Deactivated
    successfully" alone then says the invocation ended well. So is one that a stop's
    signal ended, which systemd counts a success too: the stop job's "Stopped" tells it
    apart (a user manager logs only that), and the invocation ended stopped.
    """
    exits: dict[str, Mapping[str, Any]] = {}
    results: dict[str, str] = {}
    succeeded: dict[str, str] = {}
    stopped: dict[str, str] = {}
    for entry in entries:
        invocation = last_text(entry, "INVOCATION_ID") or last_text(entry, "USER_INVOCATION_ID")
        if not invocation:
            continue
        message_id = last_text(entry, "MESSAGE_ID")
        if message_id == MAIN_EXITED:
            exits[invocation] = entry
        elif message_id == UNIT_FAILED:
            results[invocation] = last_text(entry, "UNIT_RESULT")
        elif message_id == UNIT_SUCCEEDED:
            succeeded[invocation] = _when(entry)
        elif message_id == UNIT_STOPPED:
            stopped[invocation] = _when(entry)
    endings: dict[str, Ending] = {}
    for invocation in {*exits, *results, *succeeded, *stopped}:
        result = results.get(invocation) or (
            "success" if invocation in succeeded or invocation in stopped else None)
        exit_entry = exits.get(invocation)
        if exit_entry is not None:
            endings[invocation] = ending_from_exit(last_text(exit_entry, "EXIT_CODE"),
                                                   last_text(exit_entry, "EXIT_STATUS"), result,
                                                   _when(exit_entry))
        elif invocation in stopped and result == "success":
            endings[invocation] = Ending(succeeded.get(invocation) or stopped[invocation],
                                         None, STOP_SIGNAL, result)
        elif result is not None:
            endings[invocation] = Ending(succeeded.get(invocation), None, None, result)
    return endings


def _when(entry: Mapping[str, Any]) -> str:
    try:
        return usec_to_iso(int(last_text(entry, "__REALTIME_TIMESTAMP"))) or now_iso()
    except ValueError:
        return now_iso()
