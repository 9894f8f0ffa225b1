"""What every measure shares inside the box: the user's environment, a private work
directory (state directories, scratch output), the bench's own bus connection, unit
names, and cleaning up what a measure started (units stopped by name, records reaped)."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.bus import Bus
from bench.timing import Child, run_child, say
from orch.errors import OrchError
from orch.session import Record
from orch.state import StateStore

VENV_BIN = Path(sys.executable).parent
ORCH = str(VENV_BIN / "orch")
PYTHON = str(VENV_BIN / "python")
FLOOR = str(Path(__file__).with_name("floor.py"))
# Units stopped per systemctl call when cleaning up: each stop runs the session's exit
# hook (a Python process), and a thousand at once would crowd two cores and the RAM.
STOP_BATCH = 50


@dataclass
class Bench:
    """The bench as the test user runs it: WORK is its private directory, RUN_ID tags
    the units of this run, BUS is its own connection to the user manager."""

    work: Path
    run_id: str
    quick: bool
    bus: Bus
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def runtime_dir(self) -> Path:
        """The user manager's runtime directory."""
        return Path(os.environ["XDG_RUNTIME_DIR"])

    @property
    def pattern(self) -> str:
        """The glob matching every unit this run starts outside orch."""
        return f"bench-{self.run_id}-*"

    def base_env(self) -> dict[str, str]:
        """The explicit environment every child gets."""
        return {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": os.environ["HOME"],
                "XDG_RUNTIME_DIR": str(self.runtime_dir), "LANG": "C.UTF-8"}

    def state(self, name: str) -> Path:
        """A fresh private state directory for one measure."""
        return self.work / "state" / name

    def orch_env(self, state: Path) -> dict[str, str]:
        """The environment of an orch command using STATE."""
        return {**self.base_env(), "ORCH_STATE_DIR": str(state)}

    def out(self, name: str) -> Path:
        """A scratch path for a child's output."""
        return self.work / "out" / name

    def unit(self, contender: str) -> str:
        """A new unit name for CONTENDER's next start (outside orch)."""
        return f"bench-{self.run_id}-{contender}-{next(self._names)}.service"

    def orch(self, args: Sequence[str], state: Path, check: bool = True,
             out: str = "orch") -> Child:
        """Run `orch ARGS` with STATE as a fresh process."""
        return run_child([ORCH, *args], self.orch_env(state), self.out(out), check=check)

    def systemctl(self, args: Sequence[str], check: bool = True,
                  out: str = "systemctl") -> Child:
        """Run `systemctl --user ARGS`."""
        return run_child(["systemctl", "--user", *args], self.base_env(), self.out(out),
                         check=check)

    @contextmanager
    def library(self, state: Path) -> Iterator[None]:
        """orch's library in this process uses STATE meanwhile."""
        before = os.environ.get("ORCH_STATE_DIR")
        os.environ["ORCH_STATE_DIR"] = str(state)
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("ORCH_STATE_DIR", None)
            else:
                os.environ["ORCH_STATE_DIR"] = before

    def stop_units(self, units: Sequence[str]) -> None:
        """Stop UNITS by name, a batch at a time (a unit already gone is no error)."""
        for start in range(0, len(units), STOP_BATCH):
            self.systemctl(["stop", *units[start:start + STOP_BATCH]], check=False,
                           out="stop")

    def clear(self, state: Path) -> None:
        """End every session recorded in STATE (stopping its unit by name) and reap
        the records; then stop this run's other units."""
        units = [record.unit for record in recorded(state)]
        if units:
            say(f"  cleaning up {len(units)} session(s)")
            started = time.monotonic()
            self.stop_units(units)
            # --all takes the running ones too; --older-than 0 every ended one.
            done = self.orch(["reap", "--all", "--older-than", "0"], state, check=False,
                             out="reap")
            if done.returncode != 0:
                say(f"  orch reap failed in {state}: {done.stderr.strip()}")
            say(f"  cleaned up in {time.monotonic() - started:.0f}s")
        # systemctl matches the glob against loaded units.
        self.systemctl(["stop", self.pattern], check=False, out="stop")
        self.systemctl(["reset-failed", self.pattern], check=False, out="reset")


def recorded(state: Path) -> list[Record]:
    """The session records in STATE, as orch reads them (none if it holds no readable
    state)."""
    try:
        return list(StateStore(state).load().values())
    except OrchError:
        return []
