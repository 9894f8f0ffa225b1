"""The XDG directories orch reads: an absolute path is used, a relative one is ignored
(the XDG Base Directory spec calls it invalid) and the default taken instead."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from orch import secrets, unitfiles
from orch.scope import Scope

HOME = Path("/home/someone")
WHERE: list[tuple[str, Callable[[], Path], Path, Path]] = [
    # variable, what orch derives from it, then from an absolute value and from the default
    ("XDG_STATE_HOME", Scope.USER.state_dir, Path("/abs/orch"),
     HOME / ".local" / "state" / "orch"),
    ("XDG_CONFIG_HOME", Scope.USER.config_path, Path("/abs/orch/config.toml"),
     HOME / ".config" / "orch" / "config.toml"),
    ("XDG_CONFIG_HOME", lambda: unitfiles.unit_dir(Scope.USER), Path("/abs/systemd/user"),
     HOME / ".config" / "systemd" / "user"),
    ("XDG_RUNTIME_DIR", Scope.USER.runtime_dir, Path("/abs"), Path(f"/run/user/{os.geteuid()}")),
    ("XDG_RUNTIME_DIR", lambda: secrets.secrets_dir(Scope.USER), Path("/abs/orch/secrets"),
     Path(f"/run/user/{os.geteuid()}/orch/secrets")),
]


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(HOME))
    monkeypatch.delenv("ORCH_STATE_DIR", raising=False)
    monkeypatch.delenv("ORCH_CONFIG", raising=False)


@pytest.mark.parametrize(("variable", "derive", "absolute", "default"), WHERE)
@pytest.mark.parametrize("relative", ["relative/dir", ".", "~/x", "abs"])
def test_a_relative_xdg_directory_is_ignored(monkeypatch: pytest.MonkeyPatch, variable: str,
                                             derive: Callable[[], Path], absolute: Path,
                                             default: Path, relative: str) -> None:
    monkeypatch.setenv(variable, relative)
    assert derive() == default


@pytest.mark.parametrize(("variable", "derive", "absolute", "default"), WHERE)
def test_an_absolute_xdg_directory_is_used_and_an_empty_one_is_not(
        monkeypatch: pytest.MonkeyPatch, variable: str, derive: Callable[[], Path],
        absolute: Path, default: Path) -> None:
    monkeypatch.setenv(variable, "/abs")
    assert derive() == absolute
    monkeypatch.setenv(variable, "")
    assert derive() == default
    monkeypatch.delenv(variable)
    assert derive() == default


@pytest.mark.parametrize(("variable", "derive"), [
    ("ORCH_STATE_DIR", Scope.USER.state_dir), ("ORCH_STATE_DIR", Scope.SYSTEM.state_dir),
    ("ORCH_CONFIG", Scope.USER.config_path), ("ORCH_CONFIG", Scope.SYSTEM.config_path)])
def test_orchs_own_paths_are_absolute_or_refused(monkeypatch: pytest.MonkeyPatch,
                                                 variable: str,
                                                 derive: Callable[[], Path]) -> None:
    # A relative one was used as given: the exit hook, run in the session's directory,
    # made a state directory there and the session read as lost.
    from orch.errors import UsageError

    monkeypatch.setenv(variable, "/abs/place")
    assert derive() == Path("/abs/place")
    for relative in ("relstate", "./x", "~/x"):
        monkeypatch.setenv(variable, relative)
        with pytest.raises(UsageError, match=f"{variable}={relative}: expected an absolute"):
            derive()
