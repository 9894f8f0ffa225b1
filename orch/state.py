"""The state file: one JSON file of session records per scope and user.

Every change is a read-modify-write under an advisory lock on a separate lock file
(the state file itself is replaced by rename, so it cannot carry the lock). Writes go
to a temp file in the same directory, are fsynced, renamed over the old file, and the
directory is fsynced: a crash leaves the old file or the new one, never a torn one.
Readers take no lock: a rename is atomic, so they see one whole version.

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

from orch.errors import StateError
from orch.session import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms at import: the exit hook runs this module
    from typing import TypeVar

    T = TypeVar("T")

SCHEMA_VERSION = 3
# Versions this orch reads; an older record is a newer one with the new fields at their
# defaults. v2 added persistent sessions (persistent, restarts, program, path,
# requested_at, history); v3 agents (options, env_files, secret_env, provider, agent,
# provider_session_id, agent_error, usage, cost_usd, worktree, worktree_repo, after,
# blocked).
READABLE_VERSIONS = (1, 2, 3)
STATE_FILE = "sessions.json"
LOCK_FILE = "sessions.lock"
LOCK_TIMEOUT = 30.0

Sessions = dict[str, Record]
# Each record's line in the state file, by session id, with the record it encodes.
Lines = dict[str, tuple[Record, str]]


def encode(sessions: Sessions, lines: Lines | None = None) -> bytes:
    """The state file's bytes for SESSIONS: records in creation order, one per line.

    Each line is json's C encoder at work (`indent` would switch to its pure-Python
    one, eight times slower), and fields at their defaults are left out. LINES, if
    given, supplies the lines of records encoded before (the very same objects: records
    are immutable) and is updated to those of SESSIONS.
    """
    records = sorted(sessions.values(), key=lambda r: (r.created_at, r.id))
    known = lines or {}
    texts: list[str] = []
    for record in records:
        cached = known.get(record.id)
        if cached is not None and cached[0] is record:
            texts.append(cached[1])
        else:
            texts.append(json.dumps(record.to_sparse_json(), ensure_ascii=False))
    if lines is not None:
        lines.clear()
        lines.update((r.id, (r, t)) for r, t in zip(records, texts, strict=True))
    return _layout(texts)


def _layout(texts: list[str]) -> bytes:
    body = ",\n".join(texts)
    body = f"\n{body}\n" if texts else ""
    return f'{{"version": {SCHEMA_VERSION}, "sessions": [{body}]}}\n'.encode()


def decode(raw: bytes, where: str, lines: Lines | None = None) -> Sessions:
    """Records from a state file's bytes; ValueError with a one-line reason otherwise.
    LINES, if given, receives each record's line when the file is laid out as encode()
    lays it out in this schema version."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where} is not a valid orch state file ({err})") from None
    if not isinstance(doc, dict) or "version" not in doc:
        raise ValueError(f"{where} is not an orch state file (no schema version)")
    if doc["version"] not in READABLE_VERSIONS or isinstance(doc["version"], bool):
        raise ValueError(f"{where} has schema version {doc['version']!r}; this orch reads "
                         f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    extra = sorted(set(doc) - {"version", "sessions"})
    if extra or not isinstance(doc.get("sessions"), list):
        raise ValueError(f"{where} is not a valid orch state file (unexpected layout)")
    sessions: Sessions = {}
    for item in doc["sessions"]:
        record = Record.from_json(item, where)
        if record.id in sessions:
            raise ValueError(f"{where} holds session {record.id} twice")
        sessions[record.id] = record
    if lines is not None:
        lines.clear()
        if doc["version"] == SCHEMA_VERSION and sessions:
            texts = [t.removesuffix(",") for t in raw.decode("utf-8").split("\n")[1:-2]]
            # Only a file laid out exactly as encode() lays it out: one record a line.
            if len(texts) == len(sessions) and all(t.startswith("{") for t in texts) \
                    and _layout(texts) == raw:
                lines.update((r.id, (r, t))
                             for r, t in zip(sessions.values(), texts, strict=True))
    return sessions


class StateStore:
    """The records of one scope for one user, in DIRECTORY."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self.lock_path = directory / LOCK_FILE
        # The bytes this store last read or wrote and their records, and those records'
        # lines: an update that finds the file as this process left it decodes nothing,
        # and encodes only the records it changed.
        self._seen: tuple[bytes, Sessions] | None = None
        self._lines: Lines = {}
        self._unsynced = False  # a rename whose directory is not fsynced yet

    def load(self) -> Sessions:
        """A consistent snapshot of every record (empty if the file does not exist yet)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise self._error(err) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StateError(f"{self.path} is not a regular file; orch left it untouched")
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read()
        except IsADirectoryError:
            raise StateError(f"{self.path} is a directory, not a state file; "
                             "orch left it untouched") from None
        finally:
            os.close(fd)
        if self._seen is not None and self._seen[0] == raw:
            return dict(self._seen[1])
        try:
            sessions = decode(raw, str(self.path), self._lines)
        except ValueError as err:
            raise StateError(f"{err}; orch left it untouched",
                             hint="move it aside to start afresh") from None
        self._seen = (raw, dict(sessions))
        return sessions

    def update(self, change: Callable[[Sessions], T], *, sync: bool = True) -> T:
        """Apply CHANGE to the records under the lock and write the result durably.

        CHANGE mutates the dict it is given and returns a value handed back to the
        caller; the file is rewritten only if the records changed. With SYNC false the
        new file is complete on disk and in place, but the rename is made durable only
        by sync() (or the next update): a caller that has work to overlap with the
        directory's fsync calls sync() before it reports the change done.
        """
        with self._locked():
            sessions = self.load()
            before = dict(sessions)
            value = change(sessions)
            if sessions != before:
                data = encode(sessions, self._lines)
                self._write(data)
                self._seen = (data, dict(sessions))
            if sync:
                self.sync()
            return value

    def sync(self) -> None:
        """Make the last rename durable (fsync the directory), if it is not yet."""
        if not self._unsynced:
            return
        dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._unsynced = False

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.directory.stat()
            if info.st_uid == os.geteuid() and info.st_mode & 0o077:
                os.chmod(self.directory, 0o700)
        except OSError as err:
            raise self._error(err) from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._prepare_directory()
        try:
            fd = os.open(self.lock_path,
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
        tmp = self.directory / f".{STATE_FILE}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        except OSError as err:
            raise self._error(err, tmp) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise self._error(err) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._unsynced = True

    def _error(self, err: OSError, path: Path | None = None) -> StateError:
        where = path or self.path
        if err.errno in (errno.EACCES, errno.EPERM):
            return StateError(f"{where}: permission denied")
        if err.errno == errno.ELOOP:
            return StateError(f"{where} is a symbolic link; orch does not follow it")
        return StateError(f"{where}: {err.strerror or err}")
