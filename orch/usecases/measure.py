"""What sessions use: each one's memory, CPU time, tasks and IO from its cgroup, and
the processes in it, for `ps`, `show`, `top` and the web API."""

from __future__ import annotations

import os

from orch.aside import Aside
from orch.cgroups import NO_USAGE, Process, SliceFiles, Usage, Values, unit_cgroup, usage_of
from orch.frozen import replace
from orch.memory import SESSION_SLICE
from orch.scope import Scope
from orch.session import Record, Session
from orch.units import PREFIX, SUFFIX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.runtime import Runtime

_UNKNOWN = "?"
# A slice with fewer units is read as the listing goes: a fork would cost more.
READ_AHEAD_MIN = 64


class Meter:
    """Reads sessions' cgroups for one listing: where the sessions' slice lies is asked
    of each scope's manager once (a unit's cgroup is named after it, in its slice), and
    the slice's directories are opened once; where the slice holds many units, they are
    read ahead (read_ahead). Use as a context manager (it closes the directories).
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._slices: dict[str, str | None] = {}
        self._files: dict[str, SliceFiles | None] = {}
        self._ahead: Aside | None = None
        self._read: dict[str, Values] = {}  # by unit, what was read ahead

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *_: object) -> None:
        if self._ahead is not None:
            self._ahead.__exit__()
            self._ahead = None
        for files in self._files.values():
            if files is not None:
                files.close()
        self._files.clear()

    def _slice(self, scope: str) -> str | None:
        """The ControlGroup= of SCOPE's sessions' slice, None if it has none now."""
        base = self._slices.get(scope, _UNKNOWN)
        if base == _UNKNOWN:
            base = self._slices[scope] = \
                self.rt.manager_of(Scope(scope)).control_group(SESSION_SLICE[Scope(scope)])
        return base

    def _slice_files(self, scope: str) -> SliceFiles | None:
        if scope not in self._files:
            base = self._slice(scope)
            self._files[scope] = None if base is None else self.rt.accounting.slice(base)
        return self._files[scope]

    def read_ahead(self, scope: Scope) -> None:
        """Start reading what each unit in SCOPE's sessions' slice uses, aside (in a
        forked child: orch.aside), if it holds READ_AHEAD_MIN units or more: a listing
        calls this before it reads its records and asks the manager for its units."""
        tree, base = self.rt.accounting.tree, self._slice(str(scope))
        if tree is None or base is None:
            return
        try:  # a cgroup directory's links: its own two, and one of each child's ".."
            children = os.stat(tree + base).st_nlink - 2
        except OSError:
            return
        files = self._slice_files(str(scope))
        if files is None or children < READ_AHEAD_MIN:
            return
        # The child lists them too: a millisecond at a thousand, that this one saves.
        self._ahead = Aside(lambda: files.usages(_sessions_units(tree + base)))

    def cgroup(self, record: Record) -> str | None:
        """RECORD's unit's ControlGroup= path, None if its slice has no cgroup now."""
        base = self._slice(record.scope)
        return None if base is None else unit_cgroup(base, record.unit)

    def usage(self, record: Record) -> Usage:
        """What RECORD's unit uses now (NO_USAGE if it has no cgroup): as read ahead,
        else read now."""
        if self._ahead is not None:
            read = self._ahead.result()
            self._read = read if isinstance(read, dict) else {}
            self._ahead = None
        values = self._read.get(record.unit)
        if values is not None:
            return usage_of(values)
        files = self._slice_files(record.scope)
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


def _sessions_units(directory: str) -> list[str]:
    """The units of orch's sessions among DIRECTORY's cgroups (not the slice's others)."""
    try:
        return [n for n in os.listdir(directory) if n.startswith(PREFIX) and n.endswith(SUFFIX)]
    except OSError:  # the slice is gone: each session's own read will say so
        return []


def unenforced(rt: Runtime, controllers: list[str]) -> list[str]:
    """Those of CONTROLLERS ("memory", "pids", "cpu") that cannot limit the runtime's
    scope's sessions, as the cgroups of their slice say (none if it has no cgroup)."""
    base = rt.manager_of(rt.scope).control_group(SESSION_SLICE[rt.scope])
    return [] if base is None else [c for c in controllers
                                    if not rt.accounting.limits(base, c)]
