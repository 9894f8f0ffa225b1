"""The conversation relay, run as the unit runs it: the agent's output passes through
whole and in order, its exit status is the program's, and each turn's end is told."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orch import convhold, events
from orch.session import Record
from orch.state import StateStore

SESSION = "0a1b2c3d-0000-4000-8000-000000000001"
RESULT = '{"type":"result","subtype":"success","is_error":false,"result":"hi"}'


def _run(state_dir: Path, script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "ORCH_SESSION_ID": SESSION, "ORCH_SCOPE": "user",
           "XDG_RUNTIME_DIR": str(tmp_path / "run"), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return subprocess.run([sys.executable, "-I", convhold.__file__, str(state_dir), "/bin/sh",
                           "sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_output_passes_through_and_each_turn_end_is_told(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    record = Record(id=SESSION, name="talk", unit="orch-talk-0a1b2c3d.service", scope="user",
                    argv=["claude"], cwd="/", provider="claude", agent={"interactive": True})
    store.update(lambda s: s.__setitem__(SESSION, record))
    long_line = "x" * 200_000  # more than the relay reads at once
    done = _run(store.directory, f"echo one; echo '{RESULT}'; head -c 200000 /dev/zero | "
                f"tr '\\0' x; echo; echo '{RESULT}'; printf 'last without newline'; exit 3",
                tmp_path)
    assert done.returncode == 3  # the agent's own status
    assert done.stdout == f"one\n{RESULT}\n{long_line}\n{RESULT}\nlast without newline"
    told = [(e.session_id, e.event, e.status) for e in events.read(store.directory)]
    assert told == [(SESSION, "idle", "idle")] * 2
    assert done.stderr == ""


def test_a_session_it_does_not_know_is_relayed_and_nothing_told(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    done = _run(state, f"echo '{RESULT}'", tmp_path)
    assert (done.returncode, done.stdout) == (0, RESULT + "\n")
    assert events.read(state) == []


def test_a_program_that_cannot_run_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-I", convhold.__file__, str(tmp_path),
                           "/nonexistent/agent", "agent"], capture_output=True, text=True,
                          timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 127
    assert done.stderr == "orch: cannot run /nonexistent/agent: No such file or directory\n"
    usage = subprocess.run([sys.executable, "-I", convhold.__file__], capture_output=True,
                           text=True, timeout=60, check=False)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: convhold.py")

