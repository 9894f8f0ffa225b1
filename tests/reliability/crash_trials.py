"""Crash trials, run inside the box as the session owner (see test_crashes.py).

Each trial runs one orch command (spawn, recover or reap) that kill -9s itself at a
crash point (orch.faults: ORCH_CRASH_AT), then checks what is left:

- the state parses, read afresh as orch reads it;
- every loaded unit of the trial's sessions is named by exactly one record, or is by
  the next (uncrashed) `orch recover`;
- after that recover, no session `orch ps` calls running has its unit gone.

Prints one JSON document: the counts, and every invariant violated (with the trial).
Usage: crash_trials.py WORK_DIR TRIALS SEED
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from orch.errors import OrchError
from orch.scope import Scope
from orch.state import StateStore
from orch.systemd import Manager

ORCH = str(Path(sys.executable).parent / "orch")
SPAWN_POINTS = ("spawn.recorded", "launch.submitted", "launch.synced", "launch.started",
                "launch.confirmed")
RECOVER_POINTS = ("recover.decided", "recover.archived", "recover.adopting",
                  "launch.submitted", "launch.started", "launch.confirmed")
REAP_POINTS = ("reap.stopped", "reap.reset")
TIME_LIMIT_S = 600.0


class World:
    """One state directory and the label its sessions' units carry."""

    def __init__(self, directory: Path, label: str) -> None:
        self.directory = directory
        self.label = label

    def env(self, crash_at: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "ORCH_CRASH_AT"}
        env["ORCH_STATE_DIR"] = str(self.directory)
        if crash_at:
            env["ORCH_CRASH_AT"] = crash_at
        return env

    def orch(self, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ORCH, *args], env=self.env(crash_at), capture_output=True,
                              text=True, timeout=120, check=False, cwd="/")

    def records(self) -> dict[str, Any]:
        """The records, read by a fresh store (nothing cached from earlier reads)."""
        return dict(StateStore(self.directory).load())

    def units(self) -> set[str]:
        with Manager(Scope.USER) as manager:
            return set(manager.loaded(f"orch-{self.label}-*"))


def check(world: World, trial: str, violations: list[str], stats: Counter[str],
          unrecorded: set[str]) -> None:
    """The invariants after a crash (see the module's docstring). UNRECORDED: units whose
    record the trial itself removed."""
    try:
        records = world.records()
    except OrchError as err:
        violations.append(f"{trial}: the state does not load: {err}")
        return
    named = Counter(r.unit for r in records.values())
    if twice := [u for u, n in named.items() if n > 1]:
        violations.append(f"{trial}: units named by two records: {twice}")
    orphans = world.units() - set(named)
    if orphans:
        stats["units without a record after the crash"] += 1
        if orphans - unrecorded:
            stats["... whose record the trial had not removed"] += 1
    done = world.orch("recover")
    if done.returncode != 0:
        violations.append(f"{trial}: recover after the crash failed: {done.stderr.strip()}")
        return
    if orphans:
        stats["recovers that had to adopt"] += 1
        left = world.units() - {r.unit for r in world.records().values()}
        if left:
            violations.append(f"{trial}: units with no record after recover: {sorted(left)}")
    listed = world.orch("ps", "--json")
    if listed.returncode != 0:
        violations.append(f"{trial}: ps after recover failed: {listed.stderr.strip()}")
        return
    loaded = world.units()
    for session in json.loads(listed.stdout):
        if session["status"] == "running" and session["unit"] not in loaded:
            violations.append(f"{trial}: {session['id']} reads as running, its unit is gone")


def spawn(world: World, rng: random.Random,
          crash_at: str | None) -> subprocess.CompletedProcess[str]:
    persistent = ["--persistent"] if rng.random() < 0.5 else []
    return world.orch("spawn", "--name", world.label, *persistent, "--",
                      "/bin/sleep", "600", crash_at=crash_at)


def prepare_recover(world: World, rng: random.Random, adopt: bool) -> set[str]:
    """Give recover something to do: a persistent session stopped behind orch's back
    (recover restarts it) and, if ADOPT or half the time, a unit whose record was lost
    (recover adopts it): that unit."""
    spawn(world, rng, None)
    persistent = world.orch("spawn", "--name", world.label, "--persistent", "--",
                            "/bin/sleep", "600").stdout.strip()
    records = world.records()
    with Manager(Scope.USER) as manager:
        manager.stop(records[persistent].unit)
        running = {unit for unit, (_, (_, active, _, _)) in
                   manager.loaded(f"orch-{world.label}-*").items() if active == "active"}
    if not adopt and rng.random() >= 0.5:
        return set()
    # A record of an ended session leaves recover no unit to adopt: one that runs does.
    victim = rng.choice(sorted(i for i, r in records.items()
                               if i != persistent and r.unit in running))
    StateStore(world.directory).update(lambda s: s.pop(victim, None))
    return {records[victim].unit}


def main() -> None:
    work, trials, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    main_world = World(work / "state", f"crash{seed % 10_000:04d}")
    worlds = [main_world]
    violations: list[str] = []
    stats: Counter[str] = Counter()
    by_point: Counter[str] = Counter()
    started = time.monotonic()
    # Every point twice first, whatever the seed draws after.
    planned = [(kind, point) for kind, points in (("spawn", SPAWN_POINTS),
                                                  ("recover", RECOVER_POINTS),
                                                  ("reap", REAP_POINTS),
                                                  ("snapshot", ("state.snapshot",)))
               for point in points] * 2
    for n in range(trials):
        if time.monotonic() - started > TIME_LIMIT_S:
            stats["stopped at the time limit"] += 1
            break
        if n < len(planned):
            kind, chosen = planned[n]
        else:
            kind = rng.choices(["spawn", "recover", "reap", "snapshot"], [5, 3, 2, 1])[0]
            chosen = rng.choice({"spawn": SPAWN_POINTS, "recover": RECOVER_POINTS,
                                 "reap": REAP_POINTS, "snapshot": ("state.snapshot",)}[kind])
        world, unrecorded = main_world, set()
        if kind == "spawn":
            point = f"{chosen}:1"
            done = spawn(world, rng, point)
        elif kind == "recover":
            unrecorded = prepare_recover(world, rng, adopt=chosen == "recover.adopting")
            point = f"{chosen}:1"
            done = world.orch("recover", crash_at=point)
        elif kind == "reap":
            for _ in range(rng.randint(1, 3)):
                spawn(world, rng, None)
            live = len(world.records())
            # reap.stopped is passed once, after the batch; reap.reset once a session.
            point = f"{chosen}:{rng.randint(1, max(1, live)) if chosen == 'reap.reset' else 1}"
            done = world.orch("reap", "--all", "--older-than", "0", crash_at=point)
        else:  # the first write to a new state directory makes its snapshot
            world = World(work / f"snapshot-{n}", f"snap{seed % 10_000:04d}x{n}")
            worlds.append(world)
            point = "state.snapshot:1"
            done = spawn(world, rng, point)
        trial = f"trial {n} ({kind}, {point})"
        stats["trials"] += 1
        if done.returncode == -9:
            stats["crashed"] += 1
            by_point[point.split(":")[0]] += 1
        else:
            stats[f"ran through ({kind})"] += 1
            if done.returncode != 0:
                violations.append(f"{trial}: exited {done.returncode}: {done.stderr.strip()}")
        if "Traceback" in done.stderr:
            violations.append(f"{trial}: a traceback: {done.stderr.strip()[-300:]}")
        check(world, trial, violations, stats, unrecorded)
        if kind == "snapshot":
            world.orch("reap", "--all", "--older-than", "0")
        elif n % 20 == 19:
            main_world.orch("reap", "--all", "--older-than", "0")
    for world in worlds:
        world.orch("reap", "--all", "--older-than", "0")
    leftover = {w.label: sorted(w.units()) for w in worlds if w.units()}
    print(json.dumps({"stats": stats, "by_point": by_point, "violations": violations,
                      "leftover_units": leftover,
                      "seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
