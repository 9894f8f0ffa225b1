"""Session events: one JSON line per state transition of a session, in the state
directory's events.jsonl (0600), appended where orch makes the transition: spawn, its
queue, the start, the exit hook, the timers that resume a waiting agent. Read, filtered
and followed here (`orch events`); following blocks on inotify, it does not poll.

One line is one write(2) to a file opened O_APPEND, so concurrent writers never
interleave within a line. Once the file passes ROTATE_AT bytes it becomes
events.1.jsonl (replacing the one before) and a new one starts: the log keeps the last
ROTATE_AT to twice that. Writers append under a shared flock of the file and the
rotation takes it exclusively, so a line goes to the file that is current, and a
follower reading the old one reads it to its end before it moves on. Where a follower
is is a Position: the file (named by a checksum of its first line, which no other file
has: an inode number is reused) and the offset in it. Light at import: the exit hook
appends through it.
"""

from __future__ import annotations

import fcntl
import os
from enum import StrEnum
from pathlib import Path

from orch import files, jsontext
from orch.frozen import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

EVENTS_FILE = "events.jsonl"
ROTATED_FILE = "events.1.jsonl"  # the file before the current one
ROTATE_AT = 8 << 20  # bytes: some 40,000 events
_CHUNK = 65536


class Kind(StrEnum):
    """What happened to a session."""

    SPAWNED = "spawned"
    QUEUED = "queued"  # waits in its queue
    STARTED = "started"  # its unit runs (a new invocation)
    IDLE = "idle"  # a conversation waits for its next message
    LIMITED = "limited"  # a usage limit holds it until its reset
    RETRYING = "retrying"  # a transient API failure: it runs again after a backoff
    RESUMED = "resumed"  # run again after a limit, or by hand
    RETRIED = "retried"  # run again after a transient failure
    ENDED = "ended"  # for good: exited, failed, stopped, killed (or cancelled, queued)


@dataclass(frozen=True)
class Event:
    """One transition, as `orch events --json` prints it (one object per line)."""

    time: str
    session_id: str
    name: str
    event: str
    status: str
    exit_code: int | None = None
    result: str | None = None
    detail: str | None = None  # why, in words: "usage limit (five_hour)", "queue q #2"

    def to_json(self) -> dict[str, Any]:
        """Every field, in order."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: object) -> Event | None:
        """An event from a line's JSON; None for anything else (a line cut short)."""
        if not isinstance(data, dict):
            return None
        texts = [data.get(k) for k in ("time", "session_id", "name", "event", "status")]
        code, result, detail = data.get("exit_code"), data.get("result"), data.get("detail")
        if not all(isinstance(t, str) for t in texts) \
                or not (code is None or type(code) is int) \
                or not all(v is None or isinstance(v, str) for v in (result, detail)):
            return None
        time, session_id, name, event, status = (str(t) for t in texts)
        return cls(time, session_id, name, event, status, code, result, detail)


@dataclass(frozen=True)
class Position:
    """A place in the log: OFFSET bytes into the file FILE names (see _identity; 0: a
    log with no event yet, so its start)."""

    file: int
    offset: int

    def __str__(self) -> str:
        return f"{self.file}-{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position | None:
        """A position as str() gave it; None for anything else."""
        file, _, offset = text.partition("-")
        if not (file.isdigit() and offset.isdigit()):
            return None
        return cls(int(file), int(offset))


def _identity(head: bytes) -> int:
    """What names the file whose first bytes are HEAD: its first line's CRC-32, or 0
    while it has no whole line."""
    import zlib

    line, newline, _ = head.partition(b"\n")
    return zlib.crc32(line) | 1 << 32 if newline else 0


def _identity_of(fd: int) -> int:
    return _identity(os.pread(fd, _CHUNK, 0))


def _same_file(fd: int, path: Path) -> bool:
    """Whether PATH still names the file open as FD."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


# An event's line: compact, its text as it is.
_LINE = jsontext.encoder(ascii=False, compact=True)


def append(state_dir: Path, event: Event) -> None:
    """Add EVENT to STATE_DIR's events (one write; the file made 0600 if new), and
    rotate the file if that took it to ROTATE_AT."""
    line = (_LINE(event.to_json()) + "\n").encode()
    path = state_dir / EVENTS_FILE
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                     | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if not _same_file(fd, path):
                continue  # rotated since it was opened: to the new one
            os.write(fd, line)
            full = os.fstat(fd).st_size >= ROTATE_AT
        finally:
            os.close(fd)  # and its lock
        break
    if full:
        _rotate(state_dir)


def _rotate(state_dir: Path) -> None:
    """Make a full events file the rotated one, once no writer is in it."""
    path = state_dir / EVENTS_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, path) and os.fstat(fd).st_size >= ROTATE_AT:  # not done already
            files.rotate(path, state_dir / ROTATED_FILE)
    finally:
        os.close(fd)


def _parse(line: bytes) -> Event | None:
    try:
        return Event.from_json(jsontext.loads(line))
    except ValueError:
        return None


def read(state_dir: Path) -> list[Event]:
    """Every event in STATE_DIR, oldest first (none if there is no file yet)."""
    return read_to_end(state_dir)[0]


def read_to_end(state_dir: Path) -> tuple[list[Event], Position]:
    """Every event in STATE_DIR, oldest first, and where what was read ends: a
    follower started there tells each later event once, and misses none."""
    while True:
        found = []
        for name in (ROTATED_FILE, EVENTS_FILE):
            try:
                with (state_dir / name).open("rb") as file:
                    found.append((os.fstat(file.fileno()).st_ino, file.read()))
            except FileNotFoundError:
                found.append((0, b""))
        (rotated, old), (_, new) = found
        if rotated == _inode(state_dir / ROTATED_FILE):  # no rotation between the reads
            break
    whole = new[:new.rfind(b"\n") + 1]  # a line still being written is the follower's
    events = [e for e in map(_parse, (old + whole).splitlines()) if e is not None]
    return events, _last([Position(_identity(whole), len(whole)),
                          Position(_identity(old), len(old))])


def _last(ends: list[Position]) -> Position:
    """Where a log ends, given where its current file and its rotated one end: in the
    current file, or, while it has no event, at the end of the rotated one (the start
    of the next)."""
    return next((end for end in ends if end.file), Position(0, 0))


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return 0


def end(state_dir: Path) -> Position:
    """Where the log ends now: what follow() starts after to tell only what is new
    (read_to_end's position, from the files' first and last lines alone)."""
    ends = []
    for name in (EVENTS_FILE, ROTATED_FILE):
        try:
            fd = os.open(state_dir / name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        try:
            size = os.fstat(fd).st_size
            tail = os.pread(fd, _CHUNK, max(0, size - _CHUNK))
            ends.append(Position(_identity_of(fd), size - len(tail) + tail.rfind(b"\n") + 1))
        finally:
            os.close(fd)
    # A rotation between the two opens leaves the new file empty: the old one's end is
    # the next one's start either way.
    return _last(ends)


class _Tail:
    """The log read on from a Position, across rotations."""

    def __init__(self, state_dir: Path, start: Position) -> None:
        self.path, self.rotated = state_dir / EVENTS_FILE, state_dir / ROTATED_FILE
        self.fd: int | None = None
        self.identity = 0  # of the open file, once it has a line
        self.done: int | None = None  # of the last file read to its end, once rotated
        self.offset = 0
        self.rest = b""
        for path in (self.path, self.rotated):
            if start.file and self._open(path, start.file):
                assert self.fd is not None
                # Past its end no event ever was: what comes next, then.
                self.offset = min(start.offset, os.fstat(self.fd).st_size)
                return
        # A log that had no event then, or a file rotated away since (twice): from the
        # start of the oldest file kept, if any yet.
        self._open_oldest(None)

    def _open(self, path: Path, identity: int | None) -> bool:
        """Read PATH from its start (if it is the file IDENTITY names, where given)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        found = _identity_of(fd)
        if identity is not None and found != identity:
            os.close(fd)
            return False
        self.fd, self.identity, self.offset, self.rest = fd, found, 0, b""
        return True

    def _open_oldest(self, done: int | None) -> bool:
        """Read the oldest file kept from its start, but for DONE (the identity of one
        read to its end): the rotated one, else the current one. False if none is yet."""
        while True:
            if self._open(self.rotated, None):
                if self.identity != done:
                    return True
                self.close()
            if not self._open(self.path, None):
                return False
            assert self.fd is not None
            # Rotated between the two looks: that file came first; read it, then this.
            try:
                rotated = os.open(self.rotated, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except FileNotFoundError:
                return True
            try:
                if _same_file(self.fd, self.rotated) or _identity_of(rotated) == done:
                    return True
            finally:
                os.close(rotated)
            self.close()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def events(self) -> Iterator[tuple[Position, Event]]:
        """Each event written since the last call, and where its line ends."""
        while True:
            if self.fd is None and not self._open_oldest(self.done):
                return
            assert self.fd is not None
            yield from self._read_on()
            if _same_file(self.fd, self.path):
                return  # still the current file
            if not self.path.exists() and _same_file(self.fd, self.rotated):
                return  # rotated, and no file after it yet
            # Rotated: once the rotation is done (its lock), no writer is left in the
            # old file; what they wrote is read, then the next file from its start: the
            # rotated one if that is newer (rotated since as well), else the current.
            fcntl.flock(self.fd, fcntl.LOCK_SH)
            yield from self._read_on()
            self.done = self.identity
            self.close()
            self._open_oldest(self.done)

    def _read_on(self) -> Iterator[tuple[Position, Event]]:
        assert self.fd is not None
        while chunk := os.pread(self.fd, _CHUNK, self.offset):
            if not self.identity:
                self.identity = _identity_of(self.fd)
            lines = (self.rest + chunk).split(b"\n")
            self.rest = lines.pop()
            at = self.offset + len(chunk) - len(self.rest) - sum(len(x) + 1 for x in lines)
            self.offset += len(chunk)
            for line in lines:
                at += len(line) + 1
                event = _parse(line)
                if event is not None:
                    yield Position(self.identity, at), event


def follow(state_dir: Path, start: Position, emit: Callable[[Event], None], *,
           until: Callable[[], bool] | None = None, every: float | None = None,
           offsets: Callable[[Position], None] | None = None) -> None:
    """Call EMIT for each event appended to STATE_DIR's log after START, as it comes,
    until interrupted, or until UNTIL() holds (asked after each wake-up, and every
    EVERY seconds). Woken by inotify on the directory (the file may not exist yet),
    never by a timer but EVERY's. OFFSETS, if given, hears where each event's line
    ends (before EMIT hears of it): what a follower resumes after."""
    from orch.inotify import Watch

    tail = _Tail(state_dir, start)
    try:
        with Watch(state_dir) as watch:
            while until is None or not until():
                for position, event in tail.events():
                    if offsets is not None:
                        offsets(position)
                    emit(event)
                watch.wait(every)
    finally:
        tail.close()
