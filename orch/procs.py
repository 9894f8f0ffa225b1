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


def started_at(pid: int, monotonic_usec: int) -> bool:
    """True if PID is a live (non-zombie) process that started at MONOTONIC_USEC, the
    CLOCK_MONOTONIC time systemd recorded for it; False if it is gone or another one."""
    if pid <= 0 or monotonic_usec <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
            return False
        since_boot = float(process.create_time()) - float(psutil.boot_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    expected = monotonic_usec / 1e6 + _boot_minus_monotonic()
    return abs(since_boot - expected) < START_TOLERANCE


def main_alive(unit: UnitView) -> bool:
    """True if UNIT's MainPID is the very process the manager started as its main."""
    return started_at(unit.main_pid, unit.exec_main_start_mono_usec)
