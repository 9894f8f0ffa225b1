"""The issue's goals, defined once, and the pure verdict of a run on each."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bench import stats
from bench.series import (
    GOAL_N,
    HISTORY_PS,
    HISTORY_SPAWN,
    LIST_WITH_HISTORY,
    SLEEP,
    SPAWN_WITH_HISTORY,
    SSE_LATENCY,
    TRUE,
    WAIT_AFTER_EXIT,
    WAIT_AFTER_INACTIVE,
    WAIT_CPU,
    Contender,
    Run,
    listing_at,
    recovering_at,
    serving_at,
    spawn_latency,
    with_history,
)


class Kind(StrEnum):
    """How a goal compares what was measured with its limit."""

    TIMES_AT_MOST = "times the reference, at most"  # median / reference median <= limit
    FASTER_AT_LEAST = "times faster, at least"  # reference median / median >= limit
    AT_MOST = "at most"  # the chosen statistic <= limit, in the series' unit

    @property
    def is_ratio(self) -> bool:
        """Whether the goal holds a ratio to a reference (not an absolute value)."""
        return self is not Kind.AT_MOST


class Stat(StrEnum):
    """Which statistic of a series a goal holds against its limit."""

    MEDIAN = "median"
    P95 = "p95"
    MAX = "max"

    def of(self, samples: Sequence[float]) -> float:
        """This statistic of SAMPLES."""
        if self is Stat.MEDIAN:
            return stats.median(samples)
        if self is Stat.P95:
            return stats.p95(samples)
        return max(samples)


@dataclass(frozen=True)
class Goal:
    """A goal of the issue: CONTENDER on MEASURE against LIMIT (a ratio to REFERENCE's
    median, or an absolute value of STAT)."""

    text: str
    measure: str
    contender: str
    kind: Kind
    limit: float
    reference: str | None = None
    stat: Stat = Stat.MEDIAN

    def short(self) -> str:
        """The goal as the table's goal column says it."""
        if self.kind is Kind.TIMES_AT_MOST:
            return f"≤ {self.limit:g}x {self.reference}"
        if self.kind is Kind.FASTER_AT_LEAST:
            return f"≥ {self.limit:g}x faster than {self.reference}"
        return f"{self.stat} ≤ {self.limit:g}"


@dataclass(frozen=True)
class Verdict:
    """A goal and what the run measured for it: VALUE is the ratio (or the statistic)
    compared with the limit; MET is None when the run lacks the data."""

    goal: Goal
    value: float | None
    met: bool | None

    def says(self) -> str:
        """yes / no / n/a."""
        return "n/a" if self.met is None else "yes" if self.met else "no"


def _lib_goal(command: str) -> Goal:
    return Goal("library spawn <= 1.3 x raw StartTransientUnit", spawn_latency(command),
                Contender.LIB, Kind.TIMES_AT_MOST, 1.3, Contender.RAW)


def _cli_goal(command: str) -> Goal:
    return Goal("`orch spawn` CLI <= 3 x `systemd-run --user`", spawn_latency(command),
                Contender.CLI, Kind.TIMES_AT_MOST, 3.0, Contender.SYSTEMD_RUN)


def _cli_budget(command: str) -> Goal:
    return Goal("budget: `orch spawn` CLI <= 1.25 x the python floor + JSON state",
                spawn_latency(command), Contender.CLI, Kind.TIMES_AT_MOST, 1.25,
                Contender.FLOOR_START_JSON)


def _flat(text: str, measure: str, contender: str, ended: int) -> Goal:
    return Goal(text, measure, with_history(contender, ended), Kind.TIMES_AT_MOST, 1.2,
                with_history(contender, 0))


_PS_LIST_UNITS = Goal("`orch ps` at 1000 <= 3 x `systemctl list-units`", listing_at(GOAL_N),
                      Contender.PS, Kind.TIMES_AT_MOST, 3.0, Contender.LIST_UNITS)

GOALS: tuple[Goal, ...] = (
    _lib_goal(TRUE),
    _lib_goal(SLEEP),
    _cli_goal(TRUE),
    _cli_goal(SLEEP),
    Goal("`orch ps` at 1000 >= 20 x faster than the per-unit loop", listing_at(GOAL_N),
         Contender.PS, Kind.FASTER_AT_LEAST, 20.0, Contender.SHOW_LOOP),
    _PS_LIST_UNITS,
    Goal("`orch recover` at 1000 <= 2 s", recovering_at(GOAL_N), Contender.RECOVER,
         Kind.AT_MOST, 2000.0, stat=Stat.P95),
    Goal("wait returns <= 50 ms after the unit ends (its InactiveEnterTimestamp)",
         WAIT_AFTER_INACTIVE, Contender.WAIT, Kind.AT_MOST, 50.0, stat=Stat.P95),
    Goal("wait returns <= 50 ms after the unit ends, counted from the program's exit "
         "(ExecMainExitTimestamp)", WAIT_AFTER_EXIT, Contender.WAIT, Kind.AT_MOST, 50.0,
         stat=Stat.P95),
    Goal("wait burns no CPU while waiting (< 50 ms CPU over 30 s)", WAIT_CPU, Contender.WAIT,
         Kind.AT_MOST, 50.0, stat=Stat.MAX),
    # The start-up and scale budget: each against the least a Python tool on pystemd
    # pays for the same work, or against itself with no history, in the same run.
    _cli_budget(TRUE),
    _cli_budget(SLEEP),
    Goal("budget: `orch ps --json` at 1000 <= 1.5 x the python floor + JSON state's listing",
         listing_at(GOAL_N), Contender.PS, Kind.TIMES_AT_MOST, 1.5, Contender.FLOOR_LIST_JSON),
    # orch serve (issue 22): its listing against the same work done in-process, and a
    # journal line's way to a client following the logs.
    Goal("`GET /api/sessions` at 1000 <= 1.5 x `orch ps --json` in-process",
         serving_at(GOAL_N), Contender.API_LIST, Kind.TIMES_AT_MOST, 1.5,
         Contender.PS_IN_PROCESS),
    Goal("a log line reaches an SSE client <= 500 ms", SSE_LATENCY, Contender.SSE_LOGS,
         Kind.AT_MOST, 500.0, stat=Stat.P95),
    _flat(f"budget: `orch spawn` with {HISTORY_SPAWN} ended sessions in the state "
          "<= 1.2 x with none", SPAWN_WITH_HISTORY, Contender.CLI, HISTORY_SPAWN),
    _flat(f"budget: `orch ps --running` with {HISTORY_PS} ended sessions in the state "
          "<= 1.2 x with none", LIST_WITH_HISTORY, Contender.PS_RUNNING, HISTORY_PS),
)


def _floor(goal: Goal, floor: str) -> Goal:
    return dataclasses.replace(goal, text=f"{floor}, against the limit of: {goal.text}",
                               contender=floor)


# Not goals: the goals' ratio limits held against bench/floor.py, a fresh Python process
# doing only the one call, and doing it with the least JSON state work the issues ask
# of any such tool. Where a floor misses a limit, no command-line tool in Python on
# pystemd that does that much can meet it on this machine, orch included.
FLOORS: tuple[Goal, ...] = (
    _floor(_cli_goal(TRUE), Contender.FLOOR_START),
    _floor(_cli_goal(SLEEP), Contender.FLOOR_START),
    _floor(_PS_LIST_UNITS, Contender.FLOOR_LIST),
    _floor(_cli_goal(TRUE), Contender.FLOOR_START_JSON),
    _floor(_cli_goal(SLEEP), Contender.FLOOR_START_JSON),
    _floor(_PS_LIST_UNITS, Contender.FLOOR_LIST_JSON),
)


def evaluate(goal: Goal, run: Run) -> Verdict:
    """GOAL's verdict on RUN (met None where the run lacks a series it needs)."""
    series = run.find(goal.measure, goal.contender)
    if series is None or not series.samples:
        return Verdict(goal, None, None)
    if goal.kind is Kind.AT_MOST:
        value = goal.stat.of(series.samples)
        return Verdict(goal, value, value <= goal.limit)
    reference = run.find(goal.measure, goal.reference or "")
    if reference is None or not reference.samples:
        return Verdict(goal, None, None)
    mine, theirs = stats.median(series.samples), stats.median(reference.samples)
    if goal.kind is Kind.TIMES_AT_MOST:
        times = stats.ratio(mine, theirs)
        return Verdict(goal, times, None if times is None else times <= goal.limit)
    faster = stats.ratio(theirs, mine)
    return Verdict(goal, faster, None if faster is None else faster >= goal.limit)


def verdicts(run: Run) -> list[Verdict]:
    """Every goal's verdict on RUN."""
    return [evaluate(goal, run) for goal in GOALS]


def floor_verdicts(run: Run) -> list[Verdict]:
    """Whether the floor itself is within each of the goals' limits it is held against."""
    return [evaluate(floor, run) for floor in FLOORS]
