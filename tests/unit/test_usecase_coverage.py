"""The use cases' logic is tested without systemd: the unit tests of orch/usecases (on
tests/unit/fakemanager.py) cover at least 80% of their lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEAST = 80.0


def test_the_use_case_unit_tests_cover_the_use_cases(tmp_path: Path) -> None:
    data = tmp_path / "coverage"
    env = {"COVERAGE_FILE": str(data), "PATH": "/usr/bin:/bin"}
    tests = sorted(str(p) for p in (ROOT / "tests" / "unit").glob("test_usecase_*.py")
                   if p.name != Path(__file__).name)
    subprocess.run([sys.executable, "-m", "coverage", "run", "--source=orch/usecases",
                    "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=300)
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "coverage", "json", "-o", str(report)], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=60)
    files = json.loads(report.read_text())["files"]
    modules = {Path(name).name: data["summary"]["percent_covered"]
               for name, data in files.items()}
    assert {"spawn.py", "query.py", "control.py", "recover.py", "reap.py"} <= set(modules)
    low = {name: round(percent, 1) for name, percent in modules.items() if percent < LEAST}
    assert not low, f"use-case modules under {LEAST}% line coverage by unit tests: {low}"
