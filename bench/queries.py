"""Reading sessions back at N live sessions: `orch ps`, `orch show` and `orch recover`
against systemctl's own listing and a loop of one `systemctl show` per unit (how another
orchestrator reads liveness). The population is grown with orch's library, which is
also the library's spawn throughput."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence

import orch
from bench import web
from bench.context import FLOOR, PYTHON, Bench, recorded
from bench.series import (
    THROUGHPUT,
    Contender,
    Series,
    Unit,
    listing_at,
    recovering_at,
    serving_at,
    showing_at,
)
from bench.timing import round_robin, run_child, say
from orch.state import STATE_FILE

POPULATION_ARGV = ["/bin/sleep", "3600"]  # outlives the whole run


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _check_ps(text: str, n: int) -> None:
    sessions = json.loads(text)
    running = sum(1 for s in sessions if s["status"] == "running")
    if len(sessions) != n or running != n:
        raise RuntimeError(f"orch ps lists {len(sessions)} session(s), {running} running; "
                           f"expected {n} running")


def query_turns(bench: Bench, n: int) -> dict[str, Callable[[int], float]]:
    """One read of the N live sessions in the population per contender, in ms."""
    state = bench.state("population")
    records = recorded(state)
    units = [record.unit for record in records]
    picks = random.Random(n).sample(records, k=len(records))  # a different one each round
    show_loop_argv = ["systemctl", "--user", "show", "-p", "MainPID", "-p", "ActiveState"]

    def ps(index: int) -> float:
        child = bench.orch(["ps", "--json"], state, out="ps")
        if index == 0:
            _check_ps(child.stdout, n)
        return _ms(child.wall_s)

    def show(index: int) -> float:
        return _ms(bench.orch(["show", picks[index % n].id], state, out="show").wall_s)

    def floor_list(index: int) -> float:
        child = run_child([PYTHON, FLOOR, "list", "orch-*"], bench.base_env(),
                          bench.out("floor-list"))
        if index == 0 and len(child.stdout.splitlines()) < n:
            raise RuntimeError(f"the floor lists {len(child.stdout.splitlines())} units, "
                               f"fewer than the {n} sessions")
        return _ms(child.wall_s)

    def floor_list_json(index: int) -> float:
        # orch's snapshot alone (not its log): the floor reads no more than orch does.
        child = run_child([PYTHON, FLOOR, "list-json", str(state / STATE_FILE), "orch-*"],
                          bench.base_env(), bench.out("floor-list-json"))
        return _ms(child.wall_s)

    def list_units(index: int) -> float:
        return _ms(bench.systemctl(["list-units", "--no-pager", "orch-*"], out="list").wall_s)

    def show_one(index: int) -> float:
        unit = picks[index % n].unit
        return _ms(run_child([*show_loop_argv, unit], bench.base_env(),
                             bench.out("show-one")).wall_s)

    def show_loop(index: int) -> float:
        start = time.perf_counter()
        for unit in units:
            child = run_child([*show_loop_argv, unit], bench.base_env(), bench.out("loop"))
            if index == 0 and "ActiveState=active" not in child.stdout:
                raise RuntimeError(f"{unit} is not active: {child.stdout!r}")
        return _ms(time.perf_counter() - start)

    def recover(index: int) -> float:
        return _ms(bench.orch(["recover"], state, out="recover").wall_s)

    return {Contender.PS: ps, Contender.LIST_UNITS: list_units, Contender.SHOW_LOOP: show_loop,
            Contender.SHOW: show, Contender.SHOW_ONE: show_one, Contender.RECOVER: recover,
            Contender.FLOOR_LIST: floor_list, Contender.FLOOR_LIST_JSON: floor_list_json}


MEASURE_OF: dict[str, tuple[Callable[[int], str], str | None]] = {
    Contender.PS: (listing_at, Contender.LIST_UNITS),
    Contender.LIST_UNITS: (listing_at, Contender.LIST_UNITS),
    Contender.FLOOR_LIST: (listing_at, Contender.LIST_UNITS),
    Contender.FLOOR_LIST_JSON: (listing_at, Contender.LIST_UNITS),
    Contender.SHOW_LOOP: (listing_at, Contender.LIST_UNITS),
    Contender.SHOW: (showing_at, Contender.SHOW_ONE),
    Contender.SHOW_ONE: (showing_at, Contender.SHOW_ONE),
    Contender.RECOVER: (recovering_at, None),
}


def population(bench: Bench, sizes: Sequence[int], rounds: int) -> tuple[Series, list[Series]]:
    """Grow a population of sleeping sessions with orch.spawn to each of SIZES and read
    it back at each size; the library's spawn throughput over the whole growth, and the
    series of each read at each size (ordered by measure, then size)."""
    state = bench.state("population")
    spawn_ms: list[float] = []
    found: dict[tuple[Callable[[int], str], int], list[Series]] = {}
    for n in sizes:
        say(f"population: growing to {n} sessions with orch.spawn")
        with bench.library(state):
            while len(spawn_ms) < n:
                start = time.perf_counter()
                orch.spawn(POPULATION_ARGV)
                spawn_ms.append(_ms(time.perf_counter() - start))
                bench.bus.drain()
        turns = query_turns(bench, n)
        say(f"reads at N={n}: {rounds} rounds of {len(turns)} contenders")
        samples = round_robin(turns, rounds, progress=f"N={n}")
        for contender, values in samples.items():
            measure, reference = MEASURE_OF[contender]
            found.setdefault((measure, n), []).append(
                Series(measure(n), contender, Unit.MS, values, reference=reference))
        if n == max(sizes):
            found[(serving_at, n)] = web.listing(bench, state, n, rounds)
    spawned = len(spawn_ms)
    wall = sum(spawn_ms) / 1000.0
    throughput = Series(THROUGHPUT, Contender.LIB, Unit.RATE, [spawned / wall],
                        reference=Contender.LIB,
                        detail={"sessions": spawned, "wall_s": wall, "spawn_ms": spawn_ms,
                                "note": f"{spawned} sessions one after another in one "
                                        f"process, {wall:.1f} s spent in orch.spawn"})
    bench.clear(state)
    ordered = [found[(measure, n)] for measure in (listing_at, showing_at, recovering_at,
                                                   serving_at)
               for n in sizes if (measure, n) in found]
    return throughput, [series for group in ordered for series in group]
