"""Free memory for new sessions: what their slice's manager allows (MemoryAvailable=),
no more than the kernel's MemAvailable. Read for placement (spawn --host auto, over SSH)
and for a queue's min_memory_available (here)."""

from __future__ import annotations

from orch.scope import Scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.runtime import ManagerPort

# The slice a transient service lands in when orch names none.
SESSION_SLICE = {Scope.SYSTEM: "system.slice", Scope.USER: "app.slice"}
MEMINFO = "/proc/meminfo"


def meminfo_available(text: str) -> int | None:
    """MemAvailable in bytes from the text of /proc/meminfo; None if it is not there."""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def combined(physical: int | None, limit: int | None) -> int | None:
    """The smaller of the kernel's figure and the slice's limit, whichever are known."""
    known = [v for v in (physical, limit) if v is not None]
    return min(known) if known else None


def free_here(manager: ManagerPort, scope: Scope) -> int | None:
    """This machine's free memory for a new session of SCOPE; None if unknown."""
    try:
        with open(MEMINFO, encoding="ascii", errors="replace") as file:
            physical = meminfo_available(file.read())
    except OSError:
        physical = None
    return combined(physical, manager.memory_available(SESSION_SLICE[scope]))
