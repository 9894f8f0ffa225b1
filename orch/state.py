"""The state: a snapshot of every session record, and a log of the changes since.

Per scope and user, sessions.json holds a snapshot of the records and sessions.log the
changes made after it, a line each (a record set, or one removed). Every change is made
under an advisory lock on a separate lock file: it is appended to the log in one
write(2) and fdatasync'ed before it is reported done (a caller with work to overlap,
a spawn waiting for its unit's start, syncs later). Once the log outgrows a quarter of
the snapshot, the next change writes a new snapshot that holds it (temp file, fsync,
rename, directory fsync) and starts the log over. So a change costs one small append,
not a rewrite of every record.

Each snapshot has a generation, and the log's first line names the generation it
extends. A log older than its snapshot (a crash between writing the one and starting
the other) is already in the snapshot and is skipped. Readers take no lock: one that
finds the log newer than the snapshot it read (a new snapshot came between its two
reads) reads again. A crash mid-append leaves at most an unfinished last line, a change
never reported done: readers skip it, and the next writer cuts it off.

A file that does not parse, or carries a schema version this orch does not know,
stops every command with one line naming it; it is never replaced.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from orch import faults, files
from orch.errors import StateError
from orch.session import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms at import: the exit hook runs this module
    from typing import TypeVar

    T = TypeVar("T")

SCHEMA_VERSION = 4
# Versions this orch reads; an older record is a newer one with the new fields at their
# defaults. v2 added persistent sessions (persistent, restarts, program, path,
# requested_at, history); v3 agents (options, env_files, secret_env, provider, agent,
# provider_session_id, agent_error, usage, cost_usd, worktree, worktree_repo, after,
# blocked); v4 the log (the snapshot's generation).
READABLE_VERSIONS = (1, 2, 3, 4)
STATE_FILE = "sessions.json"
LOG_FILE = "sessions.log"
LOCK_FILE = "sessions.lock"
LOCK_TIMEOUT = 30.0
# The log is folded into a new snapshot once it is larger than this and than a quarter
# of the snapshot: readers then replay at most that, and writers rewrite the records
# once per so many changes.
LOG_MIN_BYTES = 64 * 1024
# Unlocked reads that may race a new snapshot before one is made under the lock.
READ_ATTEMPTS = 3

# One encoder for every record: json.dumps with an option makes a new one per call.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode

Sessions = dict[str, Record]
# Each record's line in the state file, by session id, with the record it encodes.
Lines = dict[str, tuple[Record, str]]


def encode(sessions: Sessions, lines: Lines | None = None, generation: int = 0) -> bytes:
    """The snapshot's bytes for SESSIONS: records in creation order, one per line.

    Each line is json's C encoder at work (`indent` would switch to its pure-Python
    one, eight times slower), and fields at their defaults are left out. LINES, if
    given, supplies the lines of records encoded before (the very same objects: records
    are immutable) and is updated to those of SESSIONS.
    """
    records = sorted(sessions.values(), key=lambda r: (r.created_at, r.id))
    known = lines or {}
    texts = [_line(record, known) for record in records]
    if lines is not None:
        lines.clear()
        lines.update((r.id, (r, t)) for r, t in zip(records, texts, strict=True))
    return _layout(texts, generation)


def _line(record: Record, known: Lines) -> str:
    cached = known.get(record.id)
    if cached is not None and cached[0] is record:
        return cached[1]
    return _ENCODE(record.to_sparse_json())


def _layout(texts: list[str], generation: int) -> bytes:
    body = ",\n".join(texts)
    body = f"\n{body}\n" if texts else ""
    return (f'{{"version": {SCHEMA_VERSION}, "generation": {generation}, '
            f'"sessions": [{body}]}}\n').encode()


def decode(raw: bytes, where: str, lines: Lines | None = None) -> tuple[Sessions, int]:
    """Records from a snapshot's bytes, and its generation; ValueError with a one-line
    reason otherwise. LINES, if given, receives each record's line when the file is laid
    out as encode() lays it out in this schema version."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where} is not a valid orch state file ({err})") from None
    if not isinstance(doc, dict) or "version" not in doc:
        raise ValueError(f"{where} is not an orch state file (no schema version)")
    version = doc["version"]
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ValueError(f"{where} has schema version {version!r}; this orch reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    keys = {"version", "sessions", "generation"} if version >= 4 else {"version", "sessions"}
    generation = doc.get("generation", 0)
    if set(doc) - keys or not isinstance(doc.get("sessions"), list) \
            or not _is_count(generation):
        raise ValueError(f"{where} is not a valid orch state file (unexpected layout)")
    sessions: Sessions = {}
    for item in doc["sessions"]:
        record = Record.from_json(item, where)
        if record.id in sessions:
            raise ValueError(f"{where} holds session {record.id} twice")
        sessions[record.id] = record
    if lines is not None:
        lines.clear()
        if version == SCHEMA_VERSION and sessions:
            texts = [t.removesuffix(",") for t in raw.decode("utf-8").split("\n")[1:-2]]
            # Only a file laid out exactly as encode() lays it out: one record a line.
            if len(texts) == len(sessions) and all(t.startswith("{") for t in texts) \
                    and _layout(texts, generation) == raw:
                lines.update((r.id, (r, t))
                             for r, t in zip(sessions.values(), texts, strict=True))
    return sessions, generation


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def log_header(generation: int) -> bytes:
    """The log's first line: which snapshot it extends."""
    return f'{{"version": {SCHEMA_VERSION}, "extends": {generation}}}\n'.encode()


def log_entries(before: Sessions, after: Sessions, lines: Lines) -> bytes:
    """The log lines that take BEFORE to AFTER (LINES as for encode(), and updated)."""
    out: list[str] = []
    for session_id, record in after.items():
        old = before.get(session_id)
        if old is record or old == record:
            continue
        text = _line(record, lines)
        lines[session_id] = (record, text)
        out.append(f'{{"set": {text}}}\n')
    for session_id in before.keys() - after.keys():
        lines.pop(session_id, None)
        out.append(f'{{"remove": {json.dumps(session_id)}}}\n')
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
            header = json.loads(complete[:header_end])
        except ValueError:
            header = None
        if not isinstance(header, dict) or set(header) != {"version", "extends"} \
                or header["version"] != SCHEMA_VERSION or not _is_count(header["extends"]):
            raise ValueError(f"{where} is not a valid orch state log (its first line)")
        self.extends = header["extends"]
        self.entries = complete[header_end:]

    @property
    def sound(self) -> int:
        """How many of its bytes hold no unfinished or unparsable tail."""
        return self.header_size + self.replayed


def replay(sessions: Sessions, entries: bytes, where: str, lines: Lines | None = None) -> int:
    """Apply the log lines ENTRIES (whole lines) to SESSIONS; how many bytes of them
    were sound. A last line that does not parse is an append cut short, and ends the
    replay; any other is corruption (ValueError)."""
    done = 0
    while done < len(entries):
        end = entries.index(b"\n", done) + 1
        try:
            entry = json.loads(entries[done:end])
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError("not a change")
            if "set" in entry:
                record = Record.from_json(entry["set"], where)
                sessions[record.id] = record
                if lines is not None:
                    lines.pop(record.id, None)
            elif isinstance(entry.get("remove"), str):
                sessions.pop(entry["remove"], None)
            else:
                raise ValueError("not a change")
        except ValueError as err:
            if end == len(entries):
                return done  # cut short by a crash: no change that was reported done
            line = entries.count(b"\n", 0, done) + 2
            raise ValueError(f"{where} is not a valid orch state log "
                             f"(line {line}: {err})") from None
        done = end
    return done


class StateStore:
    """The records of one scope for one user, in DIRECTORY."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self.log_path = directory / LOG_FILE
        self.lock_path = directory / LOCK_FILE
        # The snapshot's bytes this store last read or wrote, its records and generation;
        # and the log's bytes read after it with the records they lead to. A read that
        # finds both as this process left them decodes nothing, one that finds the log
        # grown decodes only the new lines, and a write encodes only what changed.
        self._snapshot: tuple[bytes, Sessions, int] | None = None
        self._replayed: tuple[bytes, Sessions] | None = None
        self._lines: Lines = {}
        self._unsynced = False  # an append not yet fdatasync'ed
        self._prepared = False  # the directory was made private by this store

    def load(self) -> Sessions:
        """A consistent snapshot of every record (empty if there are none yet)."""
        for _attempt in range(READ_ATTEMPTS):
            found = self._read()
            if found is not None:
                return dict(found[0])
        with self._locked():  # new snapshots kept coming between the two reads
            found = self._read(locked=True)
            assert found is not None
            return dict(found[0])

    def peek(self) -> Sessions | None:
        """The records as load() reads them, but never taking the lock nor making a file
        (for readers that must not write: completion); None if new snapshots kept
        coming between the reads."""
        for _attempt in range(READ_ATTEMPTS):
            found = self._read()
            if found is not None:
                return dict(found[0])
        return None

    def _read(self, locked: bool = False) -> tuple[Sessions, int, Log] | None:
        """The records, the snapshot's generation and the log as read; None if a new
        snapshot came between the two reads (only without the lock: under it, a log
        without a whole header is a crash's leftover, and holds no change)."""
        try:
            return self._read_both(locked)
        except ValueError as err:
            raise StateError(f"{err}; orch left it untouched",
                             hint="move it aside to start afresh") from None

    def _read_both(self, locked: bool) -> tuple[Sessions, int, Log] | None:
        raw = self._read_file(self.path)
        if raw is None:
            # No snapshot: nothing was ever written, or it was deleted, which discards
            # the log that extends it too (the next change starts both anew).
            self._snapshot = self._replayed = None
            return {}, 0, Log(None, str(self.log_path))
        if self._snapshot is None or self._snapshot[0] != raw:
            sessions, generation = decode(raw, str(self.path), self._lines)
            self._snapshot, self._replayed = (raw, sessions, generation), None
        _, base, generation = self._snapshot
        log = Log(self._read_file(self.log_path), str(self.log_path))
        if log.extends is None and log.exists and not locked:
            return None  # caught between a new snapshot's log reset and its header
        if log.extends is None or log.extends < generation:
            return base, generation, log  # none yet, or already in the snapshot
        if log.extends > generation:
            if not locked:
                return None
            if log.entries:  # snapshot writes finish before the log starts over
                raise StateError(f"{self.log_path} is newer than {self.path}; "
                                 "orch left them untouched")
            return base, generation, log
        seen = self._replayed
        if seen is not None and log.entries.startswith(seen[0]):
            start, sessions = len(seen[0]), dict(seen[1])
        else:
            start, sessions = 0, dict(base)
        log.replayed = start + replay(sessions, log.entries[start:], str(self.log_path),
                                      self._lines)
        self._replayed = (log.entries[:log.replayed], sessions)
        return sessions, generation, log

    def _read_file(self, path: Path) -> bytes | None:
        """PATH's bytes; None if it does not exist."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._error(err, path) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StateError(f"{path} is not a regular file; orch left it untouched")
            chunks = [os.read(fd, info.st_size + 1)]
            while chunks[-1]:  # it grew since the fstat: read on to its end
                chunks.append(os.read(fd, 1 << 16))
            return b"".join(chunks)
        except IsADirectoryError:
            raise StateError(f"{path} is a directory, not a state file; "
                             "orch left it untouched") from None
        finally:
            os.close(fd)

    def update(self, change: Callable[[Sessions], T], *, sync: bool = True) -> T:
        """Apply CHANGE to the records under the lock and record the result durably.

        CHANGE mutates the dict it is given and returns a value handed back to the
        caller; nothing is written unless the records changed. With SYNC false the
        change is in the log, where every reader sees it, but is made durable only by
        sync() (or a later update): a caller that has work to overlap with the
        fdatasync calls sync() before it reports the change done.
        """
        with self._locked():
            found = self._read(locked=True)
            assert found is not None
            before, generation, log = found
            sessions = dict(before)
            value = change(sessions)
            if sessions != before:
                entries = log_entries(before, sessions, self._lines)
                snapshot = len(self._snapshot[0]) if self._snapshot else 0
                grown = log.sound + len(entries)
                if not snapshot or log.extends is None or (
                        grown > LOG_MIN_BYTES and grown > snapshot // 4):
                    self._write_snapshot(sessions, generation + 1)
                else:
                    self._append(log, generation, entries, sessions)
            if sync:
                self.sync()
            return value

    def _append(self, log: Log, generation: int, entries: bytes, sessions: Sessions) -> None:
        """Add ENTRIES (which lead to SESSIONS) to LOG: after its sound lines, or after a
        new header if it extends an older snapshot."""
        try:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            raise self._error(err, self.log_path) from None
        kept, data, cut = log.entries[:log.replayed], entries, None
        if log.extends != generation:  # a crash came between a snapshot and this log
            kept, data, cut = b"", log_header(generation) + entries, 0
        elif log.size != log.sound:
            cut = log.sound  # an append cut short: no change
        try:
            self._write_all(fd, data, cut)
        except OSError as err:
            raise self._error(err, self.log_path) from None
        self._replayed = (kept + entries, dict(sessions))  # read back, nothing to decode
        self._unsynced = True

    def _write_snapshot(self, sessions: Sessions, generation: int) -> None:
        """Write SESSIONS as the snapshot of GENERATION, durably, then start the log
        over: the log's reset comes only once the snapshot that holds it is on disk."""
        data = encode(sessions, self._lines, generation)
        self._write(data)
        faults.point("state.snapshot")
        header = log_header(generation)
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                # A new log is made before the directory's fsync, which then holds it
                # too: appends need fdatasync only. Should that fsync not happen, the
                # log, with no change in it yet, is ahead of its snapshot: harmless.
                self._write_all(os.open(self.log_path, flags | os.O_CREAT | os.O_EXCL, 0o600),
                                header)
                new = True
            except FileExistsError:
                new = False
            files.sync_directory(self.directory)
            if not new:
                # Only now that the snapshot holding it is on disk does the log start over.
                self._write_all(os.open(self.log_path, flags | os.O_TRUNC), header)
        except OSError as err:
            raise self._error(err, self.log_path) from None
        self._snapshot = (data, dict(sessions), generation)
        self._replayed = (b"", dict(sessions))
        self._unsynced = False

    @staticmethod
    def _write_all(fd: int, data: bytes, cut: int | None = None) -> None:
        """Write DATA at FD in one write(2), after cutting the file to CUT bytes if given,
        and close FD."""
        try:
            if cut is not None:
                os.ftruncate(fd, cut)
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        finally:
            os.close(fd)

    def sync(self) -> None:
        """Make the appends of this store durable (fdatasync the log), if they are not yet."""
        if not self._unsynced:
            return
        try:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as err:
            raise self._error(err, self.log_path) from None
        try:
            os.fdatasync(fd)
        except OSError as err:
            raise self._error(err, self.log_path) from None
        finally:
            os.close(fd)
        self._unsynced = False

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(self.directory, 0o700)
        except OSError as err:
            raise self._error(err) from None
        self._prepared = True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._prepared:
            self._prepare_directory()
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                fd = os.open(self.lock_path, flags, 0o600)
            except FileNotFoundError:  # the directory went away since: make it anew
                self._prepare_directory()
                fd = os.open(self.lock_path, flags, 0o600)
        except OSError as err:
            raise self._error(err, self.lock_path) from None
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StateError(f"{self.lock_path} stayed locked for "
                                         f"{LOCK_TIMEOUT:.0f}s by another orch process") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.02)
            yield
        finally:
            os.close(fd)

    def _write(self, data: bytes) -> None:
        try:
            # The directory's fsync comes with the log's reset (_write_snapshot).
            files.write_atomically(self.path, data, 0o600, sync_dir=False)
        except files.WriteFailed as failed:
            raise StateError(str(failed)) from None

    def _error(self, err: OSError, path: Path | None = None) -> StateError:
        return StateError(files.describe(err, path or self.path))
