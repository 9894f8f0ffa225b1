"""Where a session runs and what: its directory, its program on PATH, its unit's PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from orch.errors import PermissionDenied, SpawnFailed, UsageError
from orch.locate import resolve_cwd, resolve_program, session_path


def _executable(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_resolve_program_on_path(tmp_path: Path) -> None:
    tool = _executable(tmp_path / "bin" / "sh")
    found = resolve_program("sh", f"{tmp_path / 'empty'}:{tmp_path / 'bin'}", "/")
    assert found == str(tool)
    assert os.path.isabs(found)


def test_resolve_program_first_on_path_wins(tmp_path: Path) -> None:
    first = _executable(tmp_path / "one" / "tool")
    _executable(tmp_path / "two" / "tool")
    assert resolve_program("tool", f"{tmp_path / 'one'}:{tmp_path / 'two'}", "/") == str(first)


def test_resolve_program_missing(tmp_path: Path) -> None:
    with pytest.raises(SpawnFailed) as caught:
        resolve_program("no-such-tool", str(tmp_path), "/")
    assert "not found" in caught.value.message


def test_a_program_named_with_a_space_is_quoted_where_it_cannot_run(tmp_path: Path) -> None:
    for program, said in (("sleep 5", "cannot run 'sleep 5': not found on PATH"),
                          ("", "cannot run '': not found on PATH"),
                          ("no-such-tool", "cannot run no-such-tool: not found on PATH")):
        with pytest.raises(SpawnFailed) as caught:
            resolve_program(program, str(tmp_path), "/")
        assert caught.value.message == said


def test_resolve_program_not_executable_on_path(tmp_path: Path) -> None:
    _executable(tmp_path / "bin" / "tool", mode=0o644)
    with pytest.raises(SpawnFailed) as caught:
        resolve_program("tool", str(tmp_path / "bin"), "/")
    assert "not executable" in caught.value.message


def test_resolve_program_relative_to_cwd(tmp_path: Path) -> None:
    tool = _executable(tmp_path / "work" / "tool")
    assert resolve_program("./tool", "/nonexistent", str(tmp_path / "work")) == str(tool)
    assert resolve_program("../work/tool", "", str(tmp_path / "work")) == str(tool)


def test_resolve_program_relative_missing(tmp_path: Path) -> None:
    with pytest.raises(SpawnFailed) as caught:
        resolve_program("./tool", "", str(tmp_path))
    assert "no such file" in caught.value.message


def test_resolve_program_absolute_not_executable(tmp_path: Path) -> None:
    tool = _executable(tmp_path / "tool", mode=0o644)
    with pytest.raises(SpawnFailed) as caught:
        resolve_program(str(tool), "", "/")
    assert "not executable" in caught.value.message


def test_resolve_program_directory(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(SpawnFailed) as caught:
        resolve_program("./adir", "", str(tmp_path))
    assert "directory" in caught.value.message


def test_session_path_keeps_caller_entries_once(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    orch = _executable(tmp_path / "venv" / "bin" / "orch")
    monkeypatch.setattr(sys, "argv", [str(orch)])
    own = str(orch.parent)
    assert session_path("/a:/b") == f"{own}:/a:/b"
    assert session_path(f"/a:{own}:/b") == f"{own}:/a:/b"
    parts = session_path("/a:/b").split(":")
    assert len(parts) == len(set(parts))


def test_session_path_default_when_caller_has_none(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    orch = _executable(tmp_path / "bin" / "orch")
    monkeypatch.setattr(sys, "argv", [str(orch)])
    parts = session_path(None).split(":")
    assert parts[0] == str(tmp_path / "bin")
    assert "/usr/bin" in parts and "/bin" in parts


def test_a_cwd_that_is_a_file_is_said_to_be_no_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for given, why in ((str(tmp_path / "file"), "not a directory"),
                       (str(tmp_path / "gone"), "no such directory")):
        with pytest.raises(UsageError) as err:
            resolve_cwd(given)
        assert err.value.message == f"--cwd {given}: {why}"
    assert resolve_cwd(str(tmp_path)) == str(tmp_path)


def test_a_cwd_that_cannot_be_reached_is_said_so_not_an_internal_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(path: object) -> None:
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patched:
        patched.setattr(os, "stat", refused)  # another user's directory, to this caller
        with pytest.raises(PermissionDenied) as denied:
            resolve_cwd(str(tmp_path))
    assert denied.value.message == f"--cwd {tmp_path}: permission denied"  # was: no such
    monkeypatch.setattr(os, "getcwd", lambda: refused("."))
    with pytest.raises(UsageError, match="the current directory cannot be read"):
        resolve_cwd(None)  # was: internal error, exit 70


def test_an_empty_or_relative_path_entry_is_taken_in_the_sessions_directory(
        tmp_path: Path) -> None:
    here = _executable(tmp_path / "work" / "tool")
    below = _executable(tmp_path / "work" / "bin" / "other")
    work = str(tmp_path / "work")
    assert resolve_program("tool", f"/nonexistent::{tmp_path / 'x'}", work) == str(here)
    assert resolve_program("other", "bin", work) == str(below)
    assert resolve_program("sh", "/nonexistent:/bin", work) == "/bin/sh"


def test_a_file_not_executable_in_a_relative_path_entry_is_said_so(tmp_path: Path) -> None:
    _executable(tmp_path / "work" / "bin" / "tool", mode=0o644)
    with pytest.raises(SpawnFailed, match="not executable"):
        resolve_program("tool", "bin", str(tmp_path / "work"))  # the session's bin/
