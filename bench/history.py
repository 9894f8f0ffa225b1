"""Cost against history: `orch spawn -- /bin/true` with 1,000 ended sessions in the
state against none, and `orch ps --running` with 10,000 ended sessions against none
(the same few running sessions in both). The issue asks that each stay flat: at most
1.2 times its cost with no history, in the same run.

The ended sessions are written straight into the state by orch's own writer
(orch.state.StateStore, in the state's own format), as copies of one real session's
record taken after its unit ended, each with an id and unit name of its own: no unit
is started for them, and their units are never loaded. They are removed the same way
afterwards, so the clean-up stops only the units that really ran."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orch
from bench.context import Bench, recorded
from bench.series import (
    HISTORY_PS,
    HISTORY_SPAWN,
    LIST_WITH_HISTORY,
    SPAWN_WITH_HISTORY,
    TRUE,
    Contender,
    Series,
    Unit,
    with_history,
)
from bench.timing import round_robin, say
from orch.ids import new_session_id
from orch.session import Record
from orch.state import StateStore
from orch.units import unit_name

LIVE = 10  # running sessions in both states `ps --running` lists
LIVE_ARGV = ["/bin/sleep", "3600"]  # outlives the whole run


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def ended_copies(template: Record, count: int) -> list[Record]:
    """COUNT records like TEMPLATE (an ended session's), each with its own id and the
    unit name orch would give it."""
    if template.ending() is None:
        raise ValueError(f"session {template.id} has no ending recorded")
    copies = []
    for _ in range(count):
        session_id = new_session_id()
        copies.append(dataclasses.replace(template, id=session_id,
                                          unit=unit_name(template.name, session_id)))
    return copies


def add_records(state: Path, records: Sequence[Record]) -> None:
    """Write RECORDS into STATE with orch's own writer (one change: a new snapshot)."""
    StateStore(state).update(lambda sessions: sessions.update((r.id, r) for r in records))


def drop_records(state: Path, ids: frozenset[str]) -> None:
    """Remove the records IDS from STATE with orch's own writer."""
    def drop(sessions: dict[str, Record]) -> None:
        for session_id in ids & sessions.keys():
            del sessions[session_id]
    StateStore(state).update(drop)


def _template(bench: Bench) -> Record:
    """A real session's record after its unit ended: one /bin/true through the library,
    its unit waited for until collected (its exit hook, which records the end, done)."""
    state = bench.state("history-template")
    patterns = ["orch-true-*"]
    before = frozenset(bench.bus.loaded(patterns))
    with bench.library(state):
        session = orch.spawn(["/bin/true"])
    bench.bus.settle(patterns, ignore=before)
    [record] = [r for r in recorded(state) if r.id == session.id]
    if record.ending() is None:
        raise RuntimeError(f"session {record.id} ended without its end recorded")
    bench.clear(state)
    return record


def _spawn_turns(bench: Bench, states: dict[str, Path]) -> dict[str, Callable[[int], float]]:
    def turn(state: Path) -> Callable[[int], float]:
        return lambda index: _ms(bench.orch(["spawn", "--", TRUE], state, out="spawn").wall_s)
    return {contender: turn(state) for contender, state in states.items()}


def _keep_only(states: dict[Path, frozenset[str]], bench: Bench) -> Callable[[], None]:
    """What runs, untimed, after each spawn turn: once that unit has ended and been
    collected, each state goes back to the records it held (so every turn meets the
    same history, and none pays for another's exit hook)."""
    patterns = ["orch-true-*"]
    before = frozenset(bench.bus.loaded(patterns))

    def between() -> None:
        bench.bus.settle(patterns, ignore=before)
        for state, keep in states.items():
            extra = frozenset(r.id for r in recorded(state)) - keep
            if extra:
                drop_records(state, extra)
    return between


def spawning(bench: Bench, template: Record, count: int, rounds: int) -> list[Series]:
    """`orch spawn -- /bin/true` into a state with no records and into one with COUNT
    ended ones, ROUNDS rounds interleaved after a warm-up round."""
    none, full = bench.state("history-spawn-none"), bench.state("history-spawn-full")
    none.mkdir(mode=0o700, parents=True, exist_ok=True)
    history = ended_copies(template, count)
    add_records(full, history)
    ids = frozenset(r.id for r in history)
    reference = with_history(Contender.CLI, 0)
    states = {reference: none, with_history(Contender.CLI, count): full}
    between = _keep_only({none: frozenset(), full: ids}, bench)
    say(f"{SPAWN_WITH_HISTORY}: {rounds} rounds, 0 and {count} records")
    try:
        turns = _spawn_turns(bench, states)
        round_robin(turns, 1, between=between)  # warm-up
        samples = round_robin(turns, rounds, between=between, progress="history spawn")
    finally:
        drop_records(full, ids)
        bench.clear(none)
        bench.clear(full)
    return [Series(SPAWN_WITH_HISTORY, contender, Unit.MS, values, reference=reference,
                   detail={"records": 0 if contender == reference else count})
            for contender, values in samples.items()]


def _check_running(bench: Bench, state: Path) -> None:
    child = bench.orch(["ps", "--running", "--json"], state, out="ps-running")
    sessions = json.loads(child.stdout)
    if len(sessions) != LIVE or any(s["status"] != "running" for s in sessions):
        raise RuntimeError(f"orch ps --running lists {len(sessions)} session(s) in {state}; "
                           f"expected {LIVE} running")


def listing(bench: Bench, template: Record, count: int, rounds: int) -> list[Series]:
    """`orch ps --running` over LIVE running sessions, alone and beside COUNT ended
    ones, ROUNDS rounds interleaved."""
    none, full = bench.state("history-ps-none"), bench.state("history-ps-full")
    history = ended_copies(template, count)
    ids = frozenset(r.id for r in history)
    reference = with_history(Contender.PS_RUNNING, 0)
    states = {reference: none, with_history(Contender.PS_RUNNING, count): full}
    try:
        for state in (none, full):
            with bench.library(state):
                for _ in range(LIVE):
                    orch.spawn(LIVE_ARGV)
                    bench.bus.drain()
        add_records(full, history)
        for state in (none, full):
            _check_running(bench, state)
        say(f"{LIST_WITH_HISTORY}: {rounds} rounds, {LIVE} running and 0 or {count} ended")

        def turn(state: Path) -> Callable[[int], float]:
            return lambda index: _ms(bench.orch(["ps", "--running"], state,
                                                out="ps-running").wall_s)
        started = time.monotonic()
        samples = round_robin({c: turn(s) for c, s in states.items()}, rounds,
                              progress="history ps")
        say(f"  in {time.monotonic() - started:.0f}s")
    finally:
        drop_records(full, ids)
        bench.clear(none)
        bench.clear(full)
    return [Series(LIST_WITH_HISTORY, contender, Unit.MS, values, reference=reference,
                   detail={"running": LIVE, "ended": 0 if contender == reference else count})
            for contender, values in samples.items()]


def measures(bench: Bench, rounds: int) -> list[Series]:
    """Both measures against history, ROUNDS rounds each."""
    template = _template(bench)
    return [*spawning(bench, template, HISTORY_SPAWN, rounds),
            *listing(bench, template, HISTORY_PS, rounds)]
