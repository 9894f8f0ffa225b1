"""Spawn latency, contender by contender, and spawn throughput through the CLI.

What each contender's call waits for (bench/README.md says it again):
- raw StartTransientUnit: the method reply, then the start job's JobRemoved signal on
  the same open connection (Type=exec: the job ends once the program was executed);
- pystemd.run: its own new connection (through the user's dbus-daemon), the method
  reply and a load of the unit's properties; not the job;
- systemd-run --user --collect -p Type=exec: a new process, the method reply and the
  start job's removal (systemd-run waits for the job unless --no-block);
- orch.spawn (library): what orch.api.spawn does (a new connection per call, the
  record written, the start job's JobRemoved, the unit's properties read, the record
  confirmed);
- orch spawn (CLI): the same, in a fresh process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pystemd.run

import orch
from bench.context import FLOOR, ORCH, PYTHON, Bench
from bench.series import SLEEP, THROUGHPUT, TRUE, Contender, Series, Unit, spawn_latency
from bench.timing import ChildFailed, round_robin, run_child, say

COMMANDS: dict[str, list[str]] = {TRUE: ["/bin/true"], SLEEP: ["/bin/sleep", "1000"]}
CLI_WORKERS = 8
# The quiet before each turn in the idle regime: on a microVM whose idle vCPUs halt at
# once, a start after 30 ms or more of quiet costs several times one back to back.
IDLE_S = 0.1
NOTES: dict[str, str] = {
    Contender.PYSTEMD: "waits for the method reply only (not the start job), over a new "
                       "connection through the user's dbus-daemon",
    Contender.SYSTEMD_RUN: "run with -p Type=exec, as orch's units are",
}


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def spawn_turns(bench: Bench, argv: Sequence[str]) -> dict[str, Callable[[int], float]]:
    """One spawn of ARGV per contender, each returning its latency in ms."""
    state = bench.state("latency")
    floor_state = bench.state("floor-json")
    floor_state.mkdir(mode=0o700, exist_ok=True)

    def raw(index: int) -> float:
        unit = bench.unit("raw")
        bench.bus.drain()
        start = time.perf_counter()
        result = bench.bus.start_transient(unit, argv)
        took = time.perf_counter() - start
        if result != "done":
            raise RuntimeError(f"raw start of {unit}: job {result}")
        return _ms(took)

    def pystemd_run(index: int) -> float:
        unit = bench.unit("pystemd")
        start = time.perf_counter()
        pystemd.run([a.encode() for a in argv], user_mode=True, name=unit.encode(),
                    collect=True)
        return _ms(time.perf_counter() - start)

    def systemd_run(index: int) -> float:
        unit = bench.unit("systemd-run")
        child = run_child(["systemd-run", "--user", "--collect", "--quiet", "-p", "Type=exec",
                           f"--unit={unit}", *argv], bench.base_env(), bench.out("systemd-run"))
        return _ms(child.wall_s)

    def floor(index: int) -> float:
        unit = bench.unit("floor")
        child = run_child([PYTHON, FLOOR, "start", unit, *argv], bench.base_env(),
                          bench.out("floor"))
        return _ms(child.wall_s)

    def floor_json(index: int) -> float:
        unit = bench.unit("floorjson")
        child = run_child([PYTHON, FLOOR, "start-json", str(floor_state), unit, *argv],
                          bench.base_env(), bench.out("floor-json"))
        return _ms(child.wall_s)

    def library(index: int) -> float:
        with bench.library(state):
            start = time.perf_counter()
            orch.spawn(list(argv))
            return _ms(time.perf_counter() - start)

    def cli(index: int) -> float:
        return _ms(bench.orch(["spawn", "--", *argv], state, out="spawn").wall_s)

    return {Contender.RAW: raw, Contender.PYSTEMD: pystemd_run,
            Contender.SYSTEMD_RUN: systemd_run, Contender.FLOOR_START: floor,
            Contender.FLOOR_START_JSON: floor_json,
            Contender.LIB: library, Contender.CLI: cli}


def _between(bench: Bench, command: str, idle_s: float) -> Callable[[], None]:
    """What runs, untimed, after each turn: a /bin/true unit ends at once and its exit
    hook runs, so let that finish (and the unit go) before the next turn, so nobody pays
    for another's; then IDLE_S of quiet."""
    patterns = [bench.pattern, "orch-true-*"]
    # Units of that name from outside the run (another user of this manager) are theirs.
    before = frozenset(bench.bus.loaded(patterns))

    def between() -> None:
        if command == TRUE:
            bench.bus.settle(patterns, ignore=before)
        if idle_s:
            time.sleep(idle_s)
    return between


def latency(bench: Bench, rounds: int, idle_rounds: int) -> list[Series]:
    """Spawn latency of /bin/true and of a sleeping process, ROUNDS rounds of the
    contenders interleaved, after one warm-up round that is not counted; then
    IDLE_ROUNDS of /bin/true with IDLE_S of quiet before every turn."""
    series: list[Series] = []
    state = bench.state("latency")
    regimes = [(TRUE, rounds, 0.0), (SLEEP, rounds, 0.0), (TRUE, idle_rounds, IDLE_S)]
    for command, count, idle_s in regimes:
        if not count:
            continue
        turns = spawn_turns(bench, COMMANDS[command])
        between = _between(bench, command, idle_s)
        measure = spawn_latency(command if not idle_s else
                                f"{command}, each after {idle_s * 1000:.0f} ms idle")
        say(f"{measure}: {count} rounds of {len(turns)} contenders")
        round_robin(turns, 1, between=between)  # warm-up
        samples = round_robin(turns, count, between=between, progress=command)
        for contender, values in samples.items():
            detail = {"note": NOTES[contender]} if contender in NOTES else {}
            series.append(Series(measure, contender, Unit.MS, values,
                                 reference=Contender.RAW, detail=detail))
        bench.clear(state)
    return series


def cli_throughput(bench: Bench, total: int) -> Series:
    """TOTAL sleeping sessions spawned by CLI_WORKERS concurrent loops of `orch spawn`
    (each a fresh process), into the state "throughput-cli" (left running: the caller
    cleans up); sessions per second of wall time."""
    state = bench.state("throughput-cli")
    each = total // CLI_WORKERS
    env = bench.orch_env(state)
    latencies: list[list[float]] = [[] for _ in range(CLI_WORKERS)]
    errors: list[str] = []

    def worker(slot: int) -> None:
        for _ in range(each):
            try:
                child = run_child([ORCH, "spawn", "--", *COMMANDS[SLEEP]], env,
                                  bench.out(f"cli-throughput-{slot}"))
            except ChildFailed as err:  # reported with the result: one must not end all
                errors.append(str(err))
                continue
            latencies[slot].append(_ms(child.wall_s))

    say(f"spawn throughput: {CLI_WORKERS} CLI processes x {each}")
    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(CLI_WORKERS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(timeout=0.5)
            bench.bus.drain()  # keep the bench's own connection read meanwhile
    wall = time.perf_counter() - start
    done = sum(len(x) for x in latencies)
    if not done:
        raise ChildFailed(f"every CLI spawn failed; first: {errors[0]}")
    note = f"{done} sessions in {wall:.1f} s of wall time"
    if errors:
        say(f"  {len(errors)} CLI spawn(s) FAILED; first: {errors[0]}")
        note += f"; {len(errors)} of {done + len(errors)} spawns FAILED, first: {errors[0]}"
    return Series(THROUGHPUT, Contender.CLI_8, Unit.RATE, [done / wall],
                  reference=Contender.LIB,
                  detail={"sessions": done, "wall_s": wall, "spawn_ms": latencies,
                          "failed": len(errors), "errors": errors[:20], "note": note})
