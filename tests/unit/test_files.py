"""orch.files: the one place a whole file is written, atomically and durably."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from orch import files


@pytest.fixture
def tight_umask() -> Iterator[None]:
    before = os.umask(0o077)
    yield
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_gets_its_mode_whatever_the_umask(tmp_path: Path, tight_umask: None) -> None:
    # A unit file must be readable by the manager: 0644 even under umask 077.
    target = tmp_path / "orch-recover.service"
    files.write_atomically(target, b"[Unit]\n", 0o644)
    assert target.read_bytes() == b"[Unit]\n"
    assert _mode(target) == 0o644
    files.write_atomically(target, b"secret\n", 0o600)
    assert (target.read_bytes(), _mode(target)) == (b"secret\n", 0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["orch-recover.service"]  # no temp left


def test_a_failed_write_leaves_the_target_as_it_was_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_bytes(b"old\n")
    (tmp_path / "sub").mkdir()
    directory_in_the_way = tmp_path / "sub"
    with pytest.raises(files.WriteFailed) as failed:
        files.write_atomically(directory_in_the_way, b"new\n")  # rename over a directory
    assert failed.value.path == directory_in_the_way
    assert failed.value.error.errno == errno.EISDIR
    assert str(failed.value) == f"{directory_in_the_way}: Is a directory"
    assert target.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "sub"]


def test_a_missing_directory_names_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "sessions.json"
    with pytest.raises(files.WriteFailed) as failed:
        files.write_atomically(target, b"{}")
    assert failed.value.path.parent == target.parent
    assert failed.value.path.name.startswith(".sessions.json.")
    assert failed.value.error.errno == errno.ENOENT


@pytest.mark.parametrize(("code", "said"), [
    (errno.EACCES, "/x: permission denied"),
    (errno.EPERM, "/x: permission denied"),
    (errno.ELOOP, "/x is a symbolic link; orch does not follow it"),
    (errno.ENOSPC, "/x: No space left on device"),
])
def test_errors_are_worded_once(code: int, said: str) -> None:
    error = OSError(code, os.strerror(code))
    assert files.describe(error, Path("/x")) == said
    assert files.is_permission(error) is (code in (errno.EACCES, errno.EPERM))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_descriptor_held_for_a_body_is_prepared_then_closed_and_closed_if_preparing_fails(
        tmp_path: Path) -> None:
    seen: list[int] = []

    def open_fd() -> int:
        seen.append(os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600))
        return seen[-1]

    with files.OpenFor(open_fd, lambda fd: os.write(fd, b"prepared")):
        assert _is_open(seen[0])
    assert not _is_open(seen[0])
    assert (tmp_path / "f").read_bytes() == b"prepared"

    def refuse(fd: int) -> None:
        raise OSError(errno.EAGAIN, "not now")

    with pytest.raises(OSError), files.OpenFor(open_fd, refuse):
        pytest.fail("the body runs only once prepared")
    assert not _is_open(seen[1])

    held = files.OpenFor(open_fd, lambda fd: None)
    with pytest.raises(KeyError), held:
        with pytest.raises(RuntimeError), held:  # not reentrant: the one held stays held
            pass
        assert _is_open(seen[2])
        raise KeyError("the body fails")
    assert not _is_open(seen[2])

    prepared: list[int] = []
    with files.OpenFor(lambda: -1, prepared.append):  # none: nothing prepared or closed
        pass
    assert prepared == []
