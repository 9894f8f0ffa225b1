"""The bench's own D-Bus connections to the user manager: the floor contender (a raw
StartTransientUnit over one open connection, waiting for its job as orch does) and
the probes the harness needs (which units are loaded, a unit's timestamps, holding a
unit loaded with Ref so its timestamps can still be read after it ended)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pystemd.dbusexc import DBusNoSuchUnitError
from pystemd.dbuslib import DBus, DBusAddress, apply_signature

from bench.floor import floor_properties
from orch.dbus import (
    DESTINATION,
    MANAGER_IFACE,
    MANAGER_PATH,
    PROPERTIES_IFACE,
    SERVICE_IFACE,
    UNIT_IFACE,
    properties_args,
)

JOB_TIMEOUT = 30.0


class Bus:
    """One open connection to a manager: by default the user manager's private socket
    (peer to peer, as orch and systemctl connect); USER_BUS goes through the user's
    dbus-daemon instead, where Ref needs a bus name to track."""

    def __init__(self, runtime_dir: Path, user_bus: bool = False) -> None:
        self._bus: Any = DBus(user_mode=True) if user_bus else DBusAddress(
            f"unix:path={runtime_dir / 'systemd' / 'private'}".encode(), peer_to_peer=True)
        self._jobs: dict[bytes, str] = {}
        self._watching = False
        # pystemd hands sd-bus a bare pointer to the callback: keep it alive.
        self._callbacks: list[Callable[..., None]] = []

    def __enter__(self) -> Bus:
        self._bus.open()
        # sd-bus authenticates on the first call, and a dbus-daemon closes a connection
        # still unauthenticated after its auth_timeout (4 min on a session bus): a full
        # run first uses its user-bus connection later than that.
        self._call(MANAGER_PATH, b"org.freedesktop.DBus.Peer", b"Ping", [])
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bus.close()

    def _call(self, path: bytes, interface: bytes, method: bytes, args: list[Any]) -> Any:
        return self._bus.call_method(DESTINATION, path, interface, method, args).body

    def _manager(self, method: bytes, signature: bytes, values: list[Any]) -> Any:
        args = apply_signature(signature, values) if signature else []
        return self._call(MANAGER_PATH, MANAGER_IFACE, method, args)

    def watch_jobs(self) -> None:
        """Match JobRemoved, as orch does before its first start (the manager sends it to
        the client that queued the job, no Subscribe needed)."""
        if self._watching:
            return

        def on_job_removed(msg: Any, error: Any = None, userdata: Any = None) -> None:
            msg.process_reply(False)
            _id, job, _unit, result = msg.body
            self._jobs[bytes(job)] = bytes(result).decode()

        self._callbacks.append(on_job_removed)
        self._bus.match_signal(DESTINATION, MANAGER_PATH, MANAGER_IFACE, b"JobRemoved",
                               on_job_removed)
        self._watching = True

    def wait_job(self, job: bytes) -> str:
        """Block until JOB is removed; its result ('done', 'failed', ...)."""
        deadline = time.monotonic() + JOB_TIMEOUT
        while job not in self._jobs:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job.decode()} did not finish in {JOB_TIMEOUT:g}s")
            self._bus.wait(max(1, int(remaining * 1_000_000)))
            while not self._bus.process().is_empty():
                pass
        return self._jobs.pop(job)

    def drain(self) -> None:
        """Dispatch what the manager sent since the last call and forget finished jobs.
        A direct connection gets every signal of every unit, subscribed or not: a
        long-lived client handles them in its event loop as they come, so the floor
        does this before its timed call rather than paying for others' traffic in it.
        Every untimed probe drains too: left unread through a thousand spawns, the
        queue grows until sd-bus gives the connection up (ENOTCONN)."""
        while not self._bus.process().is_empty():
            pass
        self._jobs.clear()

    def start_transient(self, unit: str, argv: Sequence[str]) -> str:
        """The floor: StartTransientUnit for UNIT running ARGV, then wait for the start
        job's JobRemoved as orch does; the job's result."""
        self.watch_jobs()
        args = apply_signature(b"ss", [unit.encode(), b"fail"])
        args += properties_args(floor_properties(argv))
        args += [(ord("a"), b"(sa(sv))"), (-1, None)]
        job = bytes(self._call(MANAGER_PATH, MANAGER_IFACE, b"StartTransientUnit", args))
        return self.wait_job(job)

    def loaded(self, patterns: Sequence[str]) -> list[str]:
        """The loaded units whose names match any of PATTERNS."""
        self.drain()
        rows = self._manager(b"ListUnitsByPatterns", b"asas",
                             [[], [p.encode() for p in patterns]])
        return [bytes(row[0]).decode() for row in rows]

    def settle(self, patterns: Sequence[str], timeout: float = 60.0,
               ignore: frozenset[str] = frozenset()) -> float:
        """Wait until no unit matching PATTERNS is loaded (their exit hooks done and the
        units collected), so that one contender's leftovers do not run during the next
        one's turn; units in IGNORE (there before the run) do not count. The seconds it
        took."""
        start = time.monotonic()
        while set(self.loaded(patterns)) - ignore:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"units {list(patterns)} still loaded after {timeout:g}s")
            time.sleep(0.005)
        return time.monotonic() - start

    def unit_path(self, unit: str) -> bytes | None:
        """UNIT's object path, or None if it is not loaded."""
        self.drain()
        try:
            return bytes(self._manager(b"GetUnit", b"s", [unit.encode()]))
        except DBusNoSuchUnitError:
            return None

    def ref(self, path: bytes) -> None:
        """Keep the unit at PATH loaded (past CollectMode=) until unref or disconnect."""
        self._call(path, UNIT_IFACE, b"Ref", [])

    def unref(self, path: bytes) -> None:
        """Drop the reference ref() took."""
        self._call(path, UNIT_IFACE, b"Unref", [])

    def get(self, path: bytes, interface: bytes, name: bytes) -> Any:
        """One property of the object at PATH."""
        return self._call(path, PROPERTIES_IFACE, b"Get",
                          apply_signature(b"ss", [interface, name]))

    def main_exit_and_inactive_usec(self, path: bytes) -> tuple[int, int]:
        """ExecMainExitTimestamp and InactiveEnterTimestamp of the unit at PATH:
        CLOCK_REALTIME microseconds since the epoch (0 if not reached)."""
        return (int(self.get(path, SERVICE_IFACE, b"ExecMainExitTimestamp")),
                int(self.get(path, UNIT_IFACE, b"InactiveEnterTimestamp")))
