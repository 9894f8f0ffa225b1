"""One open D-Bus connection to a manager, and what the manager's signals on it said:
the jobs it waits for, the units being started, the units watched for changes.

A connection outlives the Manager that opened it (orch.systemd keeps it idle for the
next), so the signal callbacks write here. Nothing here imports pystemd: the bus object
is pystemd's, handed in by orch.systemd.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Sequence

from orch.alarm import bounded
from orch.dbus import (
    DESTINATION,
    MANAGER_IFACE,
    MANAGER_PATH,
    PROPERTIES_IFACE,
    SERVICE_IFACE,
    UNIT_IFACE,
)
from orch.errors import ManagerTimeout
from orch.units import object_path

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~5 ms of every command's start
    from typing import Any

# A connection kept between uses is read through (its signals dispatched) when handed
# out again after this many uses with no dispatch (a spawn's wait for its job is one).
DRAIN_EVERY = 16

# The longest a wait through sd-bus itself holds the GIL (see Connection._wait).
GIL_SLICE = 0.05

# What wait_job() gives for a start whose program ran and exited before its job ended
# (see Connection._exited).
PROGRAM_EXITED = "program-exited"
# The exit statuses systemd gives a unit's process that it could not make run the
# program as asked (a directory, an exec, a namespace: systemd.exec(5)).
NOT_RUN = range(200, 244)


def as_str(value: Any) -> str:
    """A D-Bus string (bytes from pystemd) as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Connection:
    """One open bus to a manager, and what its signal callbacks saw. The callbacks write
    here, not to a Manager, so a connection can serve one Manager after another."""

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        # The jobs of this connection's calls not yet waited for: their results once
        # removed, else None. Peer to peer, every client hears every job's JobRemoved:
        # the others' are not even decoded.
        self.jobs: dict[bytes, str | None] = {}
        self.job_match = False
        # Set by watch_units(): a subscribed connection hears every unit's changes, so it
        # is closed after its use rather than kept for the next.
        self.subscribed = False
        self.broken = False  # a call on it failed in a way that may leave it unusable
        self.changed = False
        # The units watch_units() watches: only these should wake wait_for().
        self.watched: frozenset[str] = frozenset()
        # Peer to peer (direct), the manager sends this client every unit's
        # PropertiesChanged, and a unit's pending ones before the JobRemoved of its job.
        # By object path, those (undecoded) about each unit a start of ours waits for.
        self.direct = False
        self.starting: dict[bytes, list[Any]] = {}
        self.start_matches: set[bytes] = set()  # paths with a match installed
        # By job, the path of the unit it starts, if its signals may end its wait.
        self.start_jobs: dict[bytes, bytes] = {}
        # pystemd hands sd-bus a bare pointer to each callback: keep them alive here.
        self.callbacks: list[Callable[..., None]] = []
        self.handled = 0  # signals our callbacks ran for (see _process)
        self.closed = False
        # Uses since the last dispatch: the signals that came meanwhile wait in the
        # socket, or in sd-bus's queue when a call read past them, until one reads them.
        self.undispatched = 0

    def close(self) -> None:
        """Close the bus (once: pystemd's close also drops its reference)."""
        if not self.closed:
            self.closed = True
            self.bus.close()

    def fileno(self) -> int:
        """The socket's file descriptor; -1 if there is none to watch (closed, or a
        remote's two ssh pipes)."""
        if self.closed:
            return -1
        try:
            fd = self.bus.get_fd()
        except Exception:
            return -1
        return fd if fd >= 0 else -1

    def alive(self) -> bool:
        """Whether the connection still works (the manager may have re-executed or
        dropped it while it sat idle).

        The socket says so at once: the manager's end closed (a daemon-reexec drops
        every direct client) shows as a hang-up on it even behind what the manager sent
        before. What queued meanwhile stays there for the next dispatch, which reads it
        while the manager works on the next call's job, not before the call; after
        DRAIN_EVERY uses with no dispatch (calls only: queries) it is read here, so that
        what waits stays bounded."""
        if self.closed:
            return False
        self.undispatched += 1
        if self.undispatched > DRAIN_EVERY:  # calls only (queries): bound what waits
            return self.drained()
        try:
            fd = self.bus.get_fd()
        except Exception:
            return False
        if fd == -errno.EPERM:  # one fd in and another out (a remote's ssh pipes)
            return self.drained()
        if fd < 0:  # closed
            return False
        import select  # only here: a command's one call never reuses a connection

        poller = select.poll()
        poller.register(fd, select.POLLRDHUP)
        try:
            events = poller.poll(0)
        except OSError:
            return False
        ended = select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL
        return not any(mask & ended for _fd, mask in events)

    def drained(self, most: int | None = None) -> bool:
        """Whether the connection still works, found by reading and dispatching what
        queued on it (MOST messages at most, if given): a connection the manager closed
        says so only after what it sent before (the process() that meets the end returns
        nothing, as sd-bus enters its closing state; the next dispatches the closing,
        with a message as empty as an unmatched signal's, and closes the socket). So
        three quiet ones in a row, not one, end the reading, and then the bus tells
        whether it is still connected."""
        try:
            quiet = read = 0
            while quiet < 3 and (most is None or read < most):
                read += 1
                handled = self.handled  # a message a callback took comes back as none too
                empty = self.bus.process().is_empty() and self.handled == handled
                quiet = quiet + 1 if empty else 0
            fd: int = self.bus.get_fd()
        except Exception:
            return False
        self.undispatched = 0
        return fd >= 0 or fd == -errno.EPERM  # closed: -ENOTCONN (EPERM: two ssh pipes)

    # -- signals and jobs ---------------------------------------------------------

    def match(self, path: bytes, interface: bytes, member: bytes,
              callback: Callable[..., None]) -> None:
        """Run CALLBACK for the manager's signal MEMBER of INTERFACE at PATH."""
        def counted(msg: Any, error: Any = None, userdata: Any = None) -> None:
            self.handled += 1
            callback(msg, error, userdata)

        self.callbacks.append(counted)
        self.bus.match_signal(DESTINATION, path, interface, member, counted)

    def watch_jobs(self) -> None:
        """Keep the result of each job queued() as its JobRemoved tells it (once)."""
        if self.job_match:
            return

        def on_job_removed(msg: Any, error: Any = None, userdata: Any = None) -> None:
            if not self.jobs and not self.watched:
                return  # none of ours can be in it
            msg.process_reply(False)
            _id, job, unit, result = msg.body
            if bytes(job) in self.jobs:
                self.jobs[bytes(job)] = as_str(result)
            if as_str(unit) in self.watched:
                self.changed = True

        self.match(MANAGER_PATH, MANAGER_IFACE, b"JobRemoved", on_job_removed)
        self.job_match = True

    def forget_use(self) -> None:
        """Forget what one use asked of the manager, before the connection idles for the
        next: each job and start was waited for in it, or given up with it (a spawn that
        failed between its submit and its wait)."""
        self.jobs.clear()
        self.starting.clear()
        self.start_jobs.clear()
        self.watched, self.changed = frozenset(), False

    def watch_start(self, unit: str, timeout: float) -> None:
        """Collect what the manager's signals say of UNIT from now on (see started()):
        those it sent before, of an earlier run of a unit of that name (a session's
        next invocation), are read first, and not kept."""
        path = object_path(unit)
        if path in self.start_matches:
            self._process(timeout)
        self.starting[path] = []
        if path in self.start_matches:
            return

        def on_change(msg: Any, error: Any = None, userdata: Any = None) -> None:
            messages = self.starting.get(path)
            if messages is not None:  # else no start of this unit is waited for now
                messages.append(msg)

        self.match(path, PROPERTIES_IFACE, b"PropertiesChanged", on_change)
        self.start_matches.add(path)

    def started(self, unit: str) -> dict[bytes, Any] | None:
        """UNIT's properties as the signals watch_start() collected said them when
        wait_job() returned; None if they did not say all a UnitView needs.

        Peer to peer, the manager flushes the unit's pending PropertiesChanged (of its
        Service interface, then its Unit interface) before it sends a job's JobRemoved,
        each with every property the view needs. Through a bus, which sends them only to
        subscribers, none come.
        """
        latest: dict[bytes, dict[bytes, Any]] = {}
        for msg in reversed(self.starting.pop(object_path(unit), None) or ()):
            interface, changed = _decoded(msg)  # what costs: the newest two suffice
            latest.setdefault(bytes(interface), changed)
            if UNIT_IFACE in latest and SERVICE_IFACE in latest:
                break
        unit_props, service_props = latest.get(UNIT_IFACE), latest.get(SERVICE_IFACE)
        if not unit_props or not service_props or not unit_props.get(b"InvocationID"):
            return None
        props = {**service_props, **unit_props, b"LoadState": b"loaded"}
        props.pop(b"Job", None)  # the start job has ended; unit_view reads JobId
        return props

    def watch_units(self, units: Sequence[str]) -> None:
        """Note every change of UNITS, and their removal, in `changed` (see wait_for())."""
        self.subscribed = True  # these matches stay with the connection: not kept idle

        def on_change(msg: Any, error: Any = None, userdata: Any = None) -> None:
            self.changed = True

        def on_removed(msg: Any, error: Any = None, userdata: Any = None) -> None:
            msg.process_reply(False)
            if as_str(msg.body[0]) in self.watched:
                self.changed = True

        self.watched = frozenset(units)
        for unit in units:
            self.match(object_path(unit), PROPERTIES_IFACE, b"PropertiesChanged", on_change)
        self.match(MANAGER_PATH, MANAGER_IFACE, b"UnitRemoved", on_removed)

    def dispatch(self, seconds: float, timeout: float) -> None:
        """Run the callbacks for what came on the connection; if nothing had, wait up to
        SECONDS for bus traffic and run those (each bounded by TIMEOUT)."""
        try:
            if not self._process(timeout):
                self._wait(seconds)
                self._process(timeout)
            self.undispatched = 0
        except BaseException:
            self.broken = True
            raise

    def _process(self, timeout: float) -> bool:
        """Dispatch every message sd-bus has queued or can read now; whether there was
        any. A message our callback took comes back as no message, as does none at all:
        the count of callbacks tells them apart, so a call's queue is read to its end."""
        some = False
        with bounded(timeout, "while dispatching signals"):
            while True:
                handled = self.handled
                if self.bus.process().is_empty() and self.handled == handled:
                    return some
                some = True

    def _wait(self, seconds: float) -> None:
        """Wait up to SECONDS for the manager to send something. poll() lets the
        process's other threads run meanwhile (a follower's output, a library user's
        threads): sd_bus_wait, through pystemd, would hold the GIL all along."""
        import select

        fd = self.bus.get_fd()
        if fd < 0:  # ssh's two pipes: sd-bus waits on them itself, so a slice at a time
            self.bus.wait(max(1, int(min(seconds, GIL_SLICE) * 1_000_000)))
            return
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # a hang-up ends it too: process() reports it
        poller.poll(max(1, int(seconds * 1000) + 1))

    def queued(self, job: Any, unit: str | None = None) -> bytes:
        """JOB (a call's answer) as awaited: its JobRemoved is kept for wait_job(). Marked
        before anything dispatches signals, which only waiting does. UNIT: the unit it
        starts, whose signals (if watch_start() collects them) may end the wait first
        (see _exited); not one the manager runs again when its program exits (Restart=):
        its start job goes on through those exits."""
        path = bytes(job)
        self.jobs[path] = None
        if unit is not None and object_path(unit) in self.starting:
            self.start_jobs[path] = object_path(unit)
        return path

    def wait_job(self, job: bytes, what: str, timeout: float) -> str:
        """Wait up to TIMEOUT for JOB (from queued()) to finish; its result ('done',
        'failed', ...), or PROGRAM_EXITED if the unit it starts says first that its
        program ran and has exited (see _exited)."""
        deadline = time.monotonic() + timeout
        unit = self.start_jobs.pop(job, None)
        try:
            while (result := self.jobs.get(job)) is None:
                if unit is not None and self._exited(unit):
                    return PROGRAM_EXITED
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ManagerTimeout(f"the systemd manager did not finish {what} "
                                         f"within {timeout:.0f}s")
                self.dispatch(remaining, timeout)
            return result
        finally:
            self.jobs.pop(job, None)

    def _exited(self, path: bytes) -> bool:
        """Whether the unit at PATH says its program ran and has exited: its newest
        signal (of its Unit interface, which the manager sends after its Service one)
        says it is deactivating, and the one before it has the program's exit
        (ExecMainCode, 0 until then), not one of systemd's own statuses (NOT_RUN). The
        start job of a program that exits at once, before the manager saw it executed,
        ends only once the unit is inactive: after its ExecStopPost= (orch's exit hook,
        some 40 ms of Python) has run. A program systemd could not run is waited for to
        its job's end, as before. Peer to peer only (see watch_start).

        The manager tells of the unit in pairs of signals: as it is made (inactive), as
        it starts, as its program exits. Only a third pair or later is looked at:
        decoding is what costs, and a start that goes on decodes none before its job
        ends. (Should the manager tell of two changes in one pair, the job is waited
        for, as before.)"""
        messages = self.starting.get(path) or ()
        if len(messages) < 6 or len(messages) % 2:
            return False
        interface, changed = _decoded(messages[-1])
        if interface != UNIT_IFACE or changed.get(b"ActiveState") != b"deactivating":
            return False
        interface, changed = _decoded(messages[-2])
        code, status = changed.get(b"ExecMainCode", 0), changed.get(b"ExecMainStatus", 0)
        # CLD_EXITED with a status, or killed (CLD_KILLED, CLD_DUMPED) by a signal.
        return interface == SERVICE_IFACE and (code > 1 or (code == 1 and status not in NOT_RUN))

    def wait_for(self, done: Callable[[], bool], timeout: float | None,
                 call_timeout: float, poll: float | None = None) -> bool:
        """Dispatch signals until DONE() holds, checked now and after each change
        watch_units() notes (and every POLL seconds, for what no signal tells); False
        once TIMEOUT seconds (None: no limit) have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.changed = False
            if done():
                return True
            polled = None if poll is None else time.monotonic() + poll
            while not self.changed:
                now = time.monotonic()
                remaining = 3600.0 if deadline is None else deadline - now
                if remaining <= 0:
                    return False
                if polled is not None:
                    if polled <= now:
                        break
                    remaining = min(remaining, polled - now)
                self.dispatch(remaining, call_timeout)


def _decoded(msg: Any) -> tuple[bytes, dict[bytes, Any]]:
    """A PropertiesChanged signal's interface and changed properties, decoded once:
    pystemd keeps the body it decoded, and a second decoding would read nothing."""
    if msg.body is None:
        msg.process_reply(False)
    interface, changed, _invalidated = msg.body
    return bytes(interface), changed
