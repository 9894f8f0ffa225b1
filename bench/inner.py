"""The bench itself, run inside the box as the test user against its user manager:
every measure in turn, written as one run (series.Run) to WORK/run.json."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orch
from bench import history, machine, queries, spawning, startup, waiting, web
from bench.bus import Bus
from bench.context import Bench
from bench.series import THROUGHPUT, Run, Series, dumps
from bench.timing import say


@dataclass(frozen=True)
class Plan:
    """How much of everything a run does."""

    latency_rounds: int  # per contender and command
    idle_rounds: int  # per contender, /bin/true with a quiet pause before each turn
    read_rounds: int  # per contender and population size
    sizes: tuple[int, ...]  # population sizes the reads run at
    cli_sessions: int  # spawned by the concurrent CLI loops
    wait_rounds: int  # quick waits, for the return delay
    wait_window_s: float  # the long wait, for its CPU
    cold_rounds: int  # per cold-start contender
    history_rounds: int  # per contender, each measure against history


# A line at a time to a client following the logs: enough for a p95.
SSE_SAMPLES = 40
FULL = Plan(latency_rounds=50, idle_rounds=20, read_rounds=10, sizes=(10, 100, 1000),
            cli_sessions=1000, wait_rounds=10, wait_window_s=30.0, cold_rounds=20,
            history_rounds=30)
QUICK = Plan(latency_rounds=10, idle_rounds=5, read_rounds=3, sizes=(10, 100),
             cli_sessions=96, wait_rounds=3, wait_window_s=30.0, cold_rounds=8,
             history_rounds=10)


def measure(bench: Bench, user_bus: Bus, plan: Plan) -> tuple[list[Series], list[str]]:
    """Every measure; the series in the order the report shows them, and the measures
    that failed (a failure is reported, and the other measures still run)."""
    failures: list[str] = []

    def attempt(what: str, body: Callable[[], list[Series]]) -> list[Series]:
        try:
            return body()
        except Exception as err:  # one measure failing must not lose the others
            failures.append(f"{what}: {type(err).__name__}: {err}")
            say(f"bench: {what} FAILED: {err}")
            clean(bench)
            return []

    latency = attempt("spawn latency", lambda: spawning.latency(
        bench, plan.latency_rounds, plan.idle_rounds))
    # The history's own size is the in both plans: only the rounds differ.
    against_history = attempt("history", lambda: history.measures(bench, plan.history_rounds))
    cold: list[Series] = []
    # Cold starts run in the long wait's window: they do not talk to the manager, so
    # `orch wait` hears nothing meanwhile, and the 30 s are not spent idle.
    waits = attempt("wait", lambda: waiting.waits(
        bench, user_bus, plan.wait_rounds, plan.wait_window_s,
        during=lambda: cold.extend(startup.cold_start(bench, plan.cold_rounds))))
    population = attempt("population", lambda: _population(bench, plan))
    cli = attempt("CLI throughput", lambda: _cli_throughput(bench, user_bus, plan))
    sse = attempt("web API logs", lambda: web.sse_latency(bench, SSE_SAMPLES))
    throughput = [s for s in [*population, *cli] if s.measure == THROUGHPUT]
    reads = [s for s in population if s.measure != THROUGHPUT]
    busy = [s for s in cli if s.measure != THROUGHPUT]
    ordered = [*latency, *against_history, *throughput, *reads, *sse, *waits, *busy, *cold]
    return ordered, failures


def _population(bench: Bench, plan: Plan) -> list[Series]:
    throughput, reads = queries.population(bench, plan.sizes, plan.read_rounds)
    return [throughput, *reads]


def _cli_throughput(bench: Bench, user_bus: Bus, plan: Plan) -> list[Series]:
    # Meanwhile an `orch wait` waits on the manager those spawns keep busy.
    with waiting.awaiting(bench, user_bus, "wait-busy") as awaited:
        throughput = spawning.cli_throughput(bench, plan.cli_sessions)
        busy = waiting.busy_series(awaited.end(), "the CLI throughput run spawned")
    bench.clear(bench.state("throughput-cli"))
    return [throughput, busy]


def clean(bench: Bench) -> None:
    """End whatever this run left: every state directory's sessions, and its units."""
    states = sorted((bench.work / "state").glob("*"))
    for state in states:
        bench.clear(state)
    if not states:
        bench.clear(bench.state("none"))


def run(work: Path, run_id: str, quick: bool) -> int:
    """Run the bench (QUICK: the reduced plan) and write WORK/run.json; 1 if a
    measure failed (the run is written all the same), else 0."""
    started = time.monotonic()
    (work / "out").mkdir(exist_ok=True)
    (work / "state").mkdir(exist_ok=True)
    host = machine.describe()
    say(f"bench: orch {orch.__version__} from {Path(orch.__file__).parent}")
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    with Bus(runtime) as bus, Bus(runtime, user_bus=True) as user_bus:
        bench = Bench(work=work, run_id=run_id, quick=quick, bus=bus)
        try:
            series, failures = measure(bench, user_bus, QUICK if quick else FULL)
        finally:
            clean(bench)
    result = Run(machine=host, quick=quick, duration_s=time.monotonic() - started,
                 series=series, failures=failures)
    (work / "run.json").write_text(dumps(result))
    say(f"bench: done in {result.duration_s:.0f} s"
        + (f", {len(failures)} measure(s) FAILED" if failures else ""))
    return 1 if failures else 0


def cleanup(work: Path, run_id: str) -> None:
    """The safety net after a run, however it ended."""
    with Bus(Path(os.environ["XDG_RUNTIME_DIR"])) as bus:
        clean(Bench(work=work, run_id=run_id, quick=True, bus=bus))
