"""How the bench times things: every child process goes through run_child (wall time
from just before the fork to the reaping, and the child's own rusage from wait4), and
contenders take turns round-robin so that a noisy moment of a shared machine falls on
all of them alike. The order within a round changes from round to round (a balanced
Latin square), so that each contender comes right after every other equally often: what
a turn leaves behind (a long turn leaves a manager that sat idle, and an idle vCPU of a
microVM wakes slowly) would otherwise always fall on the same next contender."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ChildFailed(RuntimeError):
    """A child process the bench relies on exited non-zero."""


@dataclass(frozen=True)
class Child:
    """A finished child: wall seconds, its own CPU seconds (user + system), its peak
    resident set (KiB, ru_maxrss), exit status, what it printed, and the wall clock
    (CLOCK_REALTIME, microseconds since the epoch) when it was reaped."""

    wall_s: float
    cpu_s: float
    maxrss_kib: int
    returncode: int
    stdout: str
    stderr: str
    reaped_realtime_us: int


def _status(raw: int) -> int:
    return os.waitstatus_to_exitcode(raw)


def start(argv: Sequence[str], env: Mapping[str, str], out: Path,
          cwd: str = "/") -> subprocess.Popen[bytes]:
    """Start ARGV with exactly ENV, its stdout and stderr going to files beside OUT (a
    file, never a pipe: a big `ps --json` must not block on a full pipe)."""
    with open(out.with_suffix(".out"), "wb") as stdout, \
            open(out.with_suffix(".err"), "wb") as stderr:
        return subprocess.Popen(list(argv), env=dict(env), stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, cwd=cwd)


def reap(proc: subprocess.Popen[bytes], started: float, out: Path,
         check: bool = True) -> Child:
    """Wait for PROC (started at perf_counter STARTED) with wait4; what it did."""
    _pid, raw, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    reaped = time.time_ns() // 1000
    proc.returncode = _status(raw)  # reaped here: Popen must not wait for it again
    stdout = out.with_suffix(".out").read_text(errors="replace")
    stderr = out.with_suffix(".err").read_text(errors="replace")
    child = Child(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                  maxrss_kib=usage.ru_maxrss, returncode=proc.returncode,
                  stdout=stdout, stderr=stderr, reaped_realtime_us=reaped)
    if check and child.returncode != 0:
        command = " ".join(str(a) for a in proc.args) \
            if isinstance(proc.args, list) else str(proc.args)
        raise ChildFailed(f"{command} exited {child.returncode}: {stderr.strip()[-500:]}")
    return child


def run_child(argv: Sequence[str], env: Mapping[str, str], out: Path,
              check: bool = True) -> Child:
    """Run ARGV to its end (see start and reap)."""
    started = time.perf_counter()
    proc = start(argv, env, out)
    return reap(proc, started, out, check)


def round_robin(turns: Mapping[str, Callable[[int], float]], rounds: int,
                between: Callable[[], object] | None = None,
                progress: str = "") -> dict[str, list[float]]:
    """Call each of TURNS once per round for ROUNDS rounds, in the orders of
    balanced_orders; each call gets the round's number and returns the value it
    measured. BETWEEN runs after every turn, untimed (to let the manager settle)."""
    samples: dict[str, list[float]] = {name: [] for name in turns}
    names = list(turns)
    orders = balanced_orders(len(names))
    for index in range(rounds):
        for position in orders[index % len(orders)]:
            name = names[position]
            samples[name].append(turns[name](index))
            if between is not None:
                between()
        if progress and (index + 1) % max(1, rounds // 5) == 0:
            say(f"  {progress}: {index + 1}/{rounds} rounds")
    return samples


def balanced_orders(count: int) -> list[list[int]]:
    """Orders of COUNT items (a Williams design) in which every item comes right after
    every other item equally often, over all the orders: COUNT orders for an even COUNT,
    twice as many (each also reversed) for an odd one. Pure."""
    if count <= 0:
        return [[]]
    first, low, high = [0], 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    orders = [[(item + shift) % count for item in first] for shift in range(count)]
    if count % 2:
        orders += [order[::-1] for order in orders]
    return orders


_STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress, on stderr, with the seconds since the bench started."""
    print(f"[{time.monotonic() - _STARTED:5.0f}s] {message}", file=sys.stderr, flush=True)
