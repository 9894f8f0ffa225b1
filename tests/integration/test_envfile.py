"""--env-file against systemd itself: for hand-picked and generated files, what orch
reads is what a unit with EnvironmentFile= sees, and a session spawned with
`orch spawn --env-file` sees exactly that too."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from orch import secrets
from orch.errors import UsageError
from tests.envfiles import CASES, ENV_FILES, REFUSED
from tests.integration.conftest import WORK_ROOT, Machine, Orch
from tests.waiting import wait_for

# Prints the program's environment as one JSON line.
DUMP = "import os, json; print(json.dumps(dict(os.environ), sort_keys=True))"


@pytest.fixture(scope="module")
def files() -> Iterator[Path]:
    """A directory every caller can read, for the test's env files."""
    WORK_ROOT.mkdir(mode=0o755, exist_ok=True)
    path = WORK_ROOT / f"envfiles-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o755)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def _write(directory: Path, text: str) -> Path:
    path = directory / f"{uuid.uuid4().hex[:8]}.env"
    path.write_text(text, newline="")
    path.chmod(0o644)
    return path


def _unit_sees(machine: Machine, path: Path | None) -> dict[str, str]:
    """The environment of a plain unit of the system manager with EnvironmentFile=PATH
    (systemd-run is test plumbing here, never the product's way)."""
    props = ["-p", f"EnvironmentFile={path}"] if path is not None else []
    done = machine.run(["systemd-run", "--wait", "--pipe", "--quiet", *props,
                        "/usr/bin/python3", "-c", DUMP])
    assert done.returncode == 0, done.stderr
    seen: dict[str, str] = json.loads(done.stdout)
    return seen


@pytest.fixture(scope="module")
def baseline(machine: Machine) -> dict[str, str]:
    """What a unit sees with no environment file: the manager's own variables."""
    return _unit_sees(machine, None)


def _systemd_reads(machine: Machine, baseline: dict[str, str], path: Path) -> dict[str, str]:
    """The variables systemd took from the file at PATH."""
    seen = _unit_sees(machine, path)
    return {k: v for k, v in seen.items() if k not in baseline}


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(t)[:40] for t, _ in CASES])
def test_hand_picked_files_as_systemd_reads_them(machine: Machine, baseline: dict[str, str],
                                                 files: Path, text: str,
                                                 expected: dict[str, str]) -> None:
    path = _write(files, text)
    assert _systemd_reads(machine, baseline, path) == expected
    assert secrets.parse_env_file(str(path)) == expected


@pytest.mark.parametrize(("text", "line", "why"), REFUSED, ids=[repr(t)[:40] for t, *_ in REFUSED])
def test_what_orch_refuses_systemd_skips_or_guesses_at(
        machine: Machine, baseline: dict[str, str], files: Path, text: str, line: int,
        why: str) -> None:
    # Without the offending line systemd reads the rest as orch would: the line is the
    # whole difference (NUL aside, which no file of a shell's making holds).
    path = _write(files, text)
    with pytest.raises(UsageError):
        secrets.parse_env_file(str(path))
    if "\x00" in text:
        return
    seen = _systemd_reads(machine, baseline, path)
    lines = text.split("\n")
    if "never closed" in why:
        # systemd takes the rest of the file as the value: the later lines vanish.
        assert any("\n" in value or value == "open" for value in seen.values()), seen
        return
    if "comment ending" in why:
        assert seen == {}, seen  # systemd 252 read the next line as comment
        return
    rest = "\n".join(lines[:line - 1] + lines[line:])
    assert seen == secrets.parse_env_text(rest)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ENV_FILES)
def test_generated_files_as_systemd_reads_them(machine: Machine, baseline: dict[str, str],
                                               files: Path, text: str) -> None:
    try:
        ours = secrets.parse_env_text(text)
    except secrets._Refused:
        return  # the refusals are checked above
    path = _write(files, text)
    try:
        assert _systemd_reads(machine, baseline, path) == ours
    finally:
        path.unlink()


def test_a_session_sees_what_an_environment_file_unit_sees(
        orch: Orch, machine: Machine, baseline: dict[str, str], files: Path) -> None:
    # Every hand-picked case in one file, each with names of its own.
    text = "".join(f"# case {i}\n" + t.replace("EF", f"C{i}_EF").replace("EG", f"C{i}_EG")
                   .replace("EH", f"C{i}_EH").replace("EI", f"C{i}_EI")
                   for i, (t, _) in enumerate(CASES) if t.endswith("\n"))
    path = _write(files, text)
    expected = _systemd_reads(machine, baseline, path)
    assert len(expected) > 20 and expected == secrets.parse_env_file(str(path))
    sid = orch.spawn("/usr/bin/python3", "-c", DUMP, opts=["--env-file", str(path)])
    assert orch("wait", "--timeout", "1min", sid).returncode == 0
    line = wait_for(lambda: orch.logs_text(sid).strip(), what="the session's output")
    seen = json.loads(line)
    assert {k: v for k, v in seen.items() if re.match(r"_?C\d+_E", k)} == expected
