"""The one place orch talks to systemd: a D-Bus connection to one manager.

Owns the pystemd connection (one per process and thread, kept between uses), the
manager's methods, property reads and error mapping; no other module but orch.dbus
(which loads pystemd's D-Bus layer) imports pystemd. What the connection's signals say
is kept by orch.connection. Every call is bounded (orch.alarm): sd-bus honours
SYSTEMD_BUS_TIMEOUT for method calls, and a SIGALRM backstop covers what it does not.
"""

from __future__ import annotations

import _thread
import errno
import os
from collections.abc import Callable, Sequence

from orch.alarm import ALARM, bounded, call_timeout, unanswered
from orch.booted import NO_SYSTEMD_HINT, systemd_is_pid1
from orch.connection import Connection, as_str
from orch.dbus import (
    DESTINATION,
    MANAGER_IFACE,
    MANAGER_PATH,
    PROPERTIES_IFACE,
    SERVICE_IFACE,
    UNIT_IFACE,
    Property,
    load_pystemd,
    properties_args,
    to_bytes,
)
from orch.errors import ManagerUnreachable, OrchError, PermissionDenied, UsageError, suppress
from orch.idle import IdlePool, Key
from orch.scope import Scope
from orch.session import UnitFacts, UnitView
from orch.units import object_path

# Service properties read for every loaded unit, and for one whose main process ended.
_LIVE = (b"MainPID", b"ExecMainStartTimestamp", b"ExecMainStartTimestampMonotonic")
_ENDED = (b"ExecMainCode", b"ExecMainStatus", b"Result", b"ExecMainExitTimestamp")

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~5 ms of every command's start
    from typing import Any

_WILDCARDS = frozenset("*?[")  # fnmatch(3)'s, in a ListUnitsByPatterns pattern
NO_SUCH_PROCESS = "org.freedesktop.systemd1.NoSuchProcess"  # KillUnit main: none runs
# sd-bus keeps a connection's matches until it closes: one that has watched this many
# starts is closed after its use rather than kept idle.
MAX_START_MATCHES = 256
# How many stops stop_all() keeps in flight: each runs an exit hook (a Python process).
STOP_WINDOW = 32


def _hex_id(raw: Any) -> str | None:
    return bytes(raw).hex() if raw else None


def unit_view(props: dict[bytes, Any]) -> UnitView:
    """A UnitView from a GetAll answer."""
    return UnitView(
        loaded=as_str(props.get(b"LoadState", b"")) == "loaded",
        active_state=as_str(props.get(b"ActiveState", b"")),
        sub_state=as_str(props.get(b"SubState", b"")),
        invocation_id=_hex_id(props.get(b"InvocationID")),
        main_pid=int(props.get(b"MainPID", 0)),
        exec_main_start_usec=int(props.get(b"ExecMainStartTimestamp", 0)),
        exec_main_start_mono_usec=int(props.get(b"ExecMainStartTimestampMonotonic", 0)),
        exec_main_code=int(props.get(b"ExecMainCode", 0)),
        exec_main_status=int(props.get(b"ExecMainStatus", 0)),
        result=as_str(props.get(b"Result", b"")),
        job_pending=bool(props.get(b"JobId", 0)),
        exec_main_exit_usec=int(props.get(b"ExecMainExitTimestamp", 0)),
    )


GONE = UnitView(False, "inactive", "dead", None, 0, 0, 0, 0, 0, "", False)


# One idle connection per manager address, process and thread, kept IDLE_KEEP_S between
# Managers: a library that spawns many sessions connects (and authenticates) once a burst;
# the pool reads what comes meanwhile. An sd-bus connection serves one thread, one process.
IDLE_KEEP_S = 2.0
_IDLE = IdlePool(IDLE_KEEP_S)


class Manager:
    """A connection to the manager of SCOPE. Use as a context manager.

    The connection is taken from this thread's idle one for the same manager if there
    is one, and left there afterwards, unless it subscribed to unit changes.
    """

    def __init__(self, scope: Scope, timeout: float | None = None,
                 remote: bytes | None = None) -> None:
        self.scope = scope
        self.timeout = timeout or call_timeout()
        # Another host's manager, through the D-Bus address orch.ssh.bus_address built.
        self.remote = remote
        self._conn: Connection | None = None
        self._idle_key: Key | None = None  # where it idles
        self._alarm_held = False

    # -- connection ---------------------------------------------------------------

    def _address(self) -> bytes | None:
        if self.remote is not None:
            return self.remote
        if self.scope is Scope.SYSTEM and os.geteuid() != 0:
            return None  # non-root reaches the system manager through the system bus
        return f"unix:path={self.scope.runtime_dir() / 'systemd' / 'private'}".encode()

    def open(self) -> Manager:
        """Connect; ManagerUnreachable if no manager answers at this scope's socket."""
        load_pystemd()
        # In microseconds: "{:g}s" of 0.5 ms or a million seconds is no time span.
        os.environ.setdefault("SYSTEMD_BUS_TIMEOUT", f"{round(self.timeout * 1e6)}us")
        self._alarm_held = ALARM.hold()
        try:
            return self._connect()
        except BaseException:
            self._release_alarm()
            raise

    def _connect(self) -> Manager:
        from pystemd.dbuslib import DBus, DBusAddress

        address = self._address()
        self._idle_key = (address, os.getpid(), _thread.get_ident())
        idle = _IDLE.take(self._idle_key)
        if idle is not None and idle.alive():
            self._conn = idle
            return self
        if idle is not None:
            with suppress(Exception):
                idle.close()
        if address is None:
            bus = DBus(user_mode=False)
        else:  # a remote manager answers through its bus, not peer to peer
            bus = DBusAddress(address, peer_to_peer=self.remote is None)
        try:
            with bounded(self.timeout, "a new connection"):
                bus.open()
        except Exception as err:
            raise self._unreachable(err) from None
        self._conn = Connection(bus)
        self._conn.direct = address is not None and self.remote is None
        return self

    def close(self) -> None:
        """Leave the connection idle for this thread's next Manager of the same scope
        (or close it if one is idle already, it subscribed to unit changes, or a call on
        it failed midway)."""
        self._release_alarm()
        conn, self._conn, key = self._conn, None, self._idle_key
        if conn is None or key is None:
            return
        if conn.subscribed or conn.broken or len(conn.start_matches) >= MAX_START_MATCHES:
            conn.close()
            return
        conn.forget_use()
        if not _IDLE.put(key, conn):  # one idles there already: nested Managers
            conn.close()

    def _release_alarm(self) -> None:
        if self._alarm_held:
            self._alarm_held = False
            ALARM.release()

    @property
    def _bus(self) -> Any:
        return self._open.bus

    def __enter__(self) -> Manager:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _unreachable(self, err: Exception) -> OrchError:
        address = self._address()
        where = address.decode() if address else "the system bus"
        if self.remote is not None:
            return ManagerUnreachable(f"cannot reach the {self.scope} manager over ssh: {err}")
        if not systemd_is_pid1():
            return ManagerUnreachable(
                f"no systemd manager is reachable ({where}): systemd is not PID 1 here",
                hint=NO_SYSTEMD_HINT)
        if self.scope is Scope.USER:
            return ManagerUnreachable(
                f"no user manager is running for uid {os.geteuid()} ({where})",
                hint="log in, or enable lingering: `loginctl enable-linger`")
        return ManagerUnreachable(f"cannot reach the system manager ({where}): {err}")

    # -- calls --------------------------------------------------------------------

    def _call(self, path: bytes, interface: bytes, method: bytes, args: list[Any],
              what: str) -> Any:
        from pystemd.dbusexc import (
            DBusAccessDeniedError,
            DBusBaseError,
            DBusInteractiveAuthorizationRequiredError,
            DBusInvalidArgsError,
            DBusNoSuchUnitError,
            DBusTimedOutError,
            DBusTimeoutError,
            DBusUnknownObjectError,
        )

        try:
            with bounded(self.timeout + 1, what):
                return self._bus.call_method(DESTINATION, path, interface, method, args).body
        except (DBusAccessDeniedError, DBusInteractiveAuthorizationRequiredError):
            raise PermissionDenied(
                f"the {self.scope} manager refused {what}",
                hint="changing system sessions needs root" if self.scope is Scope.SYSTEM
                else None) from None
        except (DBusTimeoutError, DBusTimedOutError):
            self._open.broken = True
            raise unanswered(what, self.timeout) from None
        except DBusInvalidArgsError as err:
            raise UsageError(f"the {self.scope} manager refused {what}: "
                             f"{as_str(err.err_message)}") from None
        except (DBusNoSuchUnitError, DBusUnknownObjectError):
            raise  # the callers that expect these turn them into GONE
        except DBusBaseError as err:
            if as_str(err.err_name) == NO_SUCH_PROCESS:
                raise  # kill's: the program has ended
            if err.errno in (-errno.ETIMEDOUT, errno.ETIMEDOUT):
                self._open.broken = True
                raise unanswered(what, self.timeout) from None
            if err.errno in (-errno.ECONNRESET, -errno.ENOTCONN, -errno.EPIPE):
                self._open.broken = True
                raise ManagerUnreachable(f"the {self.scope} manager closed the connection "
                                         f"during {what}") from None
            detail = as_str(err.err_message) or os.strerror(abs(err.errno))
            raise OrchError(f"the {self.scope} manager refused {what}: {detail}") from None
        except BaseException:
            # Cut short (the SIGALRM backstop, an interrupt): the connection may hold a
            # half-read answer; it is not kept for another Manager.
            self._open.broken = True
            raise

    def _manager_call(self, method: str, signature: bytes, values: list[Any],
                      what: str) -> Any:
        from pystemd.dbuslib import apply_signature

        args = apply_signature(signature, to_bytes(values)) if signature else []
        return self._call(MANAGER_PATH, MANAGER_IFACE, method.encode(), args, what)

    # -- jobs and signals ---------------------------------------------------------

    @property
    def _open(self) -> Connection:
        if self._conn is None:
            raise OrchError("internal error: the manager connection is not open")
        return self._conn

    def started(self, unit: str) -> UnitView:
        """UNIT as it is when wait_job() returned. Peer to peer, the signals before that
        said it all (Connection.started): no call."""
        props = self._open.started(unit)
        return self.unit(unit) if props is None else unit_view(props)

    def wait_job(self, job: bytes, what: str) -> str:
        """Wait for JOB (from submit_transient()) to finish; its result ('done', ...), or
        PROGRAM_EXITED if its unit says first its program ran and exited."""
        return self._open.wait_job(job, what, self.timeout)

    # -- operations ---------------------------------------------------------------

    def submit_transient(self, unit: str, properties: Sequence[Property],
                         aux: Sequence[tuple[str, Sequence[Property]]] = ()) -> bytes:
        """Ask the manager to start a transient UNIT; the start job's path (for wait_job()).
        AUX units are created with it, loaded but not started (a path unit's trigger, say).
        If this raises, no unit was created."""
        from pystemd.dbuslib import apply_signature

        self._open.watch_jobs()
        restarts = any(p[0] == "Restart" and p[2] != "no" for p in properties)
        if self._open.direct:
            self._open.watch_start(unit, self.timeout)
        args = apply_signature(b"ss", [unit.encode(), b"fail"])
        args += properties_args(properties)
        args.append((ord("a"), b"(sa(sv))"))
        for name, props in aux:
            args += [(ord("r"), b"sa(sv)"), (ord("s"), name.encode())]
            args += properties_args(props)
            args.append((-1, None))
        args.append((-1, None))
        return self._open.queued(self._call(MANAGER_PATH, MANAGER_IFACE, b"StartTransientUnit",
                                       args, f"the start of {unit}"),
                                 None if restarts else unit)

    def stop(self, unit: str) -> str:
        """Stop UNIT (SIGTERM, then SIGKILL after its stop timeout) and wait for it; the
        job's result, 'gone' if the unit is not loaded."""
        return self.stop_all([unit])[unit]

    def stop_all(self, units: Sequence[str]) -> dict[str, str]:
        """Stop UNITS as stop() does, STOP_WINDOW of them at a time (each stop runs the
        unit's exit hook, a process of its own), and wait for them all; each unit's
        result."""
        from pystemd.dbusexc import DBusNoSuchUnitError

        self._open.watch_jobs()
        results: dict[str, str] = {}
        waiting: dict[str, tuple[bytes, float]] = {}
        queue = list(units)
        while queue or waiting:
            while queue and len(waiting) < STOP_WINDOW:
                unit = queue.pop(0)
                try:
                    waiting[unit] = (self._open.queued(self._manager_call(
                        "StopUnit", b"ss", [unit, "replace"], f"the stop of {unit}")),
                        self._stop_bound(unit))
                except DBusNoSuchUnitError:
                    results[unit] = "gone"
            if waiting:  # the oldest; the others' results are kept meanwhile
                unit, (job, bound) = next(iter(waiting.items()))
                results[unit] = self._open.wait_job(job, f"the stop of {unit}", bound)
                del waiting[unit]
        return results

    def _stop_bound(self, unit: str) -> float:
        """How long UNIT's stop job may take: a service's manager waits its
        TimeoutStopSec= for the program, then as long for the exit hook; and a call."""
        if not unit.endswith(".service"):
            return self.timeout  # a timer's or a socket's stop waits for no program
        usec = int(self._get(object_path(unit), SERVICE_IFACE, b"TimeoutStopUSec", unit))
        return self.timeout + (2 * usec / 1e6 if usec < 2**63 else 30 * 86400.0)

    def kill(self, unit: str, signum: int) -> bool:
        """Send SIGNUM to UNIT's program (its main process; never "all", which after its
        end is orch's exit hook); False if it has none (ended, or UNIT is not loaded)."""
        from pystemd.dbusexc import DBusBaseError

        try:
            self._manager_call("KillUnit", b"ssi", [unit, "main", signum], f"the kill of {unit}")
        except DBusBaseError:  # no such unit, or no main process
            return False
        return True

    def unit(self, unit: str) -> UnitView:
        """What the manager says of UNIT now (GONE if it is not loaded).

        Listed first, with UNIT's own name as the pattern: one call gives its object path
        and states, and lists nothing that is not loaded (reading at the path of a unit
        that is gone loads it as not-found). A name holding a wildcard (patterns have no
        escapes) is looked up with GetUnit."""
        from pystemd.dbusexc import DBusNoSuchUnitError

        if not _WILDCARDS.intersection(unit):
            listed = self.loaded(unit).get(unit)
            return GONE if listed is None else self.view(listed[0], unit, listed[1])
        try:
            path = self._manager_call("GetUnit", b"s", [unit], f"a look-up of {unit}")
        except DBusNoSuchUnitError:
            return GONE
        return self.view(bytes(path), unit)

    def _get(self, path: bytes, interface: bytes, name: bytes, unit: str) -> Any:
        from pystemd.dbuslib import apply_signature

        return self._call(path, PROPERTIES_IFACE, b"Get", apply_signature(b"ss", [interface, name]),
                          f"the properties of {unit}")

    def view(self, path: bytes, unit: str,
             states: tuple[str, str, str, int] | None = None) -> UnitView:
        """Read what the status policy needs (a few Get calls cost less than GetAll)."""
        from pystemd.dbusexc import DBusNoSuchUnitError, DBusUnknownObjectError

        try:
            if states is None:
                load = as_str(self._get(path, UNIT_IFACE, b"LoadState", unit))
                if load != "loaded":
                    return GONE
                active, sub = (as_str(self._get(path, UNIT_IFACE, name, unit))
                               for name in (b"ActiveState", b"SubState"))
                job = self._get(path, UNIT_IFACE, b"Job", unit)
                states = (load, active, sub, int(job[0]) if job else 0)
            elif states[0] != "loaded":
                return GONE  # listed only as another unit's reference (not-found, masked)
            props: dict[bytes, Any] = {b"LoadState": states[0], b"ActiveState": states[1],
                                       b"SubState": states[2], b"JobId": states[3]}
            wanted = [(UNIT_IFACE, b"InvocationID"), *((SERVICE_IFACE, n) for n in _LIVE)]
            if states[1] in UnitView.GONE_STATES or states[1] == "deactivating":
                wanted += [(SERVICE_IFACE, n) for n in _ENDED]
            for interface, name in wanted:
                props[name] = self._get(path, interface, name, unit)
        except (DBusNoSuchUnitError, DBusUnknownObjectError):
            return GONE
        view = unit_view(props)
        # Collected since it was listed: the reads found the manager's not-found stand-in
        # (no invocation), not the run the listing saw ending.
        return GONE if view.invocation_id is None and view.active_state not in \
            UnitView.GONE_STATES else view

    def control_group(self, unit: str) -> str | None:
        """UNIT's ControlGroup= path (where its cgroup files lie under each hierarchy's
        mount), None if it is not loaded or has no cgroup now."""
        from pystemd.dbusexc import DBusNoSuchUnitError

        try:
            path = self._manager_call("GetUnit", b"s", [unit], f"a look-up of {unit}")
        except DBusNoSuchUnitError:
            return None
        # Slice, Service and Scope all have it; the Unit interface does not.
        interface = b"org.freedesktop.systemd1." + {
            "slice": b"Slice", "scope": b"Scope"}.get(unit.rpartition(".")[2], b"Service")
        return as_str(self._get(bytes(path), interface, b"ControlGroup", unit)) or None

    def memory_available(self, unit: str) -> int | None:
        """How much more memory UNIT (a slice) may use, as its manager computes it from
        the limits on it and above it (MemoryAvailable=); None if no limit applies."""
        from pystemd.dbusexc import DBusNoSuchUnitError

        try:
            path = self._manager_call("LoadUnit", b"s", [unit], f"a look-up of {unit}")
        except DBusNoSuchUnitError:
            return None
        value = int(self._get(bytes(path), b"org.freedesktop.systemd1.Slice",
                              b"MemoryAvailable", unit))
        return None if value >= 2**64 - 1 else value

    def loaded(self, pattern: str = "orch-*"
               ) -> dict[str, tuple[bytes, tuple[str, str, str, int]]]:
        """Every loaded unit matching PATTERN: its object path and (load, active, sub,
        queued job id or 0)."""
        listed = self._manager_call("ListUnitsByPatterns", b"asas", [[], [pattern]],
                                    "the list of units")
        said: dict[tuple[bytes, bytes, bytes, int], tuple[str, str, str, int]] = {}
        units = {}
        for name, _, load, active, sub, _, path, job, _, _ in listed:
            states = said.get(key := (load, active, sub, job))
            if states is None:  # pystemd's bytes: the few states of many units decoded once
                states = said[key] = (load.decode(errors="replace"),
                    active.decode(errors="replace"), sub.decode(errors="replace"), int(job))
            units[name.decode(errors="replace")] = (bytes(path), states)
        return units

    def job_type(self, unit: str) -> str | None:
        """The type of the job queued for UNIT ("stop", "restart", ...); None if none is,
        or UNIT is not loaded. (A name with a wildcard matches others too: none is.)"""
        if _WILDCARDS.intersection(unit):
            return None
        listed = self._manager_call("ListUnitsByPatterns", b"asas", [[], [unit]],
                                    f"the job of {unit}")
        return next((as_str(row[8]) for row in listed
                     if as_str(row[0]) == unit and int(row[7])), None)

    def facts(self, unit: str, path: bytes, states: tuple[str, str, str, int]) -> UnitFacts:
        """What UNIT tells about itself (its command, directory, environment, hook)."""
        view = self.view(path, unit, states)
        start = self._get(path, SERVICE_IFACE, b"ExecStart", unit) or []
        hook = self._get(path, SERVICE_IFACE, b"ExecStopPost", unit) or []
        return UnitFacts(
            unit=unit, view=view,
            description=as_str(self._get(path, UNIT_IFACE, b"Description", unit)),
            environment=[as_str(e) for e in self._get(path, SERVICE_IFACE, b"Environment", unit)],
            argv=[as_str(a).replace("$$", "$") for a in start[0][1]] if start else [],
            program=as_str(start[0][0]) if start else "",
            cwd=as_str(self._get(path, SERVICE_IFACE, b"WorkingDirectory", unit)).lstrip("!"),
            hook_argv=[as_str(a).replace("$$", "$") for a in hook[0][1]] if hook else [],
        )

    def reset_failed(self, unit: str) -> None:
        """Forget UNIT's failed state (a no-op where it is not loaded or not failed)."""
        from pystemd.dbusexc import DBusNoSuchUnitError

        with suppress(DBusNoSuchUnitError):
            self._manager_call("ResetFailedUnit", b"s", [unit], f"the reset of {unit}")

    def unit_file_state(self, unit: str) -> tuple[str, int, int]:
        """What the manager made of UNIT's file: its LoadState ("bad-setting" for a
        setting it could not parse), and a timer's next and last elapse (µs; 0: none)."""
        path = bytes(self._manager_call("LoadUnit", b"s", [unit], f"a look-up of {unit}"))
        state = as_str(self._get(path, UNIT_IFACE, b"LoadState", unit))
        if state != "loaded" or not unit.endswith(".timer"):
            return state, 0, 0
        timer = b"org.freedesktop.systemd1.Timer"
        return (state, int(self._get(path, timer, b"NextElapseUSecRealtime", unit)),
                int(self._get(path, timer, b"LastTriggerUSec", unit)))

    def reload(self) -> None:
        """Make the manager read its unit files again (daemon-reload)."""
        self._manager_call("Reload", b"", [], "a reload")

    def enable(self, files: Sequence[str]) -> None:
        """Enable unit FILES (their [Install] links), as `systemctl enable` does."""
        self._manager_call("EnableUnitFiles", b"asbb", [list(files), False, True],
                           f"enabling {', '.join(files)}")

    def disable(self, files: Sequence[str]) -> None:
        """Remove unit FILES' [Install] links, as `systemctl disable` does."""
        self._manager_call("DisableUnitFiles", b"asb", [list(files), False],
                           f"disabling {', '.join(files)}")

    def start(self, unit: str, wait: bool = True) -> str:
        """Start UNIT and wait for its start job (unless not WAIT: a oneshot's start job
        lasts as long as its run); the job's result, or "queued"."""
        self._open.watch_jobs()
        job = self._open.queued(self._manager_call("StartUnit", b"ss", [unit, "replace"],
                                                   f"the start of {unit}"))
        return self.wait_job(job, f"the start of {unit}") if wait else "queued"

    def wait_until(self, units: Sequence[str], done: Callable[[], bool],
                   timeout: float | None, poll: float | None = None) -> bool:
        """Block on the manager's signals about UNITS until DONE() holds (checked once
        after subscribing, so no change slips in between, then after each signal about
        them, and with POLL every POLL seconds: a turn's end, say); False on timeout."""
        conn = self._open
        conn.watch_units(units)
        conn.watch_jobs()
        self._manager_call("Subscribe", b"", [], "a subscription to unit changes")
        return conn.wait_for(done, timeout, self.timeout, poll)
