"""Connections kept idle between uses, for a while only.

A library that spawns many sessions connects to the manager once and reuses the
connection. An idle direct connection still receives every signal the manager sends:
they pile up in its socket, then in the manager's own queue for it, and the next use
must read them all. So a connection idle for longer than its keep time is closed by a
reaper thread (one per process, started with the first idle connection).
"""

from __future__ import annotations

import _thread
import os
import time
from contextlib import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: it costs every command's start nothing then
    from orch.connection import Connection

# Where a connection idles: the manager's address, the process and the thread.
Key = tuple[bytes | None, int, int]


class IdlePool:
    """At most one idle connection per key, closed once idle KEEP_S seconds.

    Built on _thread's locks rather than threading's (which, with the weakref modules
    it loads, cost every command 2 ms at start): the reaper is a plain thread, ending
    with the process as a daemon thread does; a lock released by put() wakes it when
    it would otherwise wake too late.
    """

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # In a forked child the parent's connections are not ours to use or close, and
        # the lock may have been held by a thread that does not exist here.
        self._lock = _thread.allocate_lock()  # guards what follows
        self._idle: dict[Key, tuple[Connection, float]] = {}
        self._reaping = False
        self._until: float | None = None  # when the reaper wakes next (None: never)
        # Released (by put, under _lock) when the reaper has news; held otherwise.
        self._wake = _thread.allocate_lock()
        self._wake.acquire()

    def take(self, key: Key) -> Connection | None:
        """KEY's idle connection, now no longer idle; None if there is none."""
        with self._lock:
            found = self._idle.pop(key, None)
        return None if found is None else found[0]

    def holds(self, key: Key) -> bool:
        """Whether a connection idles under KEY."""
        with self._lock:
            return key in self._idle

    def put(self, key: Key, conn: Connection) -> bool:
        """Keep CONN idle under KEY; False (and nothing kept) if one idles there already."""
        with self._lock:
            if key in self._idle:
                return False
            due = time.monotonic() + self.keep_s
            self._idle[key] = (conn, due)
            if not self._reaping:
                self._reaping = True
                _thread.start_new_thread(self._reap, ())
            # A reaper that wakes in time for this one anyway is left asleep: waking it
            # for nothing would cost each spawn a switch to it and back.
            if (self._until is None or due < self._until) and self._wake.locked():
                self._wake.release()
            return True

    def _reap(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                expired = [key for key, (_, due) in self._idle.items() if due <= now]
                done = [self._idle.pop(key)[0] for key in expired]
                due = min((d for _, d in self._idle.values()), default=None)
                self._until = due
            for conn in done:
                with suppress(Exception):  # a connection nobody uses: nothing to report
                    conn.close()
            if not done:
                self._wake.acquire(timeout=-1 if due is None else max(due - now, 0.0))
