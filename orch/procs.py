"""Is a unit's MainPID still the process systemd started? (psutil, start time checked)"""

from __future__ import annotations

import time

import psutil

from orch.session import UnitView

# systemd stamps ExecMainStartTimestamp right after fork; the kernel's start time of
# the same process is in clock ticks (10 ms). A reused PID starts later by far more.
START_TOLERANCE = 0.5


def _boot_minus_monotonic() -> float:
    """CLOCK_BOOTTIME - CLOCK_MONOTONIC: the time spent suspended since boot."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)


def _same_start(pid: int, monotonic_usec: int) -> bool | None:
    """True if PID is a live process started at MONOTONIC_USEC, False if PID is another
    process, None if there is no live process PID (gone, or a zombie)."""
    if pid <= 0:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
            return None
        since_boot = float(process.create_time()) - float(psutil.boot_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return False
    expected = monotonic_usec / 1e6 + _boot_minus_monotonic()
    return monotonic_usec > 0 and abs(since_boot - expected) < START_TOLERANCE


def started_at(pid: int, monotonic_usec: int) -> bool:
    """True if PID is a live (non-zombie) process that started at MONOTONIC_USEC, the
    CLOCK_MONOTONIC time systemd recorded for it; False if it is gone or another one."""
    return bool(_same_start(pid, monotonic_usec))


def main_alive(unit: UnitView) -> bool:
    """False only if UNIT's MainPID now belongs to another process (a reused PID).

    A MainPID with no live process is one that exited a moment ago: the manager has not
    handled its SIGCHLD yet and will report the end, so it is not taken for lost.
    """
    return _same_start(unit.main_pid, unit.exec_main_start_mono_usec) is not False
