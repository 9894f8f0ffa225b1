"""The state: a snapshot of the session records, a log of the changes since, and an
archive of the ended ones.

Per scope and user, sessions.json holds a snapshot of the records and sessions.log the
changes made after it, a line each (a record set, or one removed). Every change is made
under an advisory lock on a separate lock file: it is appended to the log in one
write(2) and fdatasync'ed before it is reported done (a caller with work to overlap,
a spawn waiting for its unit's start, syncs later). Once the log outgrows a quarter of
the snapshot, the next change writes a new snapshot that holds it (temp file, fsync,
rename, directory fsync) and starts the log over. So a change costs one small append,
not a rewrite of every record.

When it writes a new snapshot, a change moves the records whose end is recorded (and
that no Restart= brings back) into an archive file of their own, which the snapshot
names: so the snapshot and the log hold what may still run, and a spawn or a
`ps --running` never reads the history. A change sees the archived records only when it
asks for one that is not live, or for all of them (orch.archive.Changing); `load`
reads them unless asked not to. An archive is written whole, under a name of its own,
before the snapshot that names it, and is removed only once a snapshot that no longer
names it is on disk: a crash leaves the old pair or the new one.

Each snapshot has a generation, and the log's first line names the generation it
extends. A log older than its snapshot (a crash between writing the one and starting
the other) is already in the snapshot and is skipped. Readers take no lock: one that
finds the log newer than the snapshot it read (a new snapshot came between its two
reads), or the archive it names gone, reads again. A crash mid-append leaves at most an
unfinished last line, a change never reported done: readers skip it, and the next
writer drops it, writing the log anew under another name and renaming it over the old.

A file that does not parse, or carries a schema version this orch does not know,
stops every command with one line naming it; it is never replaced.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from orch import faults, files
from orch.archive import Changing, Live, archivable, merged
from orch.errors import StateError, suppress
from orch.locks import held, open_lock
from orch.stateformat import (
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    LineCache,
    Lines,
    Log,
    Sessions,
    Snapshot,
    changes,
    decode,
    encode,
    encode_archive,
    log_entries,
    log_header,
    read_snapshot,
    read_units,
    replay,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms at import: the exit hook runs this module
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["READABLE_VERSIONS", "SCHEMA_VERSION", "Lines", "Log", "Sessions", "StateStore",
           "decode", "encode", "log_header", "replay"]

STATE_FILE = "sessions.json"
LOG_FILE = "sessions.log"
LOCK_FILE = "sessions.lock"
ARCHIVE_PREFIX = "sessions-archive."  # + its number + .json
LOCK_TIMEOUT = 30.0
LOCK_NOTICE_S = 1.0  # a wait for the lock this long says whom it waits for, once
# The log is folded into a new snapshot once it is larger than this and than a quarter
# of the snapshot: readers then replay at most that, and writers rewrite the records
# once per so many changes.
LOG_MIN_BYTES = 64 * 1024
# Unlocked reads that may race a new snapshot before one is made under the lock.
READ_ATTEMPTS = 3


def _unreadable(err: ValueError) -> StateError:
    """A state file that does not read as one: never replaced."""
    return StateError(f"{err}; orch left it untouched", hint="move it aside to start afresh")


def archive_name(number: int) -> str:
    """The file name of archive NUMBER."""
    return f"{ARCHIVE_PREFIX}{number}.json"


class StateStore:
    """The records of one scope for one user, in DIRECTORY."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self.log_path = directory / LOG_FILE
        self.lock_path = directory / LOCK_FILE
        # The snapshot's bytes this store last read or wrote and what they hold; the
        # log's bytes read after it with the records they lead to (and the ids they
        # removed); and the archive last read or written, by number. A read that finds
        # the files as this process left them decodes nothing, one that finds the log
        # grown decodes only the new lines, and a write encodes only what changed.
        self._snapshot: tuple[bytes, Snapshot] | None = None
        self._replayed: tuple[bytes, Sessions, set[str]] | None = None
        self._archive: tuple[int, bytes, Sessions] | None = None
        self._lines = LineCache()
        self._archive_lines = LineCache()
        self._archive_number = 0  # the archive the snapshot last read names
        self._unsynced = False  # an append not yet fdatasync'ed
        self._prepared = False  # the directory was made private by this store

    def load(self, *, archived: bool = True) -> Sessions:
        """A consistent snapshot of every record (empty if there are none yet); without
        ARCHIVED, of those that are not archived: every session that may still run,
        and those that ended since the last snapshot."""
        for _attempt in range(READ_ATTEMPTS):
            found = self._read_all(archived)
            if found is not None:
                return found
        with self._locked():  # new snapshots kept coming between the reads
            found = self._read_all(archived, locked=True)
            assert found is not None
            return found

    def peek(self) -> Sessions | None:
        """The records as load() reads them, but never taking the lock nor making a file
        (for readers that must not write: completion); None if new snapshots kept
        coming between the reads."""
        for _attempt in range(READ_ATTEMPTS):
            found = self._read_all(archived=True)
            if found is not None:
                return found
        return None

    def keeps_archive(self) -> bool:
        """Whether the snapshot last read names an archive."""
        return self._archive_number != 0

    def archived_units(self) -> set[str] | None:
        """The units of the archived records, as the snapshot last read names them, read
        from the archive's first line only; None if a newer snapshot replaced it since."""
        if not self._archive_number:
            return set()
        path = self.directory / archive_name(self._archive_number)
        head = b""
        try:
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as file:
                while b"\n" not in head and (chunk := file.read(1 << 16)):
                    head += chunk
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._error(err, path) from None
        try:
            return set(read_units(head[:head.find(b"\n") + 1], str(path)))
        except ValueError as err:
            raise _unreadable(err) from None

    def _read_all(self, archived: bool, locked: bool = False) -> Sessions | None:
        """The records (without ARCHIVED, the live ones); None if a new snapshot came
        between the reads."""
        found = self._read(locked)
        if found is None:
            return None
        if not archived or not found.snapshot.archive:
            return dict(found.records)
        kept = self._read_archive(found.snapshot.archive, locked)
        if kept is None:
            return None
        return merged(kept, found.records, found.removed)

    def _read(self, locked: bool = False) -> Live | None:
        """The live records, the snapshot and the log as read; None if a new snapshot
        came between the two reads (only without the lock: under it, a log without a
        whole header is a crash's leftover, and holds no change)."""
        try:
            return self._read_both(locked)
        except ValueError as err:
            raise _unreadable(err) from None

    def _read_both(self, locked: bool) -> Live | None:
        raw = self._read_file(self.path)
        if raw is None:
            # No snapshot: nothing was ever written, or it was deleted, which discards
            # the log that extends it (and the archive it names) too: the next change
            # starts them anew.
            self._snapshot = self._replayed = None
            self._archive_number = 0
            return Live({}, set(), Snapshot({}, 0, 0, SCHEMA_VERSION), 0,
                        Log(None, str(self.log_path)))
        if self._snapshot is None or self._snapshot[0] != raw:
            snapshot = read_snapshot(raw, str(self.path))
            self._snapshot, self._replayed = (raw, snapshot), None
            self._lines.read(raw, snapshot)
        snapshot = self._snapshot[1]
        self._archive_number = snapshot.archive
        base, generation = snapshot.records, snapshot.generation
        log = Log(self._read_file(self.log_path), str(self.log_path))
        if log.extends is None and log.exists and not locked:
            return None  # caught between a new snapshot's log reset and its header
        if log.extends is None or log.extends < generation:
            return Live(base, set(), snapshot, len(raw), log)  # none yet, or in it
        if log.extends > generation:
            if not locked:
                return None
            if log.entries:  # snapshot writes finish before the log starts over
                raise StateError(f"{self.log_path} is newer than {self.path}; "
                                 "orch left them untouched")
            return Live(base, set(), snapshot, len(raw), log)
        seen = self._replayed
        if seen is not None and log.entries == seen[0]:
            # Nothing new: the records as replayed before (which no reader changes).
            log.replayed = len(seen[0])
            return Live(seen[1], seen[2], snapshot, len(raw), log)
        if seen is not None and log.entries.startswith(seen[0]):
            start, sessions, removed = len(seen[0]), dict(seen[1]), set(seen[2])
        else:
            start, sessions, removed = 0, dict(base), set()
        log.replayed = start + replay(sessions, log.entries[start:], str(self.log_path),
                                      removed)
        self._replayed = (log.entries[:log.replayed], sessions, removed)
        return Live(sessions, removed, snapshot, len(raw), log)

    def _read_archive(self, number: int, locked: bool) -> Sessions | None:
        """The records of archive NUMBER; None if it is gone and the lock is not held
        (a newer snapshot replaced it since it was named)."""
        path = self.directory / archive_name(number)
        raw = self._read_file(path)
        if raw is None:
            if not locked:
                return None
            raise StateError(f"{self.path} names {path}, which is missing; "
                             "orch left them untouched", hint="move them aside to start afresh")
        cached = self._archive
        if cached is not None and cached[0] == number and cached[1] == raw:
            return cached[2]
        try:
            found = read_snapshot(raw, str(path), archive=True)
            if found.generation != number:
                raise ValueError(f"{path} is not a valid orch state archive (its number)")
        except ValueError as err:
            raise _unreadable(err) from None
        self._archive = (number, raw, found.records)
        self._archive_lines.read(raw, found, archive=True)
        return found.records

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

        CHANGE mutates the mapping it is given (a Changing: a dict to every change, that
        reads the archive only when a look needs it) and returns a value handed back to
        the caller; nothing is written unless the records changed. With SYNC false the
        change is in the log, where every reader sees it, but is made durable only by
        sync() (or a later update): a caller that has work to overlap with the
        fdatasync calls sync() before it reports the change done.
        """
        with self._locked():
            live = self._read(locked=True)
            assert live is not None
            snapshot, log = live.snapshot, live.log

            def archived() -> Sessions:
                if not snapshot.archive:
                    return {}
                kept = self._read_archive(snapshot.archive, locked=True)
                assert kept is not None
                return {i: r for i, r in kept.items() if i not in live.removed}

            view = Changing(live.records, archived)
            value = change(view)  # type: ignore[arg-type]  # a mapping that acts as the dict
            before = live.records if view.fetched is None \
                else {**view.fetched, **live.records}
            changed = changes(before, view.records, sorted(view.touched))
            if changed:
                entries = log_entries(changed, self._lines.lines())
                grown = log.sound + len(entries)
                if not live.size or log.extends is None \
                        or snapshot.version != SCHEMA_VERSION \
                        or (grown > LOG_MIN_BYTES and grown > live.size // 4):
                    self._write_snapshot(view, live, snapshot.generation + 1)
                else:
                    # The live records now: the change's own, unless it read the archive in.
                    records = view.records if view.fetched is None else dict(live.records)
                    removed = set(live.removed)
                    for session_id, record in changed:
                        if record is None:
                            records.pop(session_id, None)
                            removed.add(session_id)
                        else:
                            records[session_id] = record
                            removed.discard(session_id)
                    self._append(log, snapshot.generation, entries, records, removed)
            if sync:
                self.sync()
            return value

    def _append(self, log: Log, generation: int, entries: bytes, sessions: Sessions,
                removed: set[str]) -> None:
        """Add ENTRIES (which lead to SESSIONS, having removed REMOVED) to LOG: after its
        sound lines, or after a new header if it extends an older snapshot."""
        kept = log.entries[:log.replayed]
        if log.extends != generation or log.size != log.sound:
            # A crash came between a snapshot and this log, or cut an append short (no
            # change): the log is written anew, and renamed over the old one rather than
            # cut in place, where a reader between two reads would join the old file's
            # start to the new one's end.
            kept = kept if log.extends == generation else b""
            self._write(self.log_path, log_header(generation) + kept + entries, sync_dir=True)
        else:
            try:
                self._write_all(os.open(self.log_path, os.O_WRONLY | os.O_APPEND
                                        | os.O_NOFOLLOW | os.O_CLOEXEC), entries)
            except OSError as err:
                raise self._error(err, self.log_path) from None
        self._replayed = (kept + entries, sessions, removed)  # read back, nothing to decode
        self._unsynced = True

    def _write_snapshot(self, view: Changing, read: Live, generation: int) -> None:
        """Write the records VIEW holds as the snapshot of GENERATION, the ended ones in
        an archive (a new one, if they are not those of the archive READ names),
        durably; then start the log over: the log's reset comes only once the snapshot
        that holds it is on disk, and the old archive goes only then."""
        old = read.snapshot
        number = old.archive
        if view.fetched is None and not read.removed and not view.deleted \
                and not any(archivable(r) for r in view.records.values()):
            # Nothing to move in or out: the archive stays as it is, unread. (A record
            # set again since it was archived is live, and the live one wins.)
            live = view.records
        else:
            every = view.everything()
            kept = {i: r for i, r in every.items() if archivable(r)}
            live = {i: r for i, r in every.items() if i not in kept}
            previous = self._read_archive(number, locked=True) if number else {}
            assert previous is not None
            if kept.keys() != previous.keys() \
                    or any(previous[i] is not r for i, r in kept.items()):
                number = generation if kept else 0
                if kept:
                    # Most of its records are the old archive's: their lines are reused.
                    lines = {**self._archive_lines.lines(), **self._lines.lines()}
                    archive = encode_archive(kept, lines, number)
                    self._archive_lines.keep(lines)
                    self._write(self.directory / archive_name(number), archive,
                                sync_dir=True)
                    self._archive = (number, archive, kept)
        data = encode(live, self._lines.lines(), generation, number)
        self._write(self.path, data)
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
        if number != old.archive:
            self._remove_archives(but=number)
        self._snapshot = (data, Snapshot(dict(live), generation, number, SCHEMA_VERSION))
        self._replayed = (b"", dict(live), set())
        self._archive_number = number
        self._unsynced = False

    def _remove_archives(self, but: int) -> None:
        """Remove every archive file but number BUT: the ones no snapshot on disk names
        (older ones, or one a crash left before its snapshot was written)."""
        keep = archive_name(but) if but else None
        try:
            for name in os.listdir(self.directory):
                if name.startswith(ARCHIVE_PREFIX) and name != keep:
                    with suppress(FileNotFoundError):
                        os.unlink(self.directory / name)
        except OSError as err:
            raise self._error(err, self.directory) from None

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        """Write DATA at FD in one write(2), and close FD."""
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        finally:
            os.close(fd)

    def sync(self) -> None:
        """Make the appends of this store durable (fdatasync the log), if they are not yet."""
        if not self._unsynced:
            return
        self._fdatasync()
        self._unsynced = False

    def _fdatasync(self) -> None:
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

    def prepare(self) -> None:
        """Make the state directory (private) if it is not there yet: what a follower of
        its files watches."""
        if not self._prepared:
            self._prepare_directory()

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(self.directory, 0o700)
        except OSError as err:
            raise self._error(err) from None
        self._prepared = True

    def _locked(self) -> files.OpenFor:
        return held(self.lock_path, LOCK_TIMEOUT, LOCK_NOTICE_S, self._open_lock)

    def _open_lock(self) -> int:
        if not self._prepared:
            self._prepare_directory()
        try:
            try:
                return open_lock(self.lock_path)
            except FileNotFoundError:  # the directory went away since: make it anew
                self._prepare_directory()
                return open_lock(self.lock_path)
        except OSError as err:
            raise self._error(err, self.lock_path) from None

    def _write(self, path: Path, data: bytes, *, sync_dir: bool = False) -> None:
        try:
            # The snapshot's directory fsync comes with the log's reset (_write_snapshot);
            # an archive's comes before the snapshot that names it is written.
            files.write_atomically(path, data, 0o600, sync_dir=sync_dir)
        except files.WriteFailed as failed:
            raise StateError(str(failed)) from None

    def _error(self, err: OSError, path: Path | None = None) -> StateError:
        return StateError(files.describe(err, path or self.path))
