"""The state's file formats: a snapshot (or an archive) of records, one a line, and the
log of changes made after a snapshot. Pure: bytes in, records out, and back.

A snapshot is `{"version": 5, "generation": G, "archive": A, "sessions": [...]}`:
the records of generation G that are not archived, and the number of the archive file
that holds the rest (no "archive": none). An archive is laid out the same way, its
generation its number, with the units of its records on its first line so that a
reader can tell whether a loaded unit is one of them without decoding any record.
Versions 1 to 4 had no archive (4 had the generation, 1 to 3 neither).
"""

from __future__ import annotations

from collections.abc import Iterable

from orch import jsontext
from orch.session import Record

SCHEMA_VERSION = 5
# Versions this orch reads; an older record is a newer one with the new fields at their
# defaults. v2 added persistent sessions (persistent, restarts, program, path,
# requested_at, history); v3 agents (options, env_files, secret_env, provider, agent,
# provider_session_id, agent_error, usage, cost_usd, worktree, worktree_repo, after,
# blocked); v4 the log (the snapshot's generation); v5 the archive of ended records.
READABLE_VERSIONS = (1, 2, 3, 4, 5)
# A v4 log holds the very same lines as a v5 one.
LOG_VERSIONS = (4, 5)

# One encoder for every record.
_ENCODE = jsontext.encoder(ascii=False)

Sessions = dict[str, Record]
# Each record's line in the state file, by session id, with the record it encodes.
Lines = dict[str, tuple[Record, str]]


class Snapshot:
    """What a snapshot's (or an archive's) bytes hold."""

    __slots__ = ("archive", "generation", "records", "version")

    def __init__(self, records: Sessions, generation: int, archive: int,
                 version: int) -> None:
        self.records = records
        self.generation = generation
        self.archive = archive  # the number of the archive beside it; 0: none
        self.version = version


def encode(sessions: Sessions, lines: Lines | None = None, generation: int = 0,
           archive: int = 0) -> bytes:
    """The snapshot's bytes for SESSIONS: records in creation order, one per line.

    Each line is json's C encoder at work (`indent` would switch to its pure-Python
    one, eight times slower), and fields at their defaults are left out. LINES, if
    given, supplies the lines of records encoded before (the very same objects: records
    are immutable) and is updated to those of SESSIONS.
    """
    return _layout(_texts(sessions, lines)[1], generation, archive)


def encode_archive(sessions: Sessions, lines: Lines | None, number: int) -> bytes:
    """The bytes of archive NUMBER holding SESSIONS (LINES as for encode())."""
    records, texts = _texts(sessions, lines)
    return _layout(texts, number, units=[r.unit for r in records])


def _texts(sessions: Sessions, lines: Lines | None) -> tuple[list[Record], list[str]]:
    records = sorted(sessions.values(), key=lambda r: (r.created_at, r.id))
    known = lines or {}
    texts = [_line(record, known) for record in records]
    if lines is not None:
        lines.clear()
        lines.update((r.id, (r, t)) for r, t in zip(records, texts, strict=True))
    return records, texts


def _line(record: Record, known: Lines) -> str:
    cached = known.get(record.id)
    if cached is not None and cached[0] is record:
        return cached[1]
    return _ENCODE(record.to_sparse_json())


def _layout(texts: list[str], generation: int, archive: int = 0,
            units: list[str] | None = None) -> bytes:
    body = ",\n".join(texts)
    body = f"\n{body}\n" if texts else ""
    extra = f'"archive": {archive}, ' if archive else ""
    if units is not None:
        extra += f'"units": {_ENCODE(units)}, '
    return (f'{{"version": {SCHEMA_VERSION}, "generation": {generation}, {extra}'
            f'"sessions": [{body}]}}\n').encode()


def decode(raw: bytes, where: str, lines: Lines | None = None) -> tuple[Sessions, int]:
    """Records from a snapshot's bytes, and its generation; ValueError with a one-line
    reason otherwise. LINES, if given, is set to each record's line (see LineCache)."""
    found = read_snapshot(raw, where)
    if lines is not None:
        lines.clear()
        lines.update(_split_lines(raw, found, archive=False))
    return found.records, found.generation


def read_snapshot(raw: bytes, where: str, *, archive: bool = False) -> Snapshot:
    """What a snapshot's bytes (an ARCHIVE's) hold; ValueError with a one-line reason
    otherwise."""
    try:
        doc = jsontext.loads(raw.decode("utf-8"))
    except ValueError as err:  # json's error, or UnicodeDecodeError
        raise ValueError(f"{where} is not a valid orch state file ({err})") from None
    if not isinstance(doc, dict) or "version" not in doc:
        raise ValueError(f"{where} is not an orch state file (no schema version)")
    version = doc["version"]
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ValueError(f"{where} has schema version {version!r}; this orch reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    keys = {"version", "sessions"}
    if version >= 4:
        keys.add("generation")
    if version >= 5:
        keys.add("units" if archive else "archive")
    generation, number = doc.get("generation", 0), doc.get("archive", 0)
    units: list[str] = doc.get("units") or []
    if set(doc) - keys or not isinstance(doc.get("sessions"), list) \
            or not _is_count(generation) or not _is_count(number) \
            or (archive and (version < 5 or not _is_units(doc.get("units")))):
        raise ValueError(f"{where} is not a valid orch state file (unexpected layout)")
    sessions: Sessions = {}
    for item in doc["sessions"]:
        record = Record.from_json(item, where)
        if record.id in sessions:
            raise ValueError(f"{where} holds session {record.id} twice")
        sessions[record.id] = record
    if archive and sorted(units) != sorted(r.unit for r in sessions.values()):
        raise ValueError(f"{where} is not a valid orch state archive (its units)")
    return Snapshot(sessions, generation, number, version)


def _split_lines(raw: bytes, found: Snapshot, archive: bool) -> Lines:
    """Each record's line in RAW (a snapshot, or an ARCHIVE, holding FOUND) when the file
    is laid out as encode() lays it out in this schema version; else none."""
    sessions = found.records
    if found.version != SCHEMA_VERSION or not sessions:
        return {}
    texts = [t.removesuffix(",") for t in raw.decode("utf-8").split("\n")[1:-2]]
    units = [r.unit for r in sessions.values()] if archive else None
    # Only a file laid out exactly as encode() lays it out: one record a line.
    if len(texts) != len(sessions) or not all(t.startswith("{") for t in texts) \
            or _layout(texts, found.generation, found.archive, units) != raw:
        return {}
    return {r.id: (r, t) for r, t in zip(sessions.values(), texts, strict=True)}


class LineCache:
    """The lines of a file's records as last read or written, for a write to reuse for
    the records it does not change (a line serves only its very record: see _line).
    What a read found is split from the file's bytes only when a write first asks:
    most reads are only that."""

    def __init__(self) -> None:
        self._lines: Lines = {}
        self._unsplit: tuple[bytes, Snapshot, bool] | None = None

    def read(self, raw: bytes, found: Snapshot, *, archive: bool = False) -> None:
        """RAW, read, holds FOUND."""
        self._lines, self._unsplit = {}, (raw, found, archive)

    def lines(self) -> Lines:
        """The lines known, for encode() and log_entries() to use and update."""
        if self._unsplit is not None:
            self._lines = _split_lines(*self._unsplit)
            self._unsplit = None
        return self._lines

    def keep(self, lines: Lines) -> None:
        """LINES (as encode() updated them) are now the file's."""
        self._lines, self._unsplit = lines, None


def read_units(head: bytes, where: str) -> list[str]:
    """The units an archive holds, from its first line (HEAD)."""
    try:
        doc = jsontext.loads(head.rstrip(b"\n") + b"]}")
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not _is_units(doc.get("units")):
        raise ValueError(f"{where} is not a valid orch state archive (its first line)")
    units: list[str] = doc["units"]
    return units


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_units(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(u, str) for u in value)


def log_header(generation: int) -> bytes:
    """The log's first line: which snapshot it extends."""
    return f'{{"version": {SCHEMA_VERSION}, "extends": {generation}}}\n'.encode()


def changes(before: Sessions, after: Sessions, touched: Iterable[str]
            ) -> list[tuple[str, Record | None]]:
    """What takes BEFORE to AFTER, which differ in the ids TOUCHED at most: each record
    set (to a new value) or removed (None)."""
    out: list[tuple[str, Record | None]] = []
    for session_id in touched:
        old, record = before.get(session_id), after.get(session_id)
        if record is None:
            if old is not None:
                out.append((session_id, None))
        elif old is not record and old != record:
            out.append((session_id, record))
    return out


def log_entries(changed: list[tuple[str, Record | None]], lines: Lines) -> bytes:
    """The log lines of CHANGED (LINES as for encode(), and updated)."""
    out: list[str] = []
    for session_id, record in changed:
        if record is None:
            lines.pop(session_id, None)
            out.append(f'{{"remove": {jsontext.dumps(session_id)}}}\n')
        else:
            text = _line(record, lines)
            lines[session_id] = (record, text)
            out.append(f'{{"set": {text}}}\n')
    return "".join(out).encode()


class Log:
    """What a read of the log found: the generation it extends (None: no log, or one
    whose header is unfinished), its change lines, and how many bytes of those the
    reader replayed (the sound ones)."""

    def __init__(self, raw: bytes | None, where: str) -> None:
        self.exists = raw is not None
        raw = raw or b""
        complete = raw[:raw.rfind(b"\n") + 1]
        self.extends: int | None = None
        self.entries = b""
        self.size = len(raw)
        self.replayed = 0  # set by the reader
        header_end = complete.find(b"\n") + 1
        self.header_size = header_end
        if header_end == 0:
            return
        try:
            header = jsontext.loads(complete[:header_end])
        except ValueError:
            header = None
        if not isinstance(header, dict) or set(header) != {"version", "extends"} \
                or header["version"] not in LOG_VERSIONS or not _is_count(header["extends"]):
            raise ValueError(f"{where} is not a valid orch state log (its first line)")
        self.extends = header["extends"]
        self.entries = complete[header_end:]

    @property
    def sound(self) -> int:
        """How many of its bytes hold no unfinished or unparsable tail."""
        return self.header_size + self.replayed


def replay(sessions: Sessions, entries: bytes, where: str,
           removed: set[str] | None = None) -> int:
    """Apply the log lines ENTRIES (whole lines) to SESSIONS, adding the ids removed to
    REMOVED (and taking those set again out of it); how many bytes of them were sound.
    A last line that does not parse is an append cut short, and ends the replay; any
    other is corruption (ValueError)."""
    try:  # all at once, as a sound log is: one decoding call, not one a line
        found = [_change(entry, where) for entry in _decode_all(entries)]
        done = len(entries)
    except ValueError:
        found, done = [], 0
    while done < len(entries):  # a line at a time, to find the cut or name the line
        end = entries.index(b"\n", done) + 1
        try:
            change = _change(jsontext.loads(entries[done:end]), where)
        except ValueError as err:
            if end == len(entries):
                break  # cut short by a crash: no change that was reported done
            line = entries.count(b"\n", 0, done) + 2
            raise ValueError(f"{where} is not a valid orch state log "
                             f"(line {line}: {err})") from None
        found.append(change)
        done = end
    for session_id, record in found:
        if record is None:
            sessions.pop(session_id, None)
            if removed is not None:
                removed.add(session_id)
            continue
        sessions[session_id] = record
        if removed is not None:
            removed.discard(session_id)
    return done


def _decode_all(entries: bytes) -> list[object]:
    """ENTRIES' changes decoded in one call (a line each: JSON holds no raw newline);
    ValueError if any line is no JSON value of its own."""
    if not entries:
        return []
    if not entries.endswith(b"\n"):
        raise ValueError("a line cut short")
    decoded = jsontext.loads(b"[" + entries[:-1].replace(b"\n", b",") + b"]")
    if type(decoded) is not list or len(decoded) != entries.count(b"\n"):
        raise ValueError("a line that is no value of its own")
    return decoded


def _change(entry: object, where: str) -> tuple[str, Record | None]:
    """One change of the log: a record set, or an id removed (None); ValueError if
    ENTRY is none."""
    if isinstance(entry, dict) and len(entry) == 1:
        if "set" in entry:
            record = Record.from_json(entry["set"], where)
            return record.id, record
        if isinstance(entry.get("remove"), str):
            return entry["remove"], None
    raise ValueError("not a change")
