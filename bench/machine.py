"""The machine a run runs on, as the first line of its report says it."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import orch
from bench.series import Machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError):
        pass
    return 0.0


def _systemd_version() -> str:
    try:
        done = subprocess.run(["systemctl", "--version"], capture_output=True, text=True,
                              check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "systemd unknown"
    return done.stdout.splitlines()[0].strip() if done.stdout else "systemd unknown"


def describe() -> Machine:
    """This machine, now."""
    return Machine(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), cpu=_cpu_model(),
                   cores=len(os.sched_getaffinity(0)), ram_gib=_ram_gib(),
                   kernel=platform.release(), systemd=_systemd_version(),
                   python=platform.python_version(), orch=orch.__version__)
