"""The state file: durable, private, locked, and never replaced when it cannot be read."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from orch import state
from orch.errors import StateError
from orch.session import Intent, Record
from orch.state import Sessions, StateStore

DATA = Path(__file__).parent / "data"


def _record(n: int = 0, **changes: Any) -> Record:
    base = Record(id=f"{n:08x}-0000-4000-8000-000000000000", name=f"s{n}",
                  unit=f"orch-s{n}-{n:08x}.service", scope="user", argv=["prog", str(n)],
                  cwd="/tmp", created_at=f"2025-01-01T00:00:{n % 60:02d}.000000+00:00")
    return dataclasses.replace(base, **changes)


def _add(*records: Record) -> Any:
    def change(sessions: Sessions) -> None:
        for record in records:
            sessions[record.id] = record
    return change


def _valid_doc(**record_changes: Any) -> dict[str, Any]:
    data = _record(1).to_json()
    data.update(record_changes)
    return {"version": 1, "sessions": [data]}


def test_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "st")
    records = [_record(1, intent=Intent.STOP, tags=["a", "b"], env={"K": "v"}),
               _record(2, exit_code=3, result="exit-code")]
    store.update(_add(*records))
    assert StateStore(tmp_path / "st").load() == {r.id: r for r in records}


def test_load_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "nowhere").load() == {}
    assert not (tmp_path / "nowhere").exists()


def test_update_returns_the_change_value(tmp_path: Path) -> None:
    assert StateStore(tmp_path).update(lambda sessions: len(sessions) + 41) == 41


def test_file_0600_and_directory_0700_after_first_write(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "new" / "orch")
    store.update(_add(_record()))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700


def test_existing_open_directory_tightened_to_0700(tmp_path: Path) -> None:
    directory = tmp_path / "orch"
    directory.mkdir()
    os.chmod(directory, 0o755)
    StateStore(directory).update(_add(_record()))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def _add_many(directory: str, worker: int) -> None:
    store = StateStore(Path(directory))
    for i in range(10):
        store.update(_add(_record(worker * 100 + i)))


@pytest.mark.parametrize("log_min_bytes", [state.LOG_MIN_BYTES, 0],
                         ids=["appends", "a-new-snapshot-often"])
def test_concurrent_updates_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         log_min_bytes: int) -> None:
    monkeypatch.setattr(state, "LOG_MIN_BYTES", log_min_bytes)  # forked: the workers too
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(str(tmp_path), w)) for w in range(8)]
    for proc in procs:
        proc.start()
    # Meanwhile a reader, which takes no lock, only ever sees the records grow: never a
    # snapshot without the log it needs, nor a log replayed over a newer snapshot.
    reader, seen = StateStore(tmp_path), set[str]()
    while any(proc.is_alive() for proc in procs):
        now = set(reader.load())
        assert now >= seen
        seen = now
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * 8
    sessions = StateStore(tmp_path).load()
    assert len(sessions) == 80
    assert {r.name for r in sessions.values()} == {
        f"s{w * 100 + i}" for w in range(8) for i in range(10)}


CORRUPT = {
    "garbage": b"\x00\xff\xfegarbage",
    "truncated": state.encode({_record(1).id: _record(1)})[:-20],
    "version-99": json.dumps({"version": 99, "sessions": []}).encode(),
    "no-version": json.dumps({"sessions": []}).encode(),
    "a-list": b"[]",
    "extra-top-level-key": json.dumps({"version": 1, "sessions": [], "x": 1}).encode(),
    "unknown-field": json.dumps(_valid_doc(colour="red")).encode(),
    "missing-field": json.dumps({"version": 1, "sessions": [
        {k: v for k, v in _record(1).to_json().items() if k != "cwd"}]}).encode(),
    "id-not-a-string": json.dumps(_valid_doc(id=7)).encode(),
    "argv-a-string": json.dumps(_valid_doc(argv="rm -rf /")).encode(),
    "argv-empty": json.dumps(_valid_doc(argv=[])).encode(),
    "record-not-an-object": json.dumps({"version": 1, "sessions": ["x"]}).encode(),
    "duplicate-id": json.dumps({"version": 1, "sessions": [
        _record(1).to_json(), _record(1).to_json()]}).encode(),
}


@pytest.mark.parametrize("raw", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_file_refused_and_left_untouched(tmp_path: Path, raw: bytes) -> None:
    store = StateStore(tmp_path)
    store.path.write_bytes(raw)
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(store.path) in caught.value.message
    assert caught.value.exit_code == 5
    with pytest.raises(StateError):
        store.update(_add(_record(2)))
    assert store.path.read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions.json", "sessions.lock"]


# Wrong types the loader lets through today: the record loads and misbehaves later
# (tags "a,b" iterates as characters; intent fails without naming the file).
UNCHECKED = {
    "intent-unknown": _valid_doc(intent="bogus"),
    "tags-a-string": _valid_doc(tags="a,b"),
    "exit-code-a-string": _valid_doc(exit_code="0"),
    "env-a-list": _valid_doc(env=["A=1"]),
}


@pytest.mark.parametrize("doc", UNCHECKED.values(), ids=UNCHECKED.keys())
def test_wrong_field_type_refused_naming_the_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    store = StateStore(tmp_path)
    raw = json.dumps(doc).encode()
    store.path.write_bytes(raw)
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(store.path) in caught.value.message
    assert store.path.read_bytes() == raw


def test_unknown_version_message_names_both_versions(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_bytes(json.dumps({"version": 99, "sessions": []}).encode())
    with pytest.raises(StateError) as caught:
        store.load()
    assert "99" in caught.value.message and "versions 1, 2, 3" in caught.value.message


def test_directory_at_state_path_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.mkdir()
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(store.path) in caught.value.message
    with pytest.raises(StateError):
        store.update(_add(_record()))
    assert store.path.is_dir() and list(store.path.iterdir()) == []


def test_symlink_at_state_path_refused_and_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    original = state.encode({_record(1).id: _record(1)})
    target.write_bytes(original)
    store = StateStore(tmp_path / "orch")
    store.directory.mkdir()
    store.path.symlink_to(target)
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(store.path) in caught.value.message
    assert "symbolic link" in caught.value.message
    with pytest.raises(StateError):
        store.update(_add(_record(2)))
    assert target.read_bytes() == original
    assert store.path.is_symlink()


def test_update_leaves_no_temp_files(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for n in range(3):
        store.update(_add(_record(n)))
    assert sorted(p.name for p in tmp_path.iterdir()) == FILES


FILES = ["sessions.json", "sessions.lock", "sessions.log"]


def test_failed_change_leaves_file_and_directory_as_they_were(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    store.update(_add(_record(2)))
    before = store.path.read_bytes(), store.log_path.read_bytes()

    def explode(sessions: Sessions) -> None:
        sessions.clear()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.update(explode)
    assert (store.path.read_bytes(), store.log_path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == FILES


def test_update_without_change_does_not_rewrite(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    store.update(_add(_record(2)))
    before = store.path.stat(), store.log_path.read_bytes()
    store.update(lambda sessions: None)
    store.update(_add(_record(1)))  # the same record again: equal, so no change
    store.update(_add(dataclasses.replace(_record(2))))  # equal, though another object
    assert (store.path.stat(), store.log_path.read_bytes()) == before


def test_first_change_writes_a_snapshot_and_starts_the_log(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    doc = json.loads(store.path.read_bytes())
    assert (doc["version"], doc["generation"]) == (state.SCHEMA_VERSION, 1)
    assert store.log_path.read_bytes() == state.log_header(1)
    assert stat.S_IMODE(store.log_path.stat().st_mode) == 0o600


def test_a_change_appends_its_lines_and_leaves_the_snapshot(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    snapshot = store.path.stat()
    changed = _record(1, main_pid=42)
    store.update(_add(changed, _record(2)))
    store.update(lambda s: s.pop(_record(1).id))
    assert store.path.stat() == snapshot
    lines = store.log_path.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"version": state.SCHEMA_VERSION, "extends": 1},
        {"set": changed.to_sparse_json()}, {"set": _record(2).to_sparse_json()},
        {"remove": _record(1).id}]
    assert StateStore(tmp_path).load() == {_record(2).id: _record(2)}


def test_the_log_is_folded_into_a_new_snapshot_once_it_outgrows_both_limits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 600)
    store = StateStore(tmp_path)
    records = [_record(n) for n in range(40)]
    store.update(_add(*records[:20]))  # a snapshot of 20 records: a quarter is > 600 B
    assert len(store.path.read_bytes()) // 4 > 600
    appended = 0
    for record in records[20:]:
        store.update(_add(record))
        appended += 1
        if json.loads(store.path.read_bytes())["generation"] == 2:
            break
    snapshot = store.path.read_bytes()
    # Folded once the log was past both limits, and no earlier.
    assert appended > 1 and len(snapshot) > 0
    assert store.log_path.read_bytes() == state.log_header(2)
    expected = {r.id: r for r in records[:20 + appended]}
    assert state.decode(snapshot, "x")[0] == expected
    assert StateStore(tmp_path).load() == expected


def test_an_unfinished_last_line_is_no_change_and_the_next_append_cuts_it(
        tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    store.update(_add(_record(2)))
    whole = store.log_path.read_bytes()
    for torn in (b'{"set": {"id": "3', b'{"remove": 7}\n', b"\x00\x00\x00"):
        store.log_path.write_bytes(whole + torn)
        assert set(StateStore(tmp_path).load()) == {_record(1).id, _record(2).id}
    StateStore(tmp_path).update(_add(_record(3)))
    assert store.log_path.read_bytes() == \
        whole + b'{"set": ' + json.dumps(_record(3).to_sparse_json()).encode() + b"}\n"
    assert set(StateStore(tmp_path).load()) == {_record(n).id for n in (1, 2, 3)}


@pytest.mark.parametrize("bad", [b"garbage\n", b'{"set": {"id": 7}}\n', b'{"drop": "x"}\n',
                                 b'{"set": "x"}\n', b'{"remove": 7}\n', b"\xff\n",
                                 b'{"set": {}, "remove": "x"}\n', b"[]\n",
                                 b'{"remove": "x"}, {"remove": "y"}\n', b"1\n",
                                 b'[{"remove": "x"}]\n', b"\n"])
def test_a_bad_line_before_the_last_is_refused_naming_the_log(tmp_path: Path,
                                                              bad: bytes) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    store.update(_add(_record(2)))
    raw = store.log_path.read_bytes()
    header, rest = raw.split(b"\n", 1)
    store.log_path.write_bytes(header + b"\n" + bad + rest)
    before = store.path.read_bytes(), store.log_path.read_bytes()
    for attempt in (StateStore(tmp_path).load,
                    lambda: StateStore(tmp_path).update(_add(_record(3)))):
        with pytest.raises(StateError) as err:
            attempt()
        assert str(store.log_path) in str(err.value) and "line 2" in str(err.value)
    assert (store.path.read_bytes(), store.log_path.read_bytes()) == before


@pytest.mark.parametrize("header", [b"{}\n", b'{"version": 4, "extends": -1}\n',
                                    b'{"version": 99, "extends": 1}\n', b"nope\n"])
def test_a_log_with_a_bad_header_is_refused(tmp_path: Path, header: bytes) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    store.log_path.write_bytes(header)
    with pytest.raises(StateError, match=r"sessions\.log is not a valid orch state log"):
        StateStore(tmp_path).load()


def test_a_log_older_than_its_snapshot_is_already_in_it(tmp_path: Path) -> None:
    """A crash between writing a snapshot and starting its log over leaves the old log:
    its changes are in the snapshot, and replaying them would undo later ones."""
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    stale = state.log_header(0) + b'{"remove": "' + _record(1).id.encode() + b'"}\n'
    store.log_path.write_bytes(stale)
    assert set(StateStore(tmp_path).load()) == {_record(1).id}
    StateStore(tmp_path).update(_add(_record(2)))
    assert store.log_path.read_bytes().startswith(state.log_header(1))
    assert set(StateStore(tmp_path).load()) == {_record(1).id, _record(2).id}


def test_a_log_ahead_of_its_snapshot(tmp_path: Path) -> None:
    """A new log with no change yet may outlive a snapshot whose rename did not reach
    the disk: harmless. With changes in it, something else wrote it: refused."""
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    store.log_path.write_bytes(state.log_header(2))
    assert set(StateStore(tmp_path).load()) == {_record(1).id}
    StateStore(tmp_path).update(_add(_record(2)))
    assert set(StateStore(tmp_path).load()) == {_record(1).id, _record(2).id}
    store.log_path.write_bytes(state.log_header(9) + b'{"remove": "x"}\n')
    with pytest.raises(StateError, match="newer than"):
        StateStore(tmp_path).load()


def test_a_deleted_snapshot_takes_its_log_along(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.update(_add(_record(1)))
    store.update(_add(_record(2)))
    store.path.unlink()
    assert StateStore(tmp_path).load() == {}
    StateStore(tmp_path).update(_add(_record(3)))
    assert set(StateStore(tmp_path).load()) == {_record(3).id}
    assert store.log_path.read_bytes() == state.log_header(1)


def test_a_reader_racing_a_new_snapshot_reads_again(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    writer, reader = StateStore(tmp_path), StateStore(tmp_path)
    writer.update(_add(_record(1)))
    writer.update(_add(_record(2)))
    real = StateStore._read_file
    raced: list[Path] = []

    def read_file(self: StateStore, path: Path) -> bytes | None:
        if self is reader and path == reader.log_path and not raced:
            # Between the reader's two reads, another process folds the log into a new
            # snapshot and changes a record: the snapshot read is now one too old.
            raced.append(path)
            monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)
            writer.update(lambda s: s.pop(_record(2).id))
            writer.update(_add(_record(3)))
        return real(self, path)

    monkeypatch.setattr(StateStore, "_read_file", read_file)
    assert set(reader.load()) == {_record(1).id, _record(3).id}
    assert raced


def test_a_store_decodes_only_the_lines_added_since_its_last_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine, theirs = StateStore(tmp_path), StateStore(tmp_path)
    mine.update(_add(_record(1)))
    mine.update(_add(_record(2)))
    theirs.update(_add(_record(3)))
    decoded: list[str] = []
    real = Record.from_json

    def from_json(item: dict[str, Any], where: str) -> Record:
        decoded.append(item["id"])
        return real(item, where)

    monkeypatch.setattr(Record, "from_json", staticmethod(from_json))
    assert set(mine.load()) == {_record(n).id for n in (1, 2, 3)}
    assert decoded == [_record(3).id]


def test_encode_orders_records_by_creation() -> None:
    late, early = _record(1, created_at="2025-02-01"), _record(2, created_at="2025-01-01")
    doc = json.loads(state.encode({late.id: late, early.id: early}))
    assert [r["id"] for r in doc["sessions"]] == [early.id, late.id]
    assert doc["version"] == state.SCHEMA_VERSION == 5


# tests/unit/data/state-v1.json was written once by state.encode (schema version 1) and is
# checked in: a later orch must keep reading it.
V1_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def test_checked_in_v1_file_keeps_loading(tmp_path: Path) -> None:
    directory = tmp_path / "orch"
    directory.mkdir()
    (directory / "sessions.json").write_bytes((DATA / "state-v1.json").read_bytes())
    sessions = StateStore(directory).load()
    assert len(sessions) == 2
    killed = sessions[V1_ID]
    assert killed.argv == ["sh", "-c", "echo $(rm -rf /) `id`; cat <<'EOF' | tr a b\n\"q\"",
                           "--flag=a b", "ünïcødé"]
    assert killed.tags == ["review", "night run"]
    assert killed.env == {"API_MODE": "dry=run", "EMPTY": ""}
    assert killed.intent is Intent.KILL
    assert killed.final_result == "signal"
    assert killed.result == "signal"
    assert killed.exit_signal == "SIGKILL"
    assert killed.exit_code is None
    assert killed.invocation_id == "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert killed.main_pid == 31337
    assert killed.unit == "orch-code\\x20reviewer-7c9e6679.service"
    assert killed.scope == "system"
    assert killed.description == "nightly review; don't stop"
    assert killed.created_at == "2025-03-04T05:06:07.123456+00:00"
    child = sessions["0f8fad5b-d9cb-469f-a165-70867728950e"]
    assert child.parent_id == V1_ID
    assert child.intent is None
    assert child.exit_code == 0 and child.result == "success"


# tests/unit/data/state-v2.json was written once by state.encode (schema version 2) and is
# checked in: a persistent session restarted once (one archived invocation) and a plain one.
V2_ID = "9b2f6c1e-3d4a-4e8b-a6f0-1c2d3e4f5a6b"
V2_PLAIN_ID = "0c0ffee0-1111-4222-8333-444455556666"


def _load_checked_in(tmp_path: Path, name: str) -> Sessions:
    directory = tmp_path / "orch"
    directory.mkdir(exist_ok=True)
    (directory / "sessions.json").write_bytes((DATA / name).read_bytes())
    return StateStore(directory).load()


def test_checked_in_v2_file_keeps_loading(tmp_path: Path) -> None:
    sessions = _load_checked_in(tmp_path, "state-v2.json")
    assert set(sessions) == {V2_ID, V2_PLAIN_ID}
    agent = sessions[V2_ID]
    assert agent.persistent is True
    assert agent.restarts == 1
    assert agent.history == [{
        "invocation_id": "aa11aa11aa11aa11aa11aa11aa11aa11",
        "started_at": "2025-04-01T08:00:00.250000+00:00",
        "ended_at": "2025-04-02T23:59:58.500000+00:00", "status": "stopped",
        "exit_code": None, "exit_signal": "SIGTERM", "result": "success"}]
    assert agent.invocation_id == "bb22bb22bb22bb22bb22bb22bb22bb22"
    assert agent.main_pid == 877
    assert agent.started_at == "2025-04-03T07:30:01.400000+00:00"
    assert agent.requested_at == "2025-04-03T07:30:01.000000+00:00"
    assert agent.program == "/usr/local/bin/agent"
    assert agent.path == "/usr/local/bin:/usr/bin:/bin"
    assert agent.ending() is None and agent.intent is None
    assert agent.argv == ["agent", "--watch", "a b"]
    assert agent.env == {"MODE": "watch"}
    assert agent.unit == "orch-night\\x20agent-9b2f6c1e.service"
    plain = sessions[V2_PLAIN_ID]
    assert (plain.persistent, plain.restarts, plain.history) == (False, 0, [])
    assert (plain.exit_code, plain.result, plain.main_pid) == (2, "exit-code", None)


def test_checked_in_v1_records_get_the_v2_defaults(tmp_path: Path) -> None:
    sessions = _load_checked_in(tmp_path, "state-v1.json")
    assert len(sessions) == 2
    for record in sessions.values():
        assert (record.persistent, record.restarts, record.history) == (False, 0, [])
        assert (record.program, record.path, record.requested_at) == (None, None, None)


def test_v1_file_is_rewritten_as_current_on_the_next_change(tmp_path: Path) -> None:
    sessions = _load_checked_in(tmp_path, "state-v1.json")
    store = StateStore(tmp_path / "orch")
    store.update(_add(_record(9)))
    doc = json.loads(store.path.read_bytes())
    assert doc["version"] == state.SCHEMA_VERSION
    # Defaults are not written: the v1 records now read as v3 records with them.
    assert all("persistent" not in r and "history" not in r for r in doc["sessions"])
    assert {k: v for k, v in store.load().items() if k != _record(9).id} == sessions


def test_state_file_keeps_one_record_per_line_without_defaults() -> None:
    plain = _record(1)
    full = _record(2, tags=["a"], env={"K": "v"}, persistent=True, restarts=2,
                   history=[{"status": "lost"}], options={"restart": "no"},
                   intent=Intent.STOP, main_pid=7, exit_code=0, cost_usd=0.5,
                   usage={"input": 3}, agent_error=False, after=[plain.id])
    raw = state.encode({plain.id: plain, full.id: full})
    lines = raw.decode().splitlines()
    assert len(lines) == 4 and lines[1].endswith(",") and lines[3] == "]}"
    first = json.loads(lines[1].rstrip(","))
    assert set(first) == {"id", "name", "unit", "scope", "argv", "cwd", "created_at"}
    assert state.decode(raw, "x") == ({plain.id: plain, full.id: full}, 0)
    assert state.decode(state.encode({}, generation=3), "x") == ({}, 3)


def _v2_doc(**record_changes: Any) -> dict[str, Any]:
    data = _record(1, persistent=True, restarts=1).to_json()
    data.update(record_changes)
    return {"version": 2, "sessions": [data]}


BAD_V2 = {
    "restarts-negative": _v2_doc(restarts=-1),
    "restarts-a-string": _v2_doc(restarts="1"),
    "restarts-a-bool": _v2_doc(restarts=True),
    "restarts-null": _v2_doc(restarts=None),
    "persistent-a-string": _v2_doc(persistent="yes"),
    "persistent-a-number": _v2_doc(persistent=1),
    "history-of-strings": _v2_doc(history=["x"]),
    "history-an-object": _v2_doc(history={"invocation_id": "x"}),
    "program-a-list": _v2_doc(program=["/bin/x"]),
    "requested-at-a-number": _v2_doc(requested_at=1),
}


@pytest.mark.parametrize("doc", BAD_V2.values(), ids=BAD_V2.keys())
def test_bad_v2_field_refused_naming_the_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    store = StateStore(tmp_path)
    raw = json.dumps(doc).encode()
    store.path.write_bytes(raw)
    with pytest.raises(StateError) as caught:
        store.load()
    assert str(store.path) in caught.value.message
    with pytest.raises(StateError):
        store.update(_add(_record(2)))
    assert store.path.read_bytes() == raw


def test_good_v2_doc_of_the_bad_ones_loads(tmp_path: Path) -> None:
    # the refusals above are about the one bad field, not the rest of the record
    store = StateStore(tmp_path)
    store.path.write_bytes(json.dumps(_v2_doc()).encode())
    record = store.load()[_record(1).id]
    assert (record.persistent, record.restarts) == (True, 1)


def test_checked_in_v3_file_keeps_loading(tmp_path: Path) -> None:
    sessions = _load_checked_in(tmp_path, "state-v3.json")
    record = sessions["5f2b7a1e-0c3d-4e5f-8a9b-0c1d2e3f4a5b"]
    assert record.provider == "claude" and record.agent["model"] == "sonnet"
    assert record.provider_session_id == "9c1e2f4a-1111-4222-8333-444455556666"
    assert record.usage == {"input_tokens": 1200, "output_tokens": 340}
    assert record.cost_usd == 0.0123 and record.final_result == "All tests pass."
    assert record.options == {"timeout_sec": 3600.0, "sandbox": True,
                              "writable": ["/home/u/.claude"]}
    assert record.env_files == ["/home/u/.config/orch/anthropic.env"]
    assert record.secret_env == ["ANTHROPIC_API_KEY"]
    assert record.after == ["7c9e6679-7425-40de-944b-e07fc1f90ae7"]
    assert record.argv[-1] == "fix the $(tests)"


# tests/unit/data/state-v4.json and state-v4.log were written once by StateStore (schema
# version 4: a snapshot of two records, then a log that changes one, adds one and removes
# the other) and are checked in: a later orch must keep reading the pair.
def test_checked_in_v4_snapshot_and_log_keep_loading(tmp_path: Path) -> None:
    directory = tmp_path / "orch"
    directory.mkdir()
    (directory / "sessions.log").write_bytes((DATA / "state-v4.log").read_bytes())
    sessions = _load_checked_in(tmp_path, "state-v4.json")
    assert sorted(r.name for r in sessions.values()) == ["fixer", "new"]
    fixer = sessions["5f2b7a1e-0c3d-4e5f-8a9b-0c1d2e3f4a5b"]
    assert (fixer.main_pid, fixer.tags, fixer.provider) == (4242, ["ci", "logged"], "claude")
    new = sessions["9d3f8a2c-5b6e-4c7d-9e8f-a0b1c2d3e4f5"]
    assert new.argv == ["make", "test"] and new.persistent


# -- what a store remembers of the file between calls ----------------------------------

def test_encode_reuses_the_line_of_the_very_same_record_only() -> None:
    kept, changed = _record(1), _record(2)
    lines: state.Lines = {}
    first = state.encode({kept.id: kept, changed.id: changed}, lines)
    assert first == state.encode({kept.id: kept, changed.id: changed})
    # Plant a marker as kept's line: only an identical object may take it.
    lines[kept.id] = (kept, '{"marker": 1}')
    lines[changed.id] = (dataclasses.replace(changed), '{"marker": 2}')
    again = state.encode({kept.id: kept, changed.id: changed}, lines).decode()
    assert '{"marker": 1}' in again and '{"marker": 2}' not in again
    assert set(lines) == {kept.id, changed.id}


def test_decode_learns_the_lines_of_a_file_laid_out_as_encode_does() -> None:
    records = {r.id: r for r in (_record(1), _record(2, tags=["a,\n"]))}
    lines: state.Lines = {}
    decoded, _ = state.decode(state.encode(records, generation=5), "f", lines)
    assert decoded == records
    assert {i: json.loads(t) for i, (_, t) in lines.items()} == \
        {i: r.to_sparse_json() for i, r in records.items()}
    assert all(lines[i][0] is decoded[i] for i in decoded)


def test_decode_learns_nothing_from_another_layout() -> None:
    records = {r.id: r for r in (_record(1), _record(2))}
    doc = {"version": state.SCHEMA_VERSION, "sessions": [r.to_json() for r in records.values()]}
    lines: state.Lines = {"stale": (_record(9), "{}")}
    for raw in (json.dumps(doc, indent=2), json.dumps(doc)):
        assert state.decode(raw.encode(), "f", lines) == (records, 0)
        assert lines == {}


def test_a_store_sees_what_another_process_wrote(tmp_path: Path) -> None:
    mine, theirs = StateStore(tmp_path / "st"), StateStore(tmp_path / "st")
    mine.update(_add(_record(1)))
    assert set(mine.load()) == {_record(1).id}
    theirs.update(_add(_record(2)))
    theirs.update(lambda s: s.pop(_record(1).id))
    assert set(mine.load()) == {_record(2).id}
    mine.update(_add(_record(3)))
    assert set(StateStore(tmp_path / "st").load()) == {_record(2).id, _record(3).id}


def test_load_hands_out_a_copy(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "st")
    store.update(_add(_record(1)))
    store.load().clear()
    assert set(store.load()) == {_record(1).id}


def test_what_each_write_makes_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def kind(fd: int) -> str:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return "dir"
        name = os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1]
        return "temp" if name.startswith(".") else name

    def fsync(fd: int) -> None:
        synced.append(f"fsync {kind(fd)}")
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        synced.append(f"fdatasync {kind(fd)}")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    store = StateStore(tmp_path / "st")
    store.update(_add(_record(1)), sync=False)
    # The first change writes the snapshot: the temp file's data before its rename, the
    # directory (the rename and the new log) before the change is reported done.
    assert synced == ["fsync temp", "fsync dir"]
    synced.clear()
    store.update(_add(_record(2)), sync=False)
    assert synced == []  # in the log, seen by every reader, but not yet durable
    assert set(StateStore(tmp_path / "st").load()) == {_record(1).id, _record(2).id}
    store.sync()
    store.sync()
    assert synced == ["fdatasync sessions.log"]
    synced.clear()
    store.update(_add(_record(3)))
    assert synced == ["fdatasync sessions.log"]


def test_a_log_replays_whole_or_up_to_a_cut_last_line() -> None:
    from orch.stateformat import replay

    lines = [b'{"set": ' + json.dumps(_record(n).to_sparse_json()).encode() + b"}\n"
             for n in range(5)]
    lines.insert(3, b'{"remove": "%s"}\n' % _record(1).id.encode())
    entries = b"".join(lines)
    for tail, sound in ((b"", len(entries)), (b'{"set": {"id"\n', len(entries)),
                        (b'{"remove": 1}\n', len(entries))):
        sessions: Sessions = {}
        removed: set[str] = set()
        assert replay(sessions, entries + tail, "log", removed=removed) == sound
        assert list(sessions) == [_record(n).id for n in (0, 2, 3, 4)]
        assert removed == {_record(1).id}


def test_a_write_reuses_the_lines_of_the_snapshot_it_read(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)  # every change writes a new snapshot
    first = _record(1)
    StateStore(tmp_path).update(_add(first))
    store = StateStore(tmp_path)
    raw = store.path.read_bytes()
    canonical = json.dumps(first.to_sparse_json())
    # The same record in another key order: a line only a reused one would keep.
    reordered = json.dumps(dict(reversed(first.to_sparse_json().items())))
    store.path.write_bytes(raw.replace(canonical.encode(), reordered.encode()))
    assert set(store.load()) == {first.id}
    store.update(_add(_record(2)))
    assert reordered in store.path.read_text()
    assert set(StateStore(tmp_path).load()) == {first.id, _record(2).id}


def test_a_wait_for_the_lock_says_whom_it_waits_for_and_the_timeout_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from tests.locking import held_elsewhere

    store = StateStore(tmp_path / "state")
    store.update(_add(_record(1)))
    script = tmp_path / "hold\x1b[2J.py"  # a name no terminal should be handed whole
    with held_elsewhere(store.lock_path, script) as pid:
        monkeypatch.setattr(state, "LOCK_NOTICE_S", 0.0)
        monkeypatch.setattr(state, "LOCK_TIMEOUT", 0.2)
        with pytest.raises(StateError) as err:
            store.update(_add(_record(2)))
        # Told once, as a warning of the library's logger (on stderr, unless the
        # program using it has logging send it elsewhere).
        [said] = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
        who = f"pid {pid} (hold\\x1b[2J.py "  # its command, shown, cut to 80
        assert said[:2] == ("orch", "WARNING")
        assert said[2].startswith(f"orch: waiting for {store.lock_path}, held by {who}")
        assert said[2].endswith(")") and "\n" not in said[2] and "\x1b" not in said[2]
        assert err.value.message.startswith(
            f"{store.lock_path} stayed locked for 0s by {who}")
    store.update(_add(_record(2)))  # once it is let go
    assert sorted(store.load()) == sorted([_record(1).id, _record(2).id])


def test_the_lock_holder_is_found_by_the_files_device_and_inode(tmp_path: Path) -> None:
    from orch.locks import holder

    path = tmp_path / "lock"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        named = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        other = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino + 1}"
        locks = (f"1: POSIX  ADVISORY  WRITE 11 {named} 0 EOF\n"
                 f"2: FLOCK  ADVISORY  WRITE 22 {other} 0 EOF\n"
                 f"3: FLOCK  ADVISORY  WRITE 4194303 {named} 0 EOF\n"
                 f"3: -> FLOCK  ADVISORY  WRITE 33 {named} 0 EOF\n")
        assert holder(fd, locks) == "pid 4194303"  # no such process: no command
        assert holder(fd, locks.replace("4194303", "0")) is None  # not in our namespace
    finally:
        os.close(fd)


def test_a_reader_between_two_reads_of_a_log_cut_by_a_writer_sees_no_spliced_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A crash left an append cut short; a reader has read the log once (it reads on until
    # a read comes back empty) when a writer cuts that line off and appends two records.
    # Cut in place, the reader's next read began in the new lines: it joined the old
    # unfinished line to the rest of a new one, a record never written.
    writer, reader = StateStore(tmp_path), StateStore(tmp_path)
    writer.update(_add(_record(1)))
    writer.update(_add(_record(2)))
    with open(tmp_path / state.LOG_FILE, "ab") as log:
        log.write(b'{"set": {"id": "00000009-0000-4000-8000-000000000000", "name": "s9", "u')
    real_read = os.read
    between: list[int] = []

    def read(fd: int, size: int) -> bytes:
        data = real_read(fd, size)
        if not between and os.readlink(f"/proc/self/fd/{fd}").endswith(state.LOG_FILE):
            between.append(fd)
            monkeypatch.setattr(os, "read", real_read)  # the writer reads as ever
            writer.update(_add(_record(3), _record(4)))
            monkeypatch.setattr(os, "read", read)
        return data

    monkeypatch.setattr(os, "read", read)
    seen = reader.load()
    monkeypatch.setattr(os, "read", real_read)
    assert between
    assert {r.name for r in seen.values()} in ({"s1", "s2"}, {"s1", "s2", "s3", "s4"})
    assert all(seen[i] == r for i, r in StateStore(tmp_path).load().items() if i in seen)
    assert {r.name for r in StateStore(tmp_path).load().values()} == {"s1", "s2", "s3", "s4"}
