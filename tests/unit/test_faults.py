"""The test-only crash points: where they are, and that one kills at the pass it names."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orch import faults

PACKAGE = Path(faults.__file__).parent
PASS_THREE_TIMES = (
    "from orch import faults\n"
    "for n in range(3):\n"
    "    print(n, flush=True)\n"
    "    faults.point('spawn.recorded')\n"
)


def run(target: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORCH_CRASH_AT"}
    if target is not None:
        env["ORCH_CRASH_AT"] = target
    return subprocess.run([sys.executable, "-c", PASS_THREE_TIMES], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_without_the_variable_nothing_dies() -> None:
    done = run(None)
    assert (done.returncode, done.stdout.split()) == (0, ["0", "1", "2"])


@pytest.mark.parametrize(("target", "printed"), [
    ("spawn.recorded", ["0"]), ("spawn.recorded:1", ["0"]), ("spawn.recorded:2", ["0", "1"])])
def test_the_named_pass_is_killed_as_kill_9_would(target: str, printed: list[str]) -> None:
    done = run(target)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == printed


def test_another_point_or_a_later_pass_leaves_it_running() -> None:
    for target in ("launch.synced", "spawn.recorded:4"):
        assert run(target).returncode == 0, target


def test_every_listed_point_is_placed_once_and_every_placed_one_is_listed() -> None:
    placed: list[str] = []
    for source in PACKAGE.rglob("*.py"):  # the use cases live in a subpackage
        placed += re.findall(r'faults\.point\("([^"]+)"\)', source.read_text())
    assert sorted(placed) == sorted(faults.POINTS)
