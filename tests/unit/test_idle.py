"""The pool of idle manager connections: reuse within the keep time, closed after it,
and read as traffic comes while idle."""

from __future__ import annotations

import _thread
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from orch.idle import IdlePool

KEY = (b"unix:path=/run/user/1000/systemd/private", 1, 2)
OTHER = (b"unix:path=/run/user/1000/systemd/private", 1, 3)


class FakeConnection:
    """A connection with no socket to watch, unless given one: then each drained()
    reads what came on it (and may first wait for HOLD to be released)."""

    def __init__(self, sock: socket.socket | None = None, alive: bool = True) -> None:
        self.closes = 0
        self.sock = sock
        self.alive = alive
        self.read: list[bytes] = []
        self.order: list[str] = []  # "read" as drained() ends, and what a test adds
        self.reading = threading.Event()
        self.hold: _thread.LockType | None = None

    def close(self) -> None:
        self.closes += 1

    def fileno(self) -> int:  # as sd-bus's: none once it found the connection closed
        return -1 if self.sock is None or (not self.alive and self.read) else \
            self.sock.fileno()

    def drained(self, most: int | None = None) -> bool:
        self.reading.set()
        if self.hold is not None:
            with self.hold:
                pass
        assert self.sock is not None
        self.read.append(self.sock.recv(4096))
        self.order.append("read")
        return self.alive


def connected_pair() -> tuple[socket.socket, socket.socket]:
    ours, managers = socket.socketpair()
    ours.setblocking(False)
    return ours, managers


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_connection_put_idle_is_taken_back_once() -> None:
    pool = IdlePool(keep_s=60.0)
    conn = FakeConnection()
    assert pool.put(KEY, conn)
    assert pool.holds(KEY)
    assert pool.take(KEY) is conn
    assert pool.take(KEY) is None
    assert conn.closes == 0


def test_only_one_connection_idles_per_key() -> None:
    pool = IdlePool(keep_s=60.0)
    first, second = FakeConnection(), FakeConnection()
    assert pool.put(KEY, first)
    assert not pool.put(KEY, second)
    assert pool.put(OTHER, second)
    assert pool.take(KEY) is first


def test_a_connection_idle_past_its_keep_time_is_closed_once() -> None:
    pool = IdlePool(keep_s=0.05)
    conn = FakeConnection()
    pool.put(KEY, conn)
    eventually(lambda: not pool.holds(KEY))
    eventually(lambda: conn.closes == 1)
    assert pool.take(KEY) is None


def test_a_connection_taken_in_time_is_not_closed() -> None:
    pool = IdlePool(keep_s=0.2)
    kept, reaped = FakeConnection(), FakeConnection()
    pool.put(KEY, kept)
    assert pool.take(KEY) is kept
    pool.put(OTHER, reaped)
    eventually(lambda: reaped.closes == 1)
    assert kept.closes == 0


def test_a_shorter_keep_wakes_a_reaper_that_waits_for_a_longer_one() -> None:
    pool = IdlePool(keep_s=60.0)
    pool.put(KEY, FakeConnection())  # the reaper sleeps a minute
    pool.keep_s = 0.05
    soon = FakeConnection()
    pool.put(OTHER, soon)
    eventually(lambda: soon.closes == 1, timeout=5.0)
    assert pool.holds(KEY)


def test_a_forked_child_starts_with_no_idle_connection() -> None:
    pool = IdlePool(keep_s=60.0)
    parents = FakeConnection()
    pool.put(KEY, parents)
    pid = os.fork()
    if pid == 0:  # the child: the parent's connection is not its to use or close
        ok = not pool.holds(KEY) and pool.put(KEY, FakeConnection())
        os._exit(0 if ok and pool.take(KEY) is not parents else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pool.take(KEY) is parents and parents.closes == 0


def test_a_connection_due_sooner_than_the_reaper_wakes_is_closed_in_time() -> None:
    pool = IdlePool(keep_s=60.0)
    late, soon = FakeConnection(), FakeConnection()
    pool.put(KEY, late)  # the reaper now sleeps for a minute
    eventually(lambda: pool._until is not None)  # it computed its wake-up
    pool.keep_s = 0.05
    pool.put(OTHER, soon)
    eventually(lambda: soon.closes == 1)
    assert pool.holds(KEY) and late.closes == 0


def test_traffic_on_an_idle_connection_is_read_as_it_comes_and_it_stays_idle() -> None:
    pool = IdlePool(keep_s=60.0)
    ours, managers = connected_pair()
    conn = FakeConnection(ours)
    pool.put(KEY, conn)
    managers.send(b"first")
    eventually(lambda: conn.read == [b"first"])
    managers.send(b"second")  # watched again once read
    eventually(lambda: conn.read == [b"first", b"second"])
    assert pool.take(KEY) is conn and conn.closes == 0


def test_a_take_while_the_connection_is_read_waits_for_it() -> None:
    pool = IdlePool(keep_s=60.0)
    ours, managers = connected_pair()
    conn = FakeConnection(ours)
    conn.hold = _thread.allocate_lock()
    conn.hold.acquire()
    pool.put(KEY, conn)
    managers.send(b"traffic")
    assert conn.reading.wait(10.0)
    taken: list[object] = []

    def take() -> None:
        taken.append(pool.take(KEY))
        conn.order.append("taken")

    taker = threading.Thread(target=take)
    taker.start()
    assert pool.holds(KEY)  # being read: neither idle nor handed out
    conn.hold.release()
    taker.join(10.0)
    assert taken == [conn] and conn.read == [b"traffic"] and conn.closes == 0
    assert conn.order == ["read", "taken"]  # handed out only once read


def test_a_connection_in_use_is_not_read_by_the_pool() -> None:
    pool = IdlePool(keep_s=60.0)
    ours, managers = connected_pair()
    theirs, others = connected_pair()
    conn, other = FakeConnection(ours), FakeConnection(theirs)
    pool.put(KEY, conn)
    assert pool.take(KEY) is conn
    managers.send(b"its own answer")  # while its user reads it
    pool.put(OTHER, other)
    others.send(b"traffic")
    eventually(lambda: other.read == [b"traffic"])  # the reaper has looked since
    assert conn.read == []
    pool.put(KEY, conn)  # idle again: what waits is read now
    eventually(lambda: conn.read == [b"its own answer"])


def test_a_connection_found_closed_while_read_is_dropped_leaving_its_socket_number(
        ) -> None:
    pool = IdlePool(keep_s=60.0)
    ours, managers = connected_pair()
    first = FakeConnection(ours, alive=False)
    pool.put(KEY, first)
    managers.send(b"bye")
    eventually(lambda: first.closes == 1)
    assert pool.take(KEY) is None and not pool.holds(KEY)  # dropped, not kept idle
    number = ours.fileno()
    ours.close()
    again, managers = connected_pair()
    assert again.fileno() == number  # the lowest free number: the same
    second = FakeConnection(again)
    assert pool.put(KEY, second)
    managers.send(b"traffic")
    eventually(lambda: second.read == [b"traffic"])


def test_a_connection_the_manager_closes_while_idle_is_dropped_and_the_reaper_goes_on(
        tmp_path: Path) -> None:
    # The manager's last word (a signal no callback takes) and its hang-up, on a real
    # sd-bus connection: sd-bus closes the socket as it reads the end. Before, the pool
    # took the connection for alive, and watching its closed socket killed the reaper:
    # nothing idle was read or closed after that.
    from orch.connection import Connection
    from tests.unit.fakepeer import connected, signal

    pool = IdlePool(keep_s=0.5)
    with connected(tmp_path) as (peer, bus):
        conn = Connection(bus)
        assert pool.put(KEY, conn)  # type: ignore[arg-type]
        peer.send_and_hang_up([signal(1, "Reloading", "x")])
        eventually(lambda: not pool.holds(KEY))
        assert conn.closed
        later = FakeConnection()
        assert pool.put(OTHER, later)  # type: ignore[arg-type]
        eventually(lambda: later.closes == 1)  # its keep time over: the reaper is there
