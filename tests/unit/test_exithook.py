"""The ExecStopPost hook: systemd's exit environment into the session's record."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.exithook import ending_from_env, main, record_exit
from orch.session import Ending, Record
from orch.state import Sessions, StateStore

SESSION = "22222222-3333-4444-8555-666666666666"
INV = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
OTHER_INV = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
ENDING = Ending("2025-01-01T00:00:00.000000+00:00", 0, None, "success")


def _record(invocation_id: str | None) -> Record:
    return Record(id=SESSION, name="s", unit="orch-s-22222222.service", scope="user",
                  argv=["prog"], cwd="/", created_at="2025-01-01T00:00:00+00:00",
                  invocation_id=invocation_id)


def _store_with(directory: Path, record: Record) -> StateStore:
    store = StateStore(directory)

    def add(sessions: Sessions) -> None:
        sessions[record.id] = record

    store.update(add)
    return store


@pytest.mark.parametrize(("env", "exit_code", "exit_signal", "result"), [
    ({"SERVICE_RESULT": "success", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}, 0, None,
     "success"),
    ({"SERVICE_RESULT": "signal", "EXIT_CODE": "killed", "EXIT_STATUS": "TERM"}, None,
     "SIGTERM", "signal"),
    ({"SERVICE_RESULT": "core-dump", "EXIT_CODE": "dumped", "EXIT_STATUS": "SEGV"}, None,
     "SIGSEGV", "core-dump"),
    ({"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "203"}, 203, None,
     "exit-code"),
    ({"SERVICE_RESULT": "protocol"}, None, None, "protocol"),
    ({}, None, None, "unknown"),
])
def test_ending_from_env(env: dict[str, str], exit_code: int | None, exit_signal: str | None,
                         result: str) -> None:
    ending = ending_from_env(env)
    assert (ending.exit_code, ending.exit_signal, ending.result) == (
        exit_code, exit_signal, result)
    assert ending.ended_at is not None


def test_record_exit_sets_ending_and_fills_invocation(tmp_path: Path) -> None:
    store = _store_with(tmp_path, _record(None))
    assert record_exit(store, SESSION, INV, ENDING) is not None
    record = store.load()[SESSION]
    assert record.invocation_id == INV
    assert record.ending() == ENDING


def test_record_exit_on_matching_invocation(tmp_path: Path) -> None:
    store = _store_with(tmp_path, _record(INV))
    failed = Ending("2025-01-01T00:00:01.000000+00:00", 3, None, "exit-code")
    assert record_exit(store, SESSION, INV, failed) is not None
    assert store.load()[SESSION].ending() == failed


def test_record_exit_refuses_an_older_invocation(tmp_path: Path) -> None:
    original = _record(INV)
    store = _store_with(tmp_path, original)
    before = store.path.read_bytes()
    assert record_exit(store, SESSION, OTHER_INV, ENDING) is None
    assert store.load()[SESSION] == original
    assert store.path.read_bytes() == before


def test_record_exit_unknown_session(tmp_path: Path) -> None:
    store = _store_with(tmp_path, _record(None))
    assert record_exit(store, "99999999-0000-4000-8000-000000000000", INV, ENDING) is None
    assert store.load() == {SESSION: _record(None)}


def test_main_without_session_id_is_usage(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.delenv("ORCH_SESSION_ID", raising=False)
    assert main([]) == 2
    assert main([str(tmp_path)]) == 2


def test_main_records_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    store = _store_with(tmp_path, _record(None))
    monkeypatch.setenv("ORCH_SESSION_ID", SESSION)
    monkeypatch.setenv("INVOCATION_ID", INV)
    monkeypatch.setenv("SERVICE_RESULT", "exit-code")
    monkeypatch.setenv("EXIT_CODE", "exited")
    monkeypatch.setenv("EXIT_STATUS", "7")
    assert main([str(tmp_path)]) == 0
    record = store.load()[SESSION]
    assert (record.exit_code, record.exit_signal, record.result) == (7, None, "exit-code")
    assert record.ended_at is not None
    assert record.invocation_id == INV


def test_an_end_whose_write_archived_the_record_is_told_all_the_same(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The write that records an end may be the one that takes the log past its size
    # and so writes a snapshot, moving the ended record to the archive at once (a
    # session in a hundred, at a thousand sessions). Before, its end went untold: no
    # ended event, no on_end hook.
    from orch import events, state

    store = _store_with(tmp_path, _record(INV))
    monkeypatch.setattr(state, "LOG_MIN_BYTES", 0)  # this end's write makes the snapshot
    for name, value in (("ORCH_SESSION_ID", SESSION), ("INVOCATION_ID", INV),
                        ("SERVICE_RESULT", "success"), ("EXIT_CODE", "exited"),
                        ("EXIT_STATUS", "0")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no [hooks]
    assert main([str(tmp_path)]) == 0
    assert SESSION not in store.load(archived=False)  # archived by that very write
    assert [(e.session_id, e.status) for e in events.read(tmp_path)
            if e.event == "ended"] == [(SESSION, "exited")]


def test_main_exits_0_on_a_corrupt_state_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "sessions.json").write_bytes(b"{not json")
    monkeypatch.setenv("ORCH_SESSION_ID", SESSION)
    assert main([str(tmp_path)]) == 0
    assert "could not record" in capsys.readouterr().err
    assert (tmp_path / "sessions.json").read_bytes() == b"{not json"


def test_record_exit_follows_a_restart_systemd_made_itself(tmp_path: Path) -> None:
    # The recorded invocation already ended; Restart= started the program again under
    # a new invocation, and this hook is the first to hear of it.
    first = Ending("2025-01-01T00:00:00+00:00", 1, None, "exit-code")
    store = _store_with(tmp_path, _record(INV).with_ending(first, INV))
    again = Ending("2025-01-01T00:00:02+00:00", 1, None, "exit-code")
    assert record_exit(store, SESSION, "f" * 32, again) is not None
    record = store.load()[SESSION]
    assert record.invocation_id == "f" * 32 and record.ending() == again
    assert [h["invocation_id"] for h in record.history] == [INV]
    assert record.history[0]["status"] == "failed" and record.restarts == 1


def test_a_restarted_run_keeps_its_start_and_a_stop_asked_for_during_it(
        tmp_path: Path) -> None:
    # Its start comes from the manager (main reads it while the hook runs); a stop or
    # kill asked for after the last run's end was recorded is this run's (before: both
    # were dropped, so it ended with no start, and a stop was no stop).
    import dataclasses

    from orch.session import Intent

    first = Ending("2025-01-01T00:00:00+00:00", 1, None, "exit-code")
    asked = dataclasses.replace(_record(INV).with_ending(first, INV),
                                intent=Intent.KILL, final_result="enough")
    store = _store_with(tmp_path, asked)
    again = Ending("2025-01-01T00:00:09+00:00", None, "SIGTERM", "signal")
    ended = record_exit(store, SESSION, OTHER_INV, again,
                        started_at=lambda record: "2025-01-01T00:00:01+00:00")
    assert ended is not None and ended == store.load()[SESSION]
    assert (ended.invocation_id, ended.started_at, ended.ended_at) == (
        OTHER_INV, "2025-01-01T00:00:01+00:00", again.ended_at)
    assert (ended.intent, ended.final_result) == (Intent.KILL, "enough")


def _runs(policy: str, result: str, starts_ago: list[float]) -> Record:
    """A session with Restart=POLICY whose runs started STARTS_AGO seconds before
    NOW_S, the last just ended with RESULT."""
    import dataclasses
    from datetime import UTC, datetime

    def stamp(ago: float) -> str:
        return datetime.fromtimestamp(NOW_S - ago, UTC).isoformat()

    history = [{"invocation_id": None, "started_at": stamp(ago)} for ago in starts_ago[:-1]]
    return dataclasses.replace(_record(INV), options={"restart": policy}, history=history,
                               started_at=stamp(starts_ago[-1]), result=result,
                               ended_at=stamp(0))


NOW_S = 1_800_000_000.0


@pytest.mark.parametrize(("policy", "result", "starts_ago", "again"), [
    ("no", "exit-code", [1], False),
    ("on-failure", "exit-code", [1], True),
    ("on-failure", "signal", [3, 1], True),
    ("on-failure", "success", [1], False),  # exit 0, or a clean signal: no restart
    ("always", "success", [1], True),
    ("always", "exit-code", [5, 4, 3, 2, 1], False),  # the fifth start in the interval
    ("on-failure", "exit-code", [900, 800, 700, 2, 1], True),  # three of them long ago
])
def test_whether_systemd_restarts_the_session_after_this_run(
        policy: str, result: str, starts_ago: list[float], again: bool) -> None:
    # Before, any Restart= session was taken to restart: its last run (the start limit
    # spent, or on-failure after a clean exit) was never told as its end.
    from orch.exithook import restarts_after

    assert restarts_after(_runs(policy, result, starts_ago), now=NOW_S) is again


def test_a_start_that_is_no_time_is_not_counted() -> None:
    import dataclasses

    from orch.exithook import restarts_after

    spent = _runs("always", "success", [5, 4, 3, 2, 1])
    assert restarts_after(dataclasses.replace(spent, started_at="not a time"), now=NOW_S)
