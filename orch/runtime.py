"""What a use case runs on: the scope, its state store, its manager connection (opened
on first use) and the clock. The library API builds the real one; a unit test builds
one over a temp state directory and a fake manager (tests/unit/fakemanager.py).
"""

from __future__ import annotations

from pathlib import Path

from orch.scope import Scope
from orch.session import now_iso
from orch.state import StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms at import, which every command would pay
    from collections.abc import Callable, Sequence
    from datetime import datetime
    from types import TracebackType
    from typing import Protocol

    from orch.cgroups import Accounting
    from orch.dbus import Property
    from orch.session import UnitFacts, UnitView

    States = tuple[str, str, str, int]

    class ManagerPort(Protocol):
        """The calls the use cases make of a systemd manager (orch.systemd.Manager)."""

        def close(self) -> None: ...
        def submit_transient(self, unit: str, properties: Sequence[Property],
                             aux: Sequence[tuple[str, Sequence[Property]]] = ()) -> bytes: ...
        def wait_job(self, job: bytes, what: str) -> str: ...
        def started(self, unit: str) -> UnitView: ...
        def stop(self, unit: str) -> str: ...
        def stop_all(self, units: Sequence[str]) -> dict[str, str]: ...
        def kill(self, unit: str, signum: int) -> bool: ...
        def unit(self, unit: str) -> UnitView: ...
        def view(self, path: bytes, unit: str, states: States | None = None) -> UnitView: ...
        def loaded(self, pattern: str = "orch-*") -> dict[str, tuple[bytes, States]]: ...
        def job_type(self, unit: str) -> str | None: ...
        def facts(self, unit: str, path: bytes, states: States) -> UnitFacts: ...
        def reset_failed(self, unit: str) -> None: ...
        def memory_available(self, unit: str) -> int | None: ...
        def control_group(self, unit: str) -> str | None: ...
        def wait_until(self, units: Sequence[str], done: Callable[[], bool],
                       timeout: float | None, poll: float | None = None) -> bool: ...

    Connect = Callable[[Scope], ManagerPort]
    Clock = Callable[[], datetime]


_STORES: dict[tuple[Path, int], StateStore] = {}


def store_for(scope: Scope) -> StateStore:
    """The state store of SCOPE for the calling user: one per directory, process and
    thread (a store's cache of the file is not shared between threads: `orch serve`
    answers in several), so what it knows of the file it last read or wrote serves the
    next call."""
    from _thread import get_ident  # built in: costs nothing at start

    key = (scope.state_dir(), get_ident())
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = StateStore(key[0])
    return store


def connect(scope: Scope) -> ManagerPort:
    """A connection to SCOPE's systemd manager (this thread's idle one, if any)."""
    from orch.systemd import Manager

    return Manager(scope).open()


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    from datetime import UTC, datetime  # not at import: a spawn needs only now_iso

    return datetime.now(UTC)


class Runtime:
    """A use case's surroundings for SCOPE. Managers are connected when first asked for
    and closed with the runtime (use it as a context manager). A runtime belongs to one
    thread, as a manager connection does: another thread takes a fork()."""

    def __init__(self, scope: Scope, store: StateStore | None = None, *,
                 connect: Connect = connect, clock: Clock = utc_now,
                 accounting: Accounting | None = None) -> None:
        self.scope = scope
        self.store = store if store is not None else store_for(scope)
        self.clock = clock
        self._connect = connect
        self._managers: dict[Scope, ManagerPort] = {}
        self._accounting = accounting

    @property
    def accounting(self) -> Accounting:
        """Where this host's cgroups count each resource (read once, when first asked)."""
        if self._accounting is None:
            from orch.cgroups import Accounting

            self._accounting = Accounting()
        return self._accounting

    @property
    def manager(self) -> ManagerPort:
        """The manager of this runtime's scope."""
        return self.manager_of(self.scope)

    def manager_of(self, scope: Scope) -> ManagerPort:
        """The manager of SCOPE (a record's own scope, which is the store's but for an
        ORCH_STATE_DIR both scopes share)."""
        manager = self._managers.get(scope)
        if manager is None:
            manager = self._managers[scope] = self._connect(scope)
        return manager

    def now(self) -> datetime:
        """The current time (UTC)."""
        return self.clock()

    def now_iso(self) -> str:
        """The current time as records write it (session.now_iso)."""
        if self.clock is utc_now:
            return now_iso()  # the same, without loading datetime
        return self.clock().isoformat(timespec="microseconds")

    def fork(self) -> Runtime:
        """A runtime of the same scope, store, connector and clock with managers of its
        own (for another thread)."""
        return Runtime(self.scope, self.store, connect=self._connect, clock=self.clock,
                       accounting=self._accounting)

    def close(self) -> None:
        """Close every manager this runtime connected to."""
        managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
