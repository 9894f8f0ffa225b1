"""What sessions use: each one's memory, CPU time, tasks and IO from its cgroup, and
the processes in it, for `ps`, `show`, `top` and the web API."""

from __future__ import annotations

from orch.cgroups import NO_USAGE, Process, SliceFiles, Usage, unit_cgroup
from orch.frozen import replace
from orch.memory import SESSION_SLICE
from orch.scope import Scope
from orch.session import Record, Session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.runtime import Runtime

_UNKNOWN = "?"


class Meter:
    """Reads sessions' cgroups for one listing: where the sessions' slice lies is asked
    of each scope's manager once (a unit's cgroup is named after it, in its slice), and
    the slice's directories are opened once. Use as a context manager (it closes them).
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._slices: dict[str, str | None] = {}
        self._files: dict[str, SliceFiles | None] = {}

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *_: object) -> None:
        for files in self._files.values():
            if files is not None:
                files.close()
        self._files.clear()

    def _slice(self, record: Record) -> str | None:
        """The ControlGroup= of RECORD's scope's sessions' slice, None if it has none."""
        base = self._slices.get(record.scope, _UNKNOWN)
        if base == _UNKNOWN:
            scope = Scope(record.scope)
            base = self._slices[record.scope] = \
                self.rt.manager_of(scope).control_group(SESSION_SLICE[scope])
        return base

    def cgroup(self, record: Record) -> str | None:
        """RECORD's unit's ControlGroup= path, None if its slice has no cgroup now."""
        base = self._slice(record)
        return None if base is None else unit_cgroup(base, record.unit)

    def usage(self, record: Record) -> Usage:
        """What RECORD's unit uses now (NO_USAGE if it has no cgroup)."""
        if record.scope not in self._files:
            base = self._slice(record)
            self._files[record.scope] = None if base is None else \
                self.rt.accounting.slice(base)
        files = self._files[record.scope]
        return NO_USAGE if files is None else files.usage(record.unit)

    def measured(self, session: Session, record: Record) -> Session:
        """SESSION with what its unit uses, if it has not ended."""
        if session.status.ended:
            return session
        usage = self.usage(record)
        return session if usage is NO_USAGE else replace(session, **usage.__dict__)

    def processes(self, record: Record) -> list[Process]:
        """The processes in RECORD's unit now, in pid order."""
        cgroup = self.cgroup(record)
        return [] if cgroup is None else self.rt.accounting.processes(cgroup)
