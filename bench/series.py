"""What a bench run produces: the machine it ran on and its series of samples, with the
names of every measure and contender defined once, here. JSON through one encoder and
one strict decoder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SCHEMA = 1


class Unit(StrEnum):
    """What a series' samples count."""

    MS = "ms"
    RATE = "sessions/s"
    CPU_MS = "ms CPU"
    MIB = "MiB"


class Contender(StrEnum):
    """Who does the work being measured."""

    RAW = "raw StartTransientUnit"
    PYSTEMD = "pystemd.run"
    SYSTEMD_RUN = "systemd-run --user"
    # bench/floor.py: a fresh Python process that loads only pystemd's D-Bus layer and
    # makes the one call; not orch, but what any Python CLI on pystemd pays at least.
    FLOOR_START = "python floor: StartTransientUnit only"
    FLOOR_LIST = "python floor: ListUnitsByPatterns only"
    # The same, plus the least the issues ask of any such tool: json loaded, a locked and
    # durable JSON record before the start; the JSON records read and printed as JSON.
    FLOOR_START_JSON = "python floor + JSON state: StartTransientUnit"
    FLOOR_LIST_JSON = "python floor + JSON state: ListUnitsByPatterns"
    LIB = "orch.spawn (library)"
    CLI = "orch spawn (CLI)"
    CLI_8 = "orch spawn (CLI, 8 processes x 125)"
    PS = "orch ps --json"
    SHOW = "orch show ID"
    LIST_UNITS = "systemctl --user list-units 'orch-*'"
    SHOW_LOOP = "systemctl --user show, one per unit"
    SHOW_ONE = "systemctl --user show UNIT"
    RECOVER = "orch recover"
    PS_RUNNING = "orch ps --running"
    WAIT = "orch wait"
    PYTHON = "python -c pass"
    VERSION = "orch --version"
    PS_EMPTY = "orch ps (empty state)"
    # What a shell's Tab after `orch show ` runs: the answer from the state file, which
    # must come without typer (goal: within 50 ms).
    COMPLETE_REF = "orch completion of a session reference (empty state)"
    # orch serve's listing, and what `orch ps --json` does in-process (no start-up).
    API_LIST = "GET /api/sessions (orch serve)"
    PS_IN_PROCESS = "orch ps --json, in-process"
    SSE_LOGS = "orch serve: logs?follow=true"
    JOURNAL_FOLLOW = "journalctl --follow"


def spawn_latency(command: str) -> str:
    """The measure of starting COMMAND once."""
    return f"spawn latency: {command}"


def listing_at(n: int) -> str:
    """The measure of listing N live sessions."""
    return f"list sessions, N={n}"


def showing_at(n: int) -> str:
    """The measure of showing one of N live sessions."""
    return f"show one session, N={n}"


def serving_at(n: int) -> str:
    """The measure of listing N live sessions through the web API."""
    return f"web API listing, N={n}"


# From a program's line to the web client following its logs (Server-Sent Events).
SSE_LATENCY = "log line to an SSE client"


def recovering_at(n: int) -> str:
    """The measure of recovering N live sessions."""
    return f"recover, N={n}"


def with_history(contender: str, ended: int) -> str:
    """CONTENDER run on a state that also holds ENDED ended sessions."""
    return f"{contender}, {ended} ended sessions in the state"


TRUE = "/bin/true"
# The population the goals name for ps and recover.
GOAL_N = 1000
SLEEP = "sleep 1000"
# The history the flat-cost goals name: ended sessions in the state for
# `orch spawn`, and for `orch ps --running`.
HISTORY_SPAWN = 1000
HISTORY_PS = 10_000
SPAWN_WITH_HISTORY = "spawn latency: /bin/true, against history"
LIST_WITH_HISTORY = "list running sessions, against history"
THROUGHPUT = "spawn throughput (sleeping sessions)"
WAIT_AFTER_EXIT = "wait: return after the program's exit"
WAIT_AFTER_INACTIVE = "wait: return after the unit's end (inactive)"
WAIT_CPU = "wait: CPU while waiting, per 30 s"
WAIT_CPU_BUSY = "wait: CPU while waiting on a busy manager, per 30 s"
COLD_START = "CLI cold start"
PEAK_RSS = "CLI peak RSS"


@dataclass(frozen=True)
class Series:
    """The samples of one contender on one measure, in UNIT. REFERENCE names the
    contender of the same measure that ratios are taken against (None: no ratio).
    DETAIL keeps raw data that the samples were computed from."""

    measure: str
    contender: str
    unit: Unit
    samples: list[float]
    reference: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Machine:
    """Where a run ran."""

    date: str
    cpu: str
    cores: int
    ram_gib: float
    kernel: str
    systemd: str
    python: str
    orch: str

    def describe(self) -> str:
        """One line for the top of a report."""
        return (f"{self.date} · {self.cpu}, {self.cores} cores, {self.ram_gib:.1f} GiB RAM · "
                f"Linux {self.kernel} · {self.systemd} · Python {self.python} · "
                f"orch {self.orch}")


@dataclass(frozen=True)
class Run:
    """One bench run: its machine, whether it was the reduced one, its series, and
    the measures that failed."""

    machine: Machine
    quick: bool
    duration_s: float
    series: list[Series]
    failures: list[str] = field(default_factory=list)

    def find(self, measure: str, contender: str) -> Series | None:
        """The series of CONTENDER on MEASURE, if the run has it."""
        for series in self.series:
            if series.measure == measure and series.contender == contender:
                return series
        return None


def encode(run: Run) -> dict[str, Any]:
    """RUN as JSON data."""
    return {"schema": SCHEMA, **dataclasses.asdict(run)}


def _fields(cls: type[Any], data: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    return data


def decode(data: dict[str, Any]) -> Run:
    """A Run from encode()'s data; ValueError on anything else."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"bench run: schema {data.get('schema')!r}, expected {SCHEMA}")
    body = {k: v for k, v in data.items() if k != "schema"}
    _fields(Run, body, "bench run")
    machine = Machine(**_fields(Machine, body["machine"], "machine"))
    series = []
    for item in body["series"]:
        item = dict(_fields(Series, item, "series"))
        item["unit"] = Unit(item["unit"])
        item["samples"] = [float(s) for s in item["samples"]]
        series.append(Series(**item))
    return Run(machine=machine, quick=bool(body["quick"]),
               duration_s=float(body["duration_s"]), series=series,
               failures=[str(f) for f in body.get("failures", [])])


def dumps(run: Run) -> str:
    """RUN as JSON text."""
    return json.dumps(encode(run), indent=1, ensure_ascii=False) + "\n"


def loads(text: str) -> Run:
    """A Run from dumps()'s text."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("bench run: not a JSON object")
    return decode(data)
