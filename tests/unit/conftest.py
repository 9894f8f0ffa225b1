"""Shared setup for the unit tests: no test touches the caller's real home or state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from orch.runtime import Runtime
from orch.scope import Scope
from tests.unit.fakemanager import FakeManager, runtime

# No example database: it would leave a .hypothesis directory in the checkout.
settings.register_profile("orch-unit", database=None, deadline=None)
settings.load_profile("orch-unit")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ORCH_STATE_DIR and the XDG directories at a fresh temp dir; return the state dir."""
    base = tmp_path_factory.mktemp("env")
    state_dir = base / "orch-state"
    monkeypatch.setenv("ORCH_STATE_DIR", str(state_dir))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))
    return state_dir


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeManager:
    """A fake systemd manager (tests/unit/fakemanager.py) for the use cases, outside any
    session, with a runtime directory of its own."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("ORCH_SESSION_ID", raising=False)
    return FakeManager()


@pytest.fixture
def rt(fake: FakeManager, isolated_env: Path) -> Runtime:
    """A use case's runtime over FAKE and the test's own state directory."""
    return runtime(fake, isolated_env)


@pytest.fixture
def claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `claude` on PATH (never run: the fake manager starts nothing)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "claude"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return program


# ssh hands its last argument to the remote user's shell; this one is local. Its
# arguments are logged one per line, a blank line after each run.
FAKE_SSH = """#!/bin/sh
for word; do printf '%s\\n' "$word" >> "$SSH_LOG"; done
echo >> "$SSH_LOG"
for last; do :; done
exec sh -c "$last"
"""


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ssh first on PATH (its directory, tmp_path/bin, comes first); the file
    its runs' arguments are logged in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(FAKE_SSH)
    (bin_dir / "ssh").chmod(0o755)
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("SSH_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(Scope, "default", classmethod(lambda cls: Scope.USER))
    return log
