"""The archive of ended records: what moves there, who reads it and who never does,
and that every change and every older state keeps working beside it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from orch import state
from orch.errors import StateError
from orch.runtime import Runtime
from orch.session import Record, Status
from orch.state import Sessions, StateStore
from orch.usecases import query
from tests.unit.fakemanager import FakeManager, put, running, runtime

DATA = Path(__file__).parent / "data"


def _record(n: int, **changes: Any) -> Record:
    base = Record(id=f"{n:08x}-0000-4000-8000-000000000000", name=f"s{n}",
                  unit=f"orch-s{n}-{n:08x}.service", scope="user", argv=["prog", str(n)],
                  cwd="/tmp", created_at=f"2025-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}+00:00")
    return dataclasses.replace(base, **changes)


def _ended(n: int, **changes: Any) -> Record:
    return _record(n, invocation_id=f"{n:032x}", ended_at="2025-01-02T00:00:00+00:00",
                   exit_code=0, result="success", **changes)


def _add(*records: Record) -> Any:
    def change(sessions: Sessions) -> None:
        for record in records:
            sessions[record.id] = record
    return change


def _archives(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("sessions-archive."))


def _forbid_archive(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every read of an archive's records fail the test; the reads of its units."""
    def read_archive(self: StateStore, number: int, locked: bool) -> None:
        raise AssertionError(f"archive {number} read")
    monkeypatch.setattr(StateStore, "_read_archive", read_archive)
    return []


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    """A store with 3 ended records (archived by the first snapshot) and 1 running."""
    store = StateStore(tmp_path / "st")
    store.update(_add(_ended(1), _ended(2), _ended(3), _record(4, invocation_id="4" * 32)))
    return store


def test_the_first_snapshot_moves_the_ended_records_into_an_archive(store: StateStore) -> None:
    doc = json.loads(store.path.read_bytes())
    assert (doc["version"], doc["generation"], doc["archive"]) == (5, 1, 1)
    assert [r["id"] for r in doc["sessions"]] == [_record(4).id]
    assert _archives(store.directory) == ["sessions-archive.1.json"]
    archive = json.loads((store.directory / "sessions-archive.1.json").read_bytes())
    assert archive["units"] == [_record(n).unit for n in (1, 2, 3)]
    assert [r["id"] for r in archive["sessions"]] == [_record(n).id for n in (1, 2, 3)]
    fresh = StateStore(store.directory)
    assert list(fresh.load()) == [_record(n).id for n in (1, 2, 3, 4)]  # creation order
    assert list(fresh.load(archived=False)) == [_record(4).id]
    assert fresh.keeps_archive() and fresh.archived_units() == {_record(n).unit for n in (1, 2, 3)}


def test_a_spawn_and_its_confirmation_never_read_the_archive(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_archive(monkeypatch)
    fresh = StateStore(store.directory)
    new = _record(5)
    fresh.update(lambda s: s.__setitem__(new.id, new), sync=False)
    confirmed = dataclasses.replace(new, invocation_id="5" * 32, main_pid=5)

    def confirm(sessions: Sessions) -> Record | None:
        current = sessions.get(new.id)
        if current is not None:
            sessions[new.id] = confirmed
        return current

    assert fresh.update(confirm, sync=False) == new
    # The exit hook of a session records its end the same way.
    fresh.update(lambda s: s.__setitem__(new.id, dataclasses.replace(
        s[new.id], result="success", exit_code=0)))
    assert set(StateStore(store.directory).load(archived=False)) == {_record(4).id, new.id}


def test_a_session_waiting_to_resume_stays_live(tmp_path: Path) -> None:
    # Its run ended, but its timer runs it again (a usage limit, a retry): before, the
    # next snapshot archived it, and `ps --running`, the exit hook that arms the timer
    # and recover, which read only the live records, lost it.
    store = StateStore(tmp_path / "st")
    waits = _ended(5, resumes_at="2025-01-02T01:00:00+00:00", waiting_for="a usage limit")
    store.update(_add(_ended(1), waits))
    assert list(StateStore(store.directory).load(archived=False)) == [waits.id]


def test_a_change_that_asks_for_an_archived_record_gets_it(store: StateStore) -> None:
    # resume: a new invocation of an archived session, which is live again.
    def next_run(sessions: Sessions) -> Record:
        sessions[_record(2).id] = sessions[_record(2).id].next_invocation("2025-02-01")
        return sessions[_record(2).id]

    again = StateStore(store.directory).update(next_run)
    assert again.restarts == 1 and again.result is None
    fresh = StateStore(store.directory)
    assert fresh.load()[_record(2).id] == again
    assert set(fresh.load(archived=False)) == {_record(2).id, _record(4).id}
    assert len(fresh.load()) == 4
    assert StateStore(store.directory).update(lambda s: _record(9).id in s) is False
    assert StateStore(store.directory).update(lambda s: len(s)) == 4


def test_removing_archived_records_lasts_past_the_next_snapshot(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    StateStore(store.directory).update(lambda s: s.pop(_record(1).id))
    assert set(StateStore(store.directory).load()) == {_record(n).id for n in (2, 3, 4)}
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    StateStore(store.directory).update(_add(_record(5)))  # folds: a new archive
    assert _archives(store.directory) == ["sessions-archive.2.json"]
    assert set(StateStore(store.directory).load()) == {_record(n).id for n in (2, 3, 4, 5)}
    # Reaping every ended one leaves no archive at all.
    StateStore(store.directory).update(
        lambda s: [s.pop(i) for i in list(s) if s[i].result is not None])
    assert _archives(store.directory) == []
    assert "archive" not in json.loads(store.path.read_bytes())
    assert set(StateStore(store.directory).load()) == {_record(4).id, _record(5).id}


@pytest.mark.parametrize("fold_at_once", [False, True])
def test_removing_a_live_record_reads_no_archive_and_its_archived_copy_stays_gone(
        store: StateStore, monkeypatch: pytest.MonkeyPatch, fold_at_once: bool) -> None:
    def next_run(sessions: Sessions) -> None:
        sessions[_record(2).id] = sessions[_record(2).id].next_invocation("2025-02-01")

    StateStore(store.directory).update(next_run)  # live again; its ended copy archived
    real = StateStore._read_archive
    reads: list[int] = []

    def read_archive(self: StateStore, number: int, locked: bool) -> Sessions | None:
        reads.append(number)
        return real(self, number, locked)

    monkeypatch.setattr(StateStore, "_read_archive", read_archive)
    if fold_at_once:
        monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    StateStore(store.directory).update(lambda s: s.pop(_record(2).id))
    assert bool(reads) is fold_at_once  # only a snapshot, which rewrites the archive
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    StateStore(store.directory).update(_add(_record(5)))
    assert set(StateStore(store.directory).load()) == {_record(n).id for n in (1, 3, 4, 5)}


def test_a_snapshot_with_nothing_to_archive_leaves_the_archive_unread(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    _forbid_archive(monkeypatch)
    StateStore(store.directory).update(_add(_record(5)))
    assert json.loads(store.path.read_bytes())["generation"] == 2
    assert _archives(store.directory) == ["sessions-archive.1.json"]


def test_records_that_end_are_archived_at_the_next_snapshot(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ended = _ended(4)
    StateStore(store.directory).update(_add(ended))
    assert list(StateStore(store.directory).load(archived=False)) == [ended.id]
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    restarting = _ended(6, options={"restart": "always"})
    StateStore(store.directory).update(_add(_record(5), restarting))
    fresh = StateStore(store.directory)
    assert set(fresh.load(archived=False)) == {_record(5).id, restarting.id}  # comes back
    assert fresh.archived_units() == {_record(n).unit for n in (1, 2, 3, 4)}
    assert fresh.load()[ended.id] == ended


def test_a_reader_finding_its_archive_replaced_reads_again(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = StateStore(store.directory)
    real = StateStore._read_archive
    raced: list[int] = []

    def read_archive(self: StateStore, number: int, locked: bool) -> Sessions | None:
        if self is reader and not raced:
            # Between the reader's snapshot and its archive, a writer replaces both.
            raced.append(number)
            monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
            store.update(lambda s: s.pop(_record(1).id))
        return real(self, number, locked)

    monkeypatch.setattr(StateStore, "_read_archive", read_archive)
    assert set(reader.load()) == {_record(n).id for n in (2, 3, 4)}
    assert raced == [1]


def test_a_missing_or_corrupt_archive_is_refused_and_left_untouched(
        store: StateStore) -> None:
    path = store.directory / "sessions-archive.1.json"
    raw = path.read_bytes()
    for broken in (raw[:-30], raw.replace(b'"units": [', b'"units": ["orch-x.service", '),
                   raw.replace(b'"generation": 1', b'"generation": 7')):
        path.write_bytes(broken)
        with pytest.raises(StateError) as caught:
            StateStore(store.directory).load()
        assert str(path) in caught.value.message and "\n" not in caught.value.message
        with pytest.raises(StateError):
            StateStore(store.directory).update(lambda s: s.pop(_record(1).id))
        assert path.read_bytes() == broken
    assert list(StateStore(store.directory).load(archived=False)) == [_record(4).id]
    path.unlink()
    with pytest.raises(StateError) as caught:
        StateStore(store.directory).load()
    assert "missing" in caught.value.message


def test_a_crash_before_the_snapshot_leaves_the_old_pair(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    before = StateStore(store.directory).load()

    def crash(self: StateStore, path: Path, data: bytes, *, sync_dir: bool = False) -> None:
        if path == self.path:
            raise StateError("power cut")
        real(self, path, data, sync_dir=sync_dir)

    real = StateStore._write
    monkeypatch.setattr(StateStore, "_write", crash)
    with pytest.raises(StateError):
        StateStore(store.directory).update(lambda s: s.pop(_record(1).id))
    monkeypatch.setattr(StateStore, "_write", real)
    # The new archive is there, but the snapshot does not name it: it is not read...
    assert _archives(store.directory) == ["sessions-archive.1.json", "sessions-archive.2.json"]
    assert StateStore(store.directory).load() == before
    # ...and the next archive written takes its place.
    StateStore(store.directory).update(lambda s: s.pop(_record(2).id))
    assert _archives(store.directory) == ["sessions-archive.2.json"]
    assert set(StateStore(store.directory).load()) == {_record(n).id for n in (1, 3, 4)}


def test_a_v4_state_is_archived_on_its_first_change(tmp_path: Path) -> None:
    directory = tmp_path / "orch"
    directory.mkdir()
    (directory / "sessions.json").write_bytes((DATA / "state-v4.json").read_bytes())
    (directory / "sessions.log").write_bytes((DATA / "state-v4.log").read_bytes())
    before = StateStore(directory).load()
    StateStore(directory).update(_add(_record(7)))
    doc = json.loads((directory / "sessions.json").read_bytes())
    assert doc["version"] == state.SCHEMA_VERSION
    after = StateStore(directory).load()
    assert after == {**before, _record(7).id: _record(7)}
    archived = {i for i, r in before.items() if r.result is not None}
    assert archived and set(after) - set(StateStore(directory).load(archived=False)) == archived


# tests/unit/data/state-v5/ was written once by StateStore (schema version 5: a snapshot
# naming its archive, the archive, and a log that ends one session and removes an
# archived one) and is checked in: a later orch must keep reading it.
def test_checked_in_v5_state_keeps_loading(tmp_path: Path) -> None:
    directory = tmp_path / "orch"
    directory.mkdir()
    for path in (DATA / "state-v5").iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    sessions = StateStore(directory).load()
    assert sorted(r.name for r in sessions.values()) == ["done", "live", "quit"]
    assert sessions["00000002-0000-4000-8000-000000000000"].result == "exit-code"
    assert set(StateStore(directory).load(archived=False)) == {
        "00000002-0000-4000-8000-000000000000", "00000003-0000-4000-8000-000000000000"}


# -- ps --running -------------------------------------------------------------------



def test_ps_running_reads_no_archived_record(fake: FakeManager, rt: Runtime,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    view = running()
    live = put(rt, "live", invocation_id=view.invocation_id, main_pid=view.main_pid)
    fake.add(live.unit, view)
    ended = put(rt, "old", invocation_id="e" * 32, result="success", exit_code=0,
                ended_at=rt.now_iso())
    put(rt, "fold", invocation_id="f" * 32, result="success")  # its snapshot archives both
    assert rt.store.load(archived=False).keys() == {live.id}
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 1 << 30)
    fresh = runtime(fake, rt.store.directory)
    _forbid_archive(monkeypatch)
    # A unit of another state's session is loaded too: its name is not in the archive.
    fake.add("orch-other-0badcafe.service", running())
    listed = query.list_sessions(fresh, running=True)
    assert [s.id for s in listed] == [live.id]
    assert ended.id not in {s.id for s in listed}


def test_ps_running_finds_an_archived_session_started_again(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
    ended = put(rt, "old", invocation_id="e" * 32, result="success", exit_code=0,
                ended_at=rt.now_iso())
    put(rt, "fold", invocation_id="f" * 32, result="success")
    assert rt.store.load(archived=False) == {}
    # `systemctl restart` of its unit, behind orch's back: it runs again.
    fake.add(ended.unit, running())
    fresh = runtime(fake, rt.store.directory)
    listed = query.list_sessions(fresh, running=True)
    assert [(s.id, s.status) for s in listed] == [(ended.id, Status.RUNNING)]


def test_ps_running_skips_ended_records_before_building_them(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    ended = put(rt, "old", invocation_id="e" * 32, result="success", exit_code=0,
                ended_at=rt.now_iso())
    built: list[str] = []
    real = query.view
    monkeypatch.setattr(query, "view", lambda record, *a, **k: (built.append(record.id),
                                                                 real(record, *a, **k))[1])
    assert query.list_sessions(rt, running=True) == []
    assert built == []
    assert [s.id for s in query.list_sessions(rt)] == [ended.id]


def test_an_exit_hook_with_no_session_waiting_reads_no_archive(
        store: StateStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import exithook
    from orch.session import Ending

    _forbid_archive(monkeypatch)
    fresh = StateStore(store.directory)
    ending = Ending("2025-01-03T00:00:00+00:00", 0, None, "success")
    assert exithook.record_exit(fresh, _record(4).id, "4" * 32, ending)
    from orch.runtime import Runtime
    from orch.scope import Scope
    from orch.usecases.transitions import release_dependents

    assert release_dependents(Runtime(Scope.USER, fresh), _record(4).id,
                              tmp_path / "markers") == []
    assert not (tmp_path / "markers").exists()
    assert fresh.load(archived=False)[_record(4).id].result == "success"
