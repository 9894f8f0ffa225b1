"""Connections kept idle between uses, for a while only.

A library that spawns many sessions connects to the manager once and reuses the
connection. An idle direct connection still receives every signal the manager sends
(some 13 KB for each unit another client starts). So one thread per process (started
with the first idle connection) reads each idle connection as that traffic comes, as a
long-lived client's event loop would, rather than leaving it to the connection's next
use, which would read it all before its own answer; and it closes a connection once
idle for longer than its keep time.
"""

from __future__ import annotations

import _thread
import os
import time

from orch.errors import suppress

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: it costs every command's start nothing then
    import select

    from orch.connection import Connection

# Where a connection idles: the manager's address, the process and the thread.
Key = tuple[bytes | None, int, int]
# Messages read from an idle connection at a time: on a busy manager more keep coming,
# and a take() waits for the read to end. What is left wakes the reader again.
READ_AT_MOST = 256
REAP_RETRY_S = 0.1  # after the reaper's own failure (none is known): how soon it goes on


class IdlePool:
    """At most one idle connection per key, read as its traffic comes, closed once idle
    KEEP_S seconds.

    Built on _thread's locks rather than threading's (which, with the weakref modules
    it loads, cost every command 2 ms at start): the reaper is a plain thread, ending
    with the process as a daemon thread does. It waits in epoll for traffic on the idle
    connections' sockets and for news from put() (a byte on its pipe) when it would
    otherwise wake too late.
    """

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._poller: select.epoll | None = None
        self._pipe: tuple[int, int] | None = None
        self._traffic = 0
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # In a forked child the parent's connections are not ours to use or close, and
        # the lock may have been held by a thread that does not exist here.
        self._lock = _thread.allocate_lock()  # guards what follows
        self._idle: dict[Key, tuple[Connection, float, int]] = {}  # and its socket
        self._watched: dict[int, Key] = {}  # the idle sockets the reaper watches
        # Connections being read by the reaper: a take() waits for the lock's release.
        self._reading: dict[Key, _thread.LockType] = {}
        self._reaping = False
        self._until: float | None = None  # when the reaper wakes next (None: never)
        self._woken = False  # a byte waits on the pipe
        if self._poller is not None:  # the parent's, in this child
            self._poller.close()
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
        self._poller = self._pipe = None

    def take(self, key: Key) -> Connection | None:
        """KEY's idle connection, now no longer idle; None if there is none."""
        while True:
            with self._lock:
                found = self._idle.pop(key, None)
                if found is not None:
                    self._unwatch(found[2], key)
                    return found[0]
                reading = self._reading.get(key)
            if reading is None:
                return None
            with reading:  # released once the reaper has read it and put it back
                pass

    def holds(self, key: Key) -> bool:
        """Whether a connection idles under KEY."""
        with self._lock:
            return key in self._idle or key in self._reading

    def put(self, key: Key, conn: Connection) -> bool:
        """Keep CONN idle under KEY; False (and nothing kept) if one idles there already."""
        with self._lock:
            if key in self._idle or key in self._reading:
                return False
            due = time.monotonic() + self.keep_s
            fd = conn.fileno()
            self._idle[key] = (conn, due, fd)
            if not self._reaping:
                self._reaping = True
                import select  # only here: a command has its answer before it idles

                # Armed once: after telling of traffic, a socket says nothing more until
                # its connection has been read and is idle again.
                self._traffic = select.EPOLLIN | select.EPOLLONESHOT
                self._poller = select.epoll()
                self._pipe = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                self._poller.register(self._pipe[0], select.EPOLLIN)
                _thread.start_new_thread(self._reap, ())
            self._watch(key, fd)
            # A reaper that wakes in time for this one anyway is left asleep: waking it
            # for nothing would cost each spawn a switch to it and back.
            if (self._until is None or due < self._until) and not self._woken:
                self._woken = True
                assert self._pipe is not None
                os.write(self._pipe[1], b"\0")
            return True

    def _watch(self, key: Key, fd: int) -> None:
        """Have the reaper told of the next traffic on KEY's socket FD (under the lock).
        One that cannot be watched (closed meanwhile) is left to its keep time, or to its
        next use, which finds it closed."""
        if fd < 0 or self._poller is None:  # ssh's two pipes: read at its next use
            return
        try:
            try:
                if fd in self._watched:
                    self._poller.modify(fd, self._traffic)
                else:
                    self._poller.register(fd, self._traffic)
            except FileNotFoundError:  # that socket was closed, and its number reused
                self._poller.register(fd, self._traffic)
            except FileExistsError:
                self._poller.modify(fd, self._traffic)
        except OSError:
            self._watched.pop(fd, None)
            return
        self._watched[fd] = key

    def _unwatch(self, fd: int, key: Key) -> None:
        """Stop watching KEY's socket FD (under the lock): its connection is in use, or
        goes. (Closed meanwhile, FD may be another key's socket now: that one stays.)"""
        if self._watched.get(fd) != key:
            return
        del self._watched[fd]
        if self._poller is not None:
            with suppress(OSError):  # closed already: epoll forgot it itself
                self._poller.unregister(fd)

    def _reap(self) -> None:
        while True:  # the thread serves the process's whole life: nothing may end it
            try:
                self._reap_until_failure()
            except Exception:
                time.sleep(REAP_RETRY_S)  # a failure of its own: again, not in a spin

    def _reap_until_failure(self) -> None:
        poller, (wake, _) = self._poller, self._pipe or (-1, -1)
        assert poller is not None
        while True:
            with self._lock:
                now = time.monotonic()
                expired = [key for key, (_, due, _) in self._idle.items() if due <= now]
                done = [self._idle.pop(key) for key in expired]
                for key, (_, _, fd) in zip(expired, done, strict=True):
                    self._unwatch(fd, key)
                due = min((d for _, d, _ in self._idle.values()), default=None)
                self._until = due
            for conn, _, _ in done:
                with suppress(Exception):  # a connection nobody uses: nothing to report
                    conn.close()
            if done:
                continue
            for fd, _events in poller.poll(-1 if due is None else max(due - now, 0.0)):
                if fd == wake:
                    with self._lock:
                        with suppress(BlockingIOError):
                            os.read(wake, 4096)
                        self._woken = False
                else:
                    self._read(fd)

    def _read(self, fd: int) -> None:
        """Read what came on the idle connection at FD, off its next use's path; close
        it if the manager has closed its end."""
        with self._lock:
            key = self._watched.get(fd)
            entry = None if key is None else self._idle.pop(key, None)
            if key is None or entry is None:  # taken meanwhile
                return
            reading = self._reading[key] = _thread.allocate_lock()
            reading.acquire()
        conn = entry[0]
        alive = False
        with suppress(Exception):  # a bounded read: a take() waits for it to end
            # Closed by it (its socket gone, the number perhaps another's now): dead.
            alive = conn.drained(READ_AT_MOST) and conn.fileno() == fd
        with self._lock:
            del self._reading[key]
            reading.release()
            if alive:
                self._idle[key] = entry
                self._watch(key, fd)
            else:
                self._unwatch(fd, key)
        if not alive:
            with suppress(Exception):
                conn.close()
