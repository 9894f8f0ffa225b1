"""A systemd manager in memory, for the use cases' unit tests: it answers the calls of
orch.runtime.ManagerPort from a table of units that a test scripts (how a start ends,
what a stop leaves, what happens while someone waits) and logs every call it gets."""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orch.cgroups import Accounting
from orch.dbus import Property
from orch.errors import ManagerUnreachable
from orch.ids import new_session_id
from orch.runtime import Runtime
from orch.scope import Scope
from orch.session import Record, UnitFacts, UnitView
from orch.state import StateStore
from orch.units import unit_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime

    from orch.runtime import ManagerPort

States = tuple[str, str, str, int]
# PIDs no process has (above the kernel's pid_max of 2**22): psutil finds nothing
# there, which orch.procs takes for a main process that exited a moment ago, not a
# reused PID.
FREE_PID = 4_194_400
_pids = itertools.count(FREE_PID)
_invocations = itertools.count(1)


def running(**changes: object) -> UnitView:
    """A unit whose main process runs, under a fresh invocation id."""
    view = UnitView(loaded=True, active_state="active", sub_state="running",
                    invocation_id=f"{next(_invocations):032x}", main_pid=next(_pids),
                    exec_main_start_usec=int(time.time() * 1e6),
                    exec_main_start_mono_usec=0, exec_main_code=0, exec_main_status=0,
                    result="success")
    return dataclasses.replace(view, **changes)  # type: ignore[arg-type]


def exited(view: UnitView, status: int = 0, *, killed: bool = False) -> UnitView:
    """VIEW's unit after its main process ended: exit STATUS, or killed by signal STATUS."""
    ok = status == 0 or (killed and status in (signal.SIGTERM, signal.SIGHUP))
    return dataclasses.replace(
        view, active_state="inactive" if ok else "failed", sub_state="dead" if ok else "failed",
        main_pid=0, exec_main_code=2 if killed else 1, exec_main_status=status,
        result="success" if ok else ("signal" if killed else "exit-code"))


def not_started() -> UnitView:
    """A unit created but never started (the service behind an --after path unit)."""
    return UnitView(loaded=True, active_state="inactive", sub_state="dead",
                    invocation_id=None, main_pid=0, exec_main_start_usec=0,
                    exec_main_start_mono_usec=0, exec_main_code=0, exec_main_status=0,
                    result="success")


@dataclass
class FakeUnit:
    """One unit the fake manager holds: what it says of it, and what it was made from."""

    view: UnitView
    properties: list[Property] = field(default_factory=list)
    facts: UnitFacts | None = None


class FakeManager:
    """Units in a dict; every call logged in `calls` as (method, argument)."""

    def __init__(self, scope: Scope = Scope.USER) -> None:
        self.scope = scope
        self.units: dict[str, FakeUnit] = {}
        self.calls: list[tuple[str, object]] = []
        # How a submitted unit looks once its start job ended, and that job's result.
        self.start: Callable[[str], UnitView] = lambda unit: running()
        self.job_results: dict[str, str] = {}
        self.fail_stop: BaseException | None = None
        # What happens while someone waits: each event is applied in turn, DONE checked
        # after each; when they run out, the wait times out.
        self.events: list[Callable[[FakeManager], None]] = []
        # Called with each submitted unit before it is created: may raise (refuse it).
        self.on_submit: Callable[[str, Sequence[Property]], None] | None = None
        self.closed = 0
        # MemoryAvailable= of each slice that has a limit (none: no limit).
        self.slice_memory: dict[str, int] = {}
        # ControlGroup= of the units that have one (a loaded slice's, in the tests).
        self.control_groups: dict[str, str] = {}
        self._jobs = itertools.count(1)

    # -- scripting ----------------------------------------------------------------

    def add(self, unit: str, view: UnitView, facts: UnitFacts | None = None) -> None:
        """Put UNIT in the manager, as VIEW says it is."""
        self.units[unit] = FakeUnit(view, facts=facts)

    def set(self, unit: str, view: UnitView) -> None:
        """Change what the manager says of UNIT."""
        self.units[unit].view = view

    def called(self, method: str) -> list[object]:
        """The arguments of every call of METHOD, in order."""
        return [argument for name, argument in self.calls if name == method]

    # -- ManagerPort ----------------------------------------------------------------

    def close(self) -> None:
        self.closed += 1

    def submit_transient(self, unit: str, properties: Sequence[Property],
                         aux: Sequence[tuple[str, Sequence[Property]]] = ()) -> bytes:
        self.calls.append(("submit_transient", unit))
        if self.on_submit is not None:
            self.on_submit(unit, properties)
        for name, props in aux:
            self.units[name] = FakeUnit(not_started(), list(props))
        view = self.start(unit)
        self.units[unit] = FakeUnit(view, list(properties))
        return f"/job/{next(self._jobs)}:{unit}".encode()

    def wait_job(self, job: bytes, what: str) -> str:
        unit = job.decode().split(":", 1)[1]
        return self.job_results.get(unit, "done")

    def started(self, unit: str) -> UnitView:
        return self.unit(unit)

    def stop(self, unit: str) -> str:
        return self.stop_all([unit])[unit]

    def stop_all(self, units: Sequence[str]) -> dict[str, str]:
        results = {}
        for unit in units:
            self.calls.append(("stop", unit))
            if self.fail_stop is not None:
                raise self.fail_stop
            held = self.units.get(unit)
            if held is None:
                results[unit] = "gone"
                continue
            if held.view.main_pid:
                held.view = exited(held.view, signal.SIGTERM, killed=True)
            else:
                held.view = dataclasses.replace(held.view, active_state="inactive",
                                                sub_state="dead")
            results[unit] = "done"
        return results

    def kill(self, unit: str, signum: int) -> bool:
        self.calls.append(("kill", (unit, signum)))
        held = self.units.get(unit)
        if held is None:
            return False
        held.view = exited(held.view, signum, killed=True)
        return True

    def unit(self, unit: str) -> UnitView:
        from orch.systemd import GONE

        held = self.units.get(unit)
        return GONE if held is None else held.view

    def view(self, path: bytes, unit: str, states: States | None = None) -> UnitView:
        self.calls.append(("view", unit))
        return self.unit(unit)

    def loaded(self, pattern: str = "orch-*") -> dict[str, tuple[bytes, States]]:
        self.calls.append(("loaded", pattern))
        return {name: (f"/unit/{name}".encode(),
                       ("loaded", held.view.active_state, held.view.sub_state,
                        1 if held.view.job_pending else 0))
                for name, held in self.units.items() if fnmatch.fnmatchcase(name, pattern)}

    def facts(self, unit: str, path: bytes, states: States) -> UnitFacts:
        facts = self.units[unit].facts
        assert facts is not None, f"no facts scripted for {unit}"
        return facts

    def reset_failed(self, unit: str) -> None:
        self.calls.append(("reset_failed", unit))
        held = self.units.get(unit)
        if held is not None and held.view.active_state == "failed":
            del self.units[unit]  # a failed transient unit is unloaded once reset

    def memory_available(self, unit: str) -> int | None:
        self.calls.append(("memory_available", unit))
        return self.slice_memory.get(unit)

    def control_group(self, unit: str) -> str | None:
        self.calls.append(("control_group", unit))
        return self.control_groups.get(unit)

    def wait_until(self, units: Sequence[str], done: Callable[[], bool],
                   timeout: float | None, poll: float | None = None) -> bool:
        self.calls.append(("wait_until", list(units)))
        if done():
            return True
        while self.events:
            self.events.pop(0)(self)
            if done():
                return True
        return False


class Clock:
    """A clock a test sets."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def runtime(manager: FakeManager, state_dir: Path, clock: Clock | None = None,
            scope: Scope = Scope.USER, accounting: Accounting | None = None) -> Runtime:
    """A runtime over STATE_DIR whose every manager is MANAGER; its cgroups are read as
    ACCOUNTING says (by default: a host without any, not this machine's)."""
    def connect(wanted: Scope) -> ManagerPort:
        manager.calls.append(("connect", str(wanted)))
        return manager

    accounting = accounting or Accounting("")
    if clock is None:
        return Runtime(scope, StateStore(state_dir), connect=connect, accounting=accounting)
    return Runtime(scope, StateStore(state_dir), connect=connect, clock=clock,
                   accounting=accounting)


def unreachable(scope: Scope) -> ManagerPort:
    """A connect that finds no manager."""
    raise ManagerUnreachable(f"no systemd manager answers for the {scope} scope")



def put(rt: Runtime, name: str = "job", **fields: object) -> Record:
    """Record a session NAME in RT's store (FIELDS over a plain one's), as if spawned."""
    session_id = str(fields.pop("id", None) or new_session_id())
    record = Record(id=session_id, name=name, unit=unit_name(name, session_id),
                    scope=str(rt.scope), argv=["/bin/true"], cwd="/",
                    created_at=rt.now_iso(), requested_at=rt.now_iso())
    record = dataclasses.replace(record, **fields)  # type: ignore[arg-type]
    rt.store.update(lambda s: s.__setitem__(record.id, record))
    return record


def started(fake: FakeManager, rt: Runtime, name: str, **fields: object) -> Record:
    """A session whose unit runs on FAKE, recorded as spawn confirms it."""
    view = running()
    record = put(rt, name, invocation_id=view.invocation_id, main_pid=view.main_pid, **fields)
    fake.add(record.unit, view)
    return record
