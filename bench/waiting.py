"""`orch wait`: how long after a session ends it returns, and how much CPU it spends
while it waits.

Each session blocks reading a fifo, so the bench ends it at a moment of its choosing.
The bench holds the unit with Ref (over the user bus) so that systemd's own timestamps
of its end (ExecMainExitTimestamp, InactiveEnterTimestamp: CLOCK_REALTIME µs) can be read
after CollectMode= would have collected it, and takes the wall clock (CLOCK_REALTIME µs)
the moment wait4 reaps `orch wait`. CPU while waiting is the on-CPU time of the `orch
wait` process (/proc/PID/task/*/schedstat, ns) across the window, from once it has
settled into waiting until just before the session is ended.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orch
from bench.bus import Bus
from bench.context import ORCH, Bench
from bench.series import (
    WAIT_AFTER_EXIT,
    WAIT_AFTER_INACTIVE,
    WAIT_CPU,
    WAIT_CPU_BUSY,
    Contender,
    Series,
    Unit,
)
from bench.timing import reap, say, start

# How long `orch wait` must show no CPU use, asleep in poll, to count as waiting.
QUIET_S = 0.3
# poll(2) and ppoll(2), where sd_bus_wait (and a method call's wait for its reply) sleep.
POLL_SYSCALLS = {"x86_64": {"7", "271"}, "aarch64": {"73"}}
SETTLE_TIMEOUT_S = 10.0
END_TIMEOUT_S = 30.0
# The goal's window: CPU is reported per this many seconds of waiting.
GOAL_WINDOW_S = 30.0


def on_cpu_ns(pid: int) -> int:
    """Nanoseconds every thread of PID has run on a CPU (schedstat's first field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that just ended
    return total


def _polling(pid: int) -> bool:
    """Whether PID sleeps in poll (in any sleep where the arch's numbers are unknown)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    if stat.rsplit(")", 1)[1].split()[0] != "S":
        return False
    polls = POLL_SYSCALLS.get(platform.machine())
    if polls is None:
        return True
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] in polls
    except (OSError, IndexError):
        return True


def settle(pid: int) -> int:
    """Wait until PID sleeps in poll and its CPU time stays put for QUIET_S (it has
    subscribed and blocks on the bus, not on a file, a lock or its start-up); its CPU
    ns at that moment."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last, since = on_cpu_ns(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.01)
        now = on_cpu_ns(pid)
        if now != last or not _polling(pid):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET_S:
            return now
    raise TimeoutError(f"orch wait (pid {pid}) did not settle in {SETTLE_TIMEOUT_S:g}s")


@dataclass(frozen=True)
class Ended:
    """One awaited session's end: ms from the program's exit and from the unit's end
    (inactive) to wait's return, the exit hook's time between the two (ms), wait's CPU
    in its waiting window (ms) and that window (s), and the CPU of the whole `orch wait`
    process (start-up included, ms)."""

    after_exit_ms: float
    after_inactive_ms: float
    hook_ms: float
    window_cpu_ms: float
    window_s: float
    process_cpu_ms: float


class Awaited:
    """A session blocked on a fifo, held loaded with Ref, and an `orch wait` on it that
    has settled into waiting. end() ends the session and times the wait's return."""

    def __init__(self, bench: Bench, user_bus: Bus, name: str) -> None:
        self.bench = bench
        self.user_bus = user_bus
        self.fifo = bench.work / f"{name}.fifo"
        self.out = bench.out(name)
        os.mkfifo(self.fifo, 0o600)
        state = bench.state("wait")
        with bench.library(state):
            session = orch.spawn(["/usr/bin/head", "-c", "1", str(self.fifo)])
        path = user_bus.unit_path(session.unit)
        if path is None:
            raise RuntimeError(f"{session.unit} is not loaded right after its spawn")
        user_bus.ref(path)
        self.path = path
        self.started = time.perf_counter()
        self.proc: subprocess.Popen[bytes] | None = start(
            [ORCH, "wait", session.id], bench.orch_env(state), self.out)
        self.cpu_start = settle(self.proc.pid)
        self.window_start = time.monotonic()

    def end(self) -> Ended:
        """End the session now; when `orch wait` returned, against systemd's word of
        when the program exited and when the unit ended."""
        assert self.proc is not None, "ended twice"
        cpu_end = on_cpu_ns(self.proc.pid)
        window = time.monotonic() - self.window_start
        with open(self.fifo, "w") as fifo:
            fifo.write("x")
        child = reap(self.proc, self.started, self.out)
        self.proc = None
        exited, inactive = self._end_times()
        return Ended(after_exit_ms=(child.reaped_realtime_us - exited) / 1000,
                     after_inactive_ms=(child.reaped_realtime_us - inactive) / 1000,
                     hook_ms=(inactive - exited) / 1000,
                     window_cpu_ms=(cpu_end - self.cpu_start) / 1e6, window_s=window,
                     process_cpu_ms=child.cpu_s * 1000)

    def _end_times(self) -> tuple[int, int]:
        deadline = time.monotonic() + END_TIMEOUT_S
        while time.monotonic() < deadline:
            exited, inactive = self.user_bus.main_exit_and_inactive_usec(self.path)
            if exited and inactive:
                return exited, inactive
            time.sleep(0.01)
        raise TimeoutError("the awaited unit did not end")

    def close(self) -> None:
        """Let go of the unit (and of the session, if end() was not reached)."""
        if self.proc is not None:
            with open(self.fifo, "w") as fifo:
                fifo.write("x")
            self.proc.wait()
        self.user_bus.unref(self.path)
        self.fifo.unlink()
        self.bench.bus.settle(["orch-head-*"])


@contextmanager
def awaiting(bench: Bench, user_bus: Bus, name: str) -> Iterator[Awaited]:
    """An Awaited session, let go of afterwards however the body ends."""
    awaited = Awaited(bench, user_bus, name)
    try:
        yield awaited
    finally:
        awaited.close()


def waits(bench: Bench, user_bus: Bus, rounds: int, window_s: float,
          during: Callable[[], None]) -> list[Series]:
    """ROUNDS short waits for the return delay, then one wait of WINDOW_S for its CPU
    (DURING runs in that window: work that does not touch the manager)."""
    say(f"wait: {rounds} waits for the return delay, then one of {window_s:g}s for CPU")
    ends: list[Ended] = []
    for index in range(rounds):
        with awaiting(bench, user_bus, f"wait-{index}") as awaited:
            ends.append(awaited.end())
    with awaiting(bench, user_bus, "wait-long") as awaited:
        during()
        time.sleep(max(0.0, window_s - (time.monotonic() - awaited.window_start)))
        long = awaited.end()
    everything = [*ends, long]
    return [
        Series(WAIT_AFTER_EXIT, Contender.WAIT, Unit.MS,
               [e.after_exit_ms for e in everything],
               detail={"hook_ms": [e.hook_ms for e in everything],
                       "note": "from ExecMainExitTimestamp to the reaping of `orch wait`; "
                               "the exit hook took a median "
                               f"{sorted(e.hook_ms for e in everything)[len(everything) // 2]:.0f}"
                               " ms of it; the last sample is the long wait"}),
        Series(WAIT_AFTER_INACTIVE, Contender.WAIT, Unit.MS,
               [e.after_inactive_ms for e in everything],
               detail={"note": "from InactiveEnterTimestamp (exit hook done) to the "
                               "reaping of `orch wait`"}),
        Series(WAIT_CPU, Contender.WAIT, Unit.CPU_MS, [long.window_cpu_ms],
               detail={"window_s": long.window_s, "process_cpu_ms": long.process_cpu_ms,
                       "short_waits_process_cpu_ms": [e.process_cpu_ms for e in ends],
                       "note": f"on-CPU time over {long.window_s:.1f} s of waiting on an "
                               f"otherwise quiet manager (the whole process, start-up "
                               f"included: {long.process_cpu_ms:.0f} ms)"}),
    ]


def busy_series(ended: Ended, what: str) -> Series:
    """The CPU an `orch wait` spent while WHAT kept the manager busy, per GOAL_WINDOW_S."""
    per_window = ended.window_cpu_ms * GOAL_WINDOW_S / ended.window_s
    return Series(WAIT_CPU_BUSY, Contender.WAIT, Unit.CPU_MS, [per_window],
                  detail={"window_s": ended.window_s, "window_cpu_ms": ended.window_cpu_ms,
                          "note": f"{ended.window_cpu_ms:.0f} ms CPU over "
                                  f"{ended.window_s:.1f} s while {what}, scaled to "
                                  f"{GOAL_WINDOW_S:g} s"})
