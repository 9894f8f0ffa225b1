"""Damaged and hostile state files, met by real commands in a box: one line naming the
file, the file left as it was, nothing written through a planted symlink, no unit
started; and every state format orch ever wrote keeps loading."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from orch import files, state
from orch.errors import StateError
from orch.ids import new_session_id
from orch.session import Record
from tests.integration.conftest import Orch

DATA = Path(__file__).parent.parent / "unit" / "data"
VICTIM = b"not orch's: must stay as it is\n"


def _plant_victim(orch: Orch) -> Path:
    victim = orch.state_dir.parent / "victim"
    victim.write_bytes(VICTIM)
    os.chown(victim, orch.uid, orch.uid)
    return victim


def _truncated(orch: Orch, path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(orch: Orch, path: Path) -> None:
    # Whole lines of it: a log whose very first line is unfinished is a torn first
    # write, which orch rightly reads as no change at all.
    path.write_bytes(b"\xff\x00 not json\n" + os.urandom(512) + b"\n")


def _unknown_version(orch: Orch, path: Path) -> None:
    path.write_text(json.dumps({"version": 99, "generation": 1, "sessions": []}))


def _directory(orch: Orch, path: Path) -> None:
    path.unlink()
    path.mkdir()


def _symlink(orch: Orch, path: Path) -> None:
    path.unlink()
    path.symlink_to(_plant_victim(orch))


DAMAGE: dict[str, tuple[str, Callable[[Orch, Path], None]]] = {
    "truncated snapshot": (state.STATE_FILE, _truncated),
    "garbage snapshot": (state.STATE_FILE, _garbage),
    "unknown schema version": (state.STATE_FILE, _unknown_version),
    "directory for the snapshot": (state.STATE_FILE, _directory),
    "symlink for the snapshot": (state.STATE_FILE, _symlink),
    "garbage log": (state.LOG_FILE, _garbage),
    "symlink for the log": (state.LOG_FILE, _symlink),
    "symlink for the lock": (state.LOCK_FILE, _symlink),
}


def _snapshot_of(path: Path) -> object:
    if path.is_symlink():
        return ("symlink", os.readlink(path))
    if path.is_dir():
        return ("directory", sorted(os.listdir(path)))
    return path.read_bytes()


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_state_is_one_line_and_left_as_it_was(orch: Orch, damage: str) -> None:
    orch.ok("wait", orch.spawn("/bin/true"))  # its exit hook writes too: let it finish
    name, spoil = DAMAGE[damage]
    path = orch.state_dir / name
    spoil(orch, path)
    before = _snapshot_of(path)
    victim = orch.state_dir.parent / "victim"
    for args in (["ps"], ["spawn", "--name", "afterdamage", "--", "sleep", "100"],
                 ["recover"], ["reap", "--older-than", "0"]):
        done = orch(*args)
        if name == state.LOCK_FILE and args == ["ps"]:
            assert done.returncode == 0, done.stderr  # readers take no lock
            continue
        assert done.returncode == 5, (args, done.returncode, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert str(orch.state_dir) in done.stderr, done.stderr
    assert _snapshot_of(path) == before
    if victim.exists():
        assert victim.read_bytes() == VICTIM
    listed = orch.systemctl("list-units", "--all", "--no-legend", "orch-afterdamage-*").stdout
    assert listed.strip() == ""


def test_a_symlink_at_the_snapshots_temp_path_is_not_written_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The temp file's name is the process's pid and a clock: make it one an attacker knew.
    monkeypatch.setattr(files.time, "monotonic_ns", lambda: 42)
    store = state.StateStore(tmp_path / "orch")
    record = Record(id=new_session_id(), name="n", unit="orch-n-1.service", scope="user",
                    argv=["/bin/true"], cwd="/", created_at="2026-11-21T00:00:00+00:00")
    store.directory.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    planted = store.directory / f".{state.STATE_FILE}.{os.getpid()}.42.tmp"
    planted.symlink_to(victim)
    with pytest.raises(StateError) as caught:
        store.update(lambda s: s.__setitem__(record.id, record))
    assert str(planted) in caught.value.message and "\n" not in caught.value.message
    assert victim.read_bytes() == VICTIM
    assert planted.is_symlink() and not store.path.exists()


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_every_state_format_ever_written_keeps_loading(orch: Orch, version: int) -> None:
    if (DATA / f"state-v{version}").is_dir():  # a snapshot, its log and its archive
        shutil.copytree(DATA / f"state-v{version}", orch.state_dir)
        os.chmod(orch.state_dir, 0o700)
    else:
        orch.state_dir.mkdir(mode=0o700)
        shutil.copy(DATA / f"state-v{version}.json", orch.state_dir / state.STATE_FILE)
    if (DATA / f"state-v{version}.log").exists():
        shutil.copy(DATA / f"state-v{version}.log", orch.state_dir / state.LOG_FILE)
    for path in orch.state_dir.iterdir():
        os.chown(path, orch.uid, orch.uid)
    os.chown(orch.state_dir, orch.uid, orch.uid)
    expected = set(state.StateStore(orch.state_dir).load())
    assert expected
    assert {s["id"] for s in orch.ps()} == expected
    # And the first change writes the current format, losing none of them.
    new = orch.spawn("/bin/true")
    orch.ok("wait", new)
    assert {s["id"] for s in orch.ps()} == expected | {new}
    assert json.loads((orch.state_dir / state.STATE_FILE).read_text().split("\n")[0]
                      + "]}")["version"] == state.SCHEMA_VERSION
