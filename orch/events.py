"""Session events: one JSON line per state transition of a session, in the state
directory's events.jsonl (0600), appended where orch makes the transition: spawn, its
queue, the start, the exit hook, the timers that resume a waiting agent. Read, filtered
and followed here (`orch events`); following blocks on inotify, it does not poll.

One line is one write(2) to a file opened O_APPEND, so concurrent writers never
interleave within a line. Light at import: the exit hook appends through it.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path

from orch.frozen import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

EVENTS_FILE = "events.jsonl"
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


def append(state_dir: Path, event: Event) -> None:
    """Add EVENT to STATE_DIR's events (one write; the file made 0600 if new)."""
    line = (json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False)
            + "\n").encode()
    fd = os.open(state_dir / EVENTS_FILE,
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _parse(line: bytes) -> Event | None:
    try:
        return Event.from_json(json.loads(line))
    except ValueError:
        return None


def read(state_dir: Path) -> list[Event]:
    """Every event in STATE_DIR, oldest first (none if there is no file yet)."""
    try:
        data = (state_dir / EVENTS_FILE).read_bytes()
    except FileNotFoundError:
        return []
    return [e for e in map(_parse, data.splitlines()) if e is not None]


def follow(state_dir: Path, start: int, emit: Callable[[Event], None], *,
           until: Callable[[], bool] | None = None, every: float | None = None,
           offsets: Callable[[int], None] | None = None) -> None:
    """Call EMIT for each event appended to STATE_DIR's file after byte START, as it
    comes, until interrupted, or until UNTIL() holds (asked after each wake-up, and
    every EVERY seconds). Woken by inotify on the directory (the file may not exist
    yet), never by a timer but EVERY's. OFFSETS, if given, hears where each event's
    line ends (before EMIT hears of it): what a follower resumes after."""
    from orch.inotify import Watch

    path = state_dir / EVENTS_FILE
    offset = start
    rest = b""
    with Watch(state_dir) as watch:
        while until is None or not until():
            for chunk in _read_from(path, offset):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                end = offset + len(chunk) - len(rest)
                at = end - sum(len(line) + 1 for line in lines)
                for line in lines:
                    at += len(line) + 1
                    event = _parse(line)
                    if event is not None:
                        if offsets is not None:
                            offsets(at)
                        emit(event)
                offset += len(chunk)
            watch.wait(every)


def size(state_dir: Path) -> int:
    """Where the file ends now (0 if there is none): what follow() starts after."""
    try:
        return (state_dir / EVENTS_FILE).stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> Iterator[bytes]:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            while chunk := file.read(_CHUNK):
                yield chunk
    except FileNotFoundError:
        return
