"""Connection.alive: whether an idle connection may be handed out again, told by its
socket; Connection.dispatch: what sd-bus queued is all dispatched before a wait, and a
wait is a poll(); Connection.wait_job: a start whose program exits at once is not waited
for to its ExecStopPost= (a fake bus over a socketpair stands in for pystemd's)."""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orch.connection import DRAIN_EVERY, GIL_SLICE, PROGRAM_EXITED, Connection
from orch.dbus import SERVICE_IFACE, UNIT_IFACE
from orch.errors import ManagerTimeout


class Message:
    def __init__(self, empty: bool) -> None:
        self.empty = empty

    def is_empty(self) -> bool:
        return self.empty


class SocketBus:
    """What alive() asks of pystemd's bus, over one end of a socketpair; FD, if given, is
    what get_fd() says instead (sd-bus's negative errno)."""

    def __init__(self, sock: socket.socket, fd: int | None = None) -> None:
        self.sock = sock
        self.fd = fd
        self.processed = 0
        self.fail_after: int | None = None
        self.queued = 0
        self.waits: list[int] = []

    def get_fd(self) -> int:
        return self.sock.fileno() if self.fd is None else self.fd

    def process(self) -> Message:
        self.processed += 1
        if self.fail_after is not None and self.processed > self.fail_after:
            raise OSError(errno.ENOTCONN, "closed")
        if self.queued:
            self.queued -= 1
            return Message(empty=False)
        return Message(empty=True)

    def wait(self, usec: int) -> None:
        self.waits.append(usec)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, manager = socket.socketpair()
    yield ours, manager
    for end in (ours, manager):
        end.close()


def test_an_open_connection_is_alive_and_what_queued_stays_queued(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, manager = pair
    bus = SocketBus(ours)
    assert Connection(bus).alive()
    manager.sendall(b"signals sent while it sat idle")
    assert Connection(bus).alive()
    assert bus.processed == 0  # left for the next dispatch, during the next job
    assert ours.recv(100) == b"signals sent while it sat idle"


def test_a_connection_the_manager_closed_is_not_alive(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, manager = pair
    manager.close()
    assert not Connection(SocketBus(ours)).alive()


def test_a_close_behind_unread_signals_is_seen(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, manager = pair
    manager.sendall(b"what it sent before it re-executed")
    manager.shutdown(socket.SHUT_WR)
    assert not Connection(SocketBus(ours)).alive()


def test_a_closed_bus_or_a_closed_connection_is_not_alive(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _manager = pair
    assert not Connection(SocketBus(ours, fd=-errno.ENOTCONN)).alive()
    closed = Connection(SocketBus(ours))
    closed.closed = True
    assert not closed.alive()


def test_without_one_fd_the_queue_is_read_until_quiet(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _manager = pair
    bus = SocketBus(ours, fd=-errno.EPERM)  # one fd in, another out
    bus.queued = 2
    assert Connection(bus).alive()
    assert bus.processed == 5  # the two queued, then three quiet ones in a row
    failing = SocketBus(ours, fd=-errno.EPERM)
    failing.fail_after = 2
    assert not Connection(failing).alive()


def test_signals_are_read_through_after_so_many_uses_without_a_dispatch(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _manager = pair
    bus = SocketBus(ours)
    conn = Connection(bus)
    for _ in range(DRAIN_EVERY):
        assert conn.alive()
    assert bus.processed == 0
    conn.dispatch(0.0, 1.0)  # a spawn's wait for its job reads them (before and after)
    for _ in range(DRAIN_EVERY):
        assert conn.alive()
    assert bus.processed == 2
    assert conn.alive()  # queries only since: read through now
    assert bus.processed == 5
    for _ in range(DRAIN_EVERY):
        assert conn.alive()
    assert bus.processed == 5


# --- dispatch ----------------------------------------------------------------------------

class SignalBus(SocketBus):
    """Signals in sd-bus's queue (as a call that read past them leaves them), each taken
    by the match callback: process() then returns no message, as sd-bus does."""

    def __init__(self, sock: socket.socket, fd: int | None = None) -> None:
        super().__init__(sock, fd)
        self.callbacks: list[Any] = []
        self.signals = 0

    def match_signal(self, *rule_and_callback: Any) -> None:
        self.callbacks.append(rule_and_callback[-1])

    def process(self) -> Message:
        if self.signals:
            self.signals -= 1
            self.callbacks[0](Message(empty=False))
            return Message(empty=True)
        return super().process()


def _watching(bus: SignalBus) -> tuple[Connection, list[object]]:
    conn = Connection(bus)
    seen: list[object] = []
    conn.match(b"/", b"iface", b"Member",
               lambda msg, error=None, userdata=None: seen.append(msg))
    return conn, seen


def test_every_queued_signal_is_dispatched_before_any_wait(
        pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    ours, _manager = pair
    bus = SignalBus(ours)
    conn, seen = _watching(bus)
    waits: list[float] = []
    monkeypatch.setattr(conn, "_wait", waits.append)
    bus.signals = 3
    conn.dispatch(60.0, 5.0)
    assert len(seen) == 3 and waits == []
    conn.dispatch(0.25, 5.0)  # nothing queued: now it waits
    assert waits == [0.25]


def test_a_wait_returns_when_the_manager_sends(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, manager = pair
    bus = SignalBus(ours)
    conn, _seen = _watching(bus)
    manager.sendall(b"a signal")
    conn.dispatch(3600.0, 5.0)  # poll() sees it at once
    assert bus.processed == 2 and bus.waits == []  # one before the poll, one after


def test_without_one_fd_sd_bus_waits_a_slice_at_a_time(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _manager = pair
    bus = SignalBus(ours, fd=-errno.EPERM)
    conn, _seen = _watching(bus)
    conn.dispatch(3600.0, 5.0)
    assert bus.waits == [int(GIL_SLICE * 1_000_000)]


def test_a_hang_up_behind_a_signal_no_callback_takes_is_no_live_connection(
        tmp_path: Path) -> None:
    # The manager's last word before it goes (a daemon-reexec) is a signal orch does
    # not match: sd-bus dispatches it as an empty message, then the closing as another,
    # closing the socket. Before, three empty ones in a row read as "open".
    from tests.unit.fakepeer import connected, signal

    with connected(tmp_path) as (peer, bus):
        conn = Connection(bus)
        fd = conn.fileno()
        peer.send_and_hang_up([signal(1, "Reloading", "x")])
        hung_up = select.poll()
        hung_up.register(fd, select.POLLRDHUP)
        assert hung_up.poll(10_000)  # all of it is there to read, the end too
        assert conn.drained(256) is False  # at the first look
        assert bus.get_fd() < 0


# --- a start whose program exits at once -------------------------------------------------

UNIT = "orch-true-1a2b3c4d.service"
UNIT_PATH = b"/org/freedesktop/systemd1/unit/orch_2dtrue_2d1a2b3c4d_2eservice"
JOB = b"/org/freedesktop/systemd1/job/7"


class Changed:
    """A PropertiesChanged as pystemd hands it over: decoded (body) when asked."""

    def __init__(self, interface: bytes, changed: dict[bytes, Any]) -> None:
        self.body: Any = None
        self.decodes = 0
        self._decoded = (interface, changed, [])

    def process_reply(self, with_headers: bool) -> None:
        self.decodes += 1
        self.body = self._decoded if self.decodes == 1 else None  # read once, as sd-bus


def _service(code: int, status: int = 0) -> Changed:
    return Changed(SERVICE_IFACE, {b"ExecMainCode": code, b"ExecMainStatus": status,
                                   b"MainPID": 0})


def _unit(state: bytes) -> Changed:
    return Changed(UNIT_IFACE, {b"ActiveState": state, b"InvocationID": b"\x01" * 16})


class StartBus(SocketBus):
    """Each dispatch delivers the next batch of what the manager sends during a start:
    the unit's signals (as watch_start's callback keeps them), or its job's end."""

    def __init__(self, sock: socket.socket, batches: list[list[Changed | str]]) -> None:
        super().__init__(sock)
        self.conn = Connection(self)
        self.batches = batches
        self.pending: list[Changed | str] | None = None

    def match_signal(self, *args: object) -> None:
        pass  # watch_start's match: the batches stand for what it would collect

    def process(self) -> Message:
        if self.pending is None and self.batches:
            self.pending = list(self.batches.pop(0))
        if not self.pending:
            self.pending = None
            return Message(empty=True)
        item = self.pending.pop(0)
        if isinstance(item, str):
            self.conn.jobs[JOB] = item
        elif (messages := self.conn.starting.get(UNIT_PATH)) is not None:
            messages.append(item)  # as watch_start's callback: kept while a start waits
        self.conn.handled += 1
        return Message(empty=False)


def _start(pair: tuple[socket.socket, socket.socket], batches: list[list[Changed | str]],
           *, earlier: bool = False) -> Connection:
    """A connection waiting for JOB, the start of UNIT, to which the manager sends
    BATCHES; EARLIER: one that watched an earlier start of a unit of that name."""
    ours, manager = pair
    manager.sendall(b"x")  # always readable: a wait never blocks the test
    bus = StartBus(ours, batches)
    if earlier:
        bus.conn.watch_start(UNIT, 5.0)
        bus.conn.started(UNIT)
    bus.conn.watch_start(UNIT, 5.0)
    bus.conn.queued(JOB, UNIT)
    return bus.conn


def _made() -> list[Changed | str]:
    return [_service(0), _unit(b"inactive")]  # as the manager tells of a new unit


def _starts() -> list[Changed | str]:
    return [_service(0), _unit(b"activating")]


def test_a_start_ends_with_its_job_when_the_program_runs_on(
        pair: tuple[socket.socket, socket.socket]) -> None:
    batches = [_made(), _starts(), [_service(0), _unit(b"active"), "done"]]
    conn = _start(pair, batches)
    assert conn.wait_job(JOB, "the start", 5.0) == "done"


def test_a_program_that_exits_at_once_ends_the_wait_before_its_job(
        pair: tuple[socket.socket, socket.socket]) -> None:
    # The job would end only after the unit's ExecStopPost=: the wait ends when the
    # unit says its program exited, having decoded only the pair that says so, once.
    made, early = _made(), _starts()
    exited = [_service(1), _unit(b"deactivating")]
    conn = _start(pair, [made, early, exited, ["failed"]])
    assert conn.wait_job(JOB, "the start", 5.0) == PROGRAM_EXITED
    assert [c.decodes for c in made + early + exited if isinstance(c, Changed)] == [
        0, 0, 0, 0, 1, 1]
    props = conn.started(UNIT)
    assert props is not None and props[b"ExecMainCode"] == 1
    assert props[b"ActiveState"] == b"deactivating"
    assert JOB not in conn.jobs and not conn.start_jobs  # its JobRemoved, later, is not kept


def test_signals_of_an_earlier_run_do_not_end_the_next_starts_wait(
        pair: tuple[socket.socket, socket.socket]) -> None:
    # A session's next invocation, on a connection that has not read the end of its last.
    stale = [*_made(), *_starts(), _service(1), _unit(b"deactivating")]
    conn = _start(pair, [stale, _made(), _starts(), [_service(0), _unit(b"active"), "done"]],
                  earlier=True)
    assert conn.wait_job(JOB, "the start", 5.0) == "done"


def test_a_program_systemd_could_not_run_is_waited_for_to_its_jobs_end(
        pair: tuple[socket.socket, socket.socket]) -> None:
    conn = _start(pair, [_made(), _starts(), [_service(1, 203), _unit(b"deactivating")],
                         ["failed"]])
    assert conn.wait_job(JOB, "the start", 5.0) == "failed"


@pytest.mark.parametrize("signal_code", [2, 3])  # killed, dumped
def test_a_program_killed_at_once_ran(pair: tuple[socket.socket, socket.socket],
                                      signal_code: int) -> None:
    conn = _start(pair, [_made(), _starts(),
                         [_service(signal_code, 9), _unit(b"deactivating")], ["failed"]])
    assert conn.wait_job(JOB, "the start", 5.0) == PROGRAM_EXITED


def test_an_inactive_unit_before_its_start_is_no_exit(
        pair: tuple[socket.socket, socket.socket]) -> None:
    # Made, the unit is inactive with no exit yet; half a pair says nothing either.
    conn = _start(pair, [_made(), _starts(), _made(), [_service(1)]])
    with pytest.raises(ManagerTimeout):
        conn.wait_job(JOB, "the start", 0.2)


@pytest.mark.parametrize("watched", ["not watched", "restarts"])
def test_a_job_whose_unit_is_not_watched_or_restarts_is_waited_for_to_its_end(
        pair: tuple[socket.socket, socket.socket], watched: str) -> None:
    # Through a bus no signals of the unit come; one the manager starts again when its
    # program exits (Restart=) goes on with its start job through those exits.
    ours, manager = pair
    manager.sendall(b"x")
    bus = StartBus(ours, [_made(), _starts(), [_service(1), _unit(b"deactivating")], ["done"]])
    if watched == "restarts":  # as Manager.submit_transient queues it
        bus.conn.watch_start(UNIT, 5.0)
        bus.conn.queued(JOB, None)
    else:
        bus.conn.queued(JOB, UNIT)
        bus.conn.starting[UNIT_PATH] = []
    assert bus.conn.wait_job(JOB, "the start", 5.0) == "done"


def test_a_use_that_gave_up_its_start_leaves_nothing_for_the_next(
        pair: tuple[socket.socket, socket.socket]) -> None:
    # A spawn that failed between its submit and its wait: the connection idles after
    # it, and must not keep the job, the unit's signals or the job's unit.
    conn = _start(pair, [_made(), _starts()])
    conn.jobs[JOB] = None
    assert conn.start_jobs and conn.starting
    conn.forget_use()
    assert (conn.jobs, conn.starting, conn.start_jobs) == ({}, {}, {})
