"""The pure status policy: a record and a unit view in, a status out."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orch.cgroups import Usage
from orch.session import Ending, Intent, Record, Session, Status, UnitView, derive_status

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
INV = "0123456789abcdef0123456789abcdef"
OTHER_INV = "fedcba9876543210fedcba9876543210"


def _record(**changes: Any) -> Record:
    base = Record(id="11111111-2222-4333-8444-555555555555", name="agent",
                  unit="orch-agent-11111111.service", scope="user", argv=["agent", "--x"],
                  cwd="/srv", tags=["t1"], description="d",
                  created_at=(NOW - timedelta(hours=1)).isoformat(), invocation_id=INV,
                  main_pid=4242, started_at=(NOW - timedelta(hours=1)).isoformat())
    return dataclasses.replace(base, **changes)


def _unit(**changes: Any) -> UnitView:
    base = UnitView(loaded=True, active_state="active", sub_state="running",
                    invocation_id=INV, main_pid=4242, exec_main_start_usec=1_700_000_000_000_000,
                    exec_main_start_mono_usec=1_000, exec_main_code=0, exec_main_status=0,
                    result="success")
    return dataclasses.replace(base, **changes)


GONE = _unit(loaded=False, active_state="inactive", sub_state="dead", invocation_id=None,
             main_pid=0, exec_main_start_usec=0, exec_main_start_mono_usec=0)
ENDED_OK: dict[str, Any] = {"ended_at": NOW.isoformat(), "exit_code": 0, "result": "success"}


def test_running_when_current_active_and_alive() -> None:
    assert derive_status(_record(), _unit(), main_alive=True, now=NOW) is Status.RUNNING


def test_lost_not_running_when_main_pid_not_the_started_process() -> None:
    assert derive_status(_record(), _unit(), main_alive=False, now=NOW) is Status.LOST


def test_starting_while_activating() -> None:
    unit = _unit(active_state="activating", sub_state="start", main_pid=0)
    assert derive_status(_record(), unit, main_alive=False, now=NOW) is Status.STARTING


@pytest.mark.parametrize("unit", [None, GONE])
@pytest.mark.parametrize(("ending", "intent", "expected"), [
    (ENDED_OK, None, Status.EXITED),
    ({**ENDED_OK, "exit_code": None, "exit_signal": "SIGTERM"}, None, Status.STOPPED),
    ({**ENDED_OK, "exit_code": 3, "result": "exit-code"}, None, Status.FAILED),
    ({**ENDED_OK, "exit_code": None, "exit_signal": "SIGKILL", "result": "signal"}, None,
     Status.FAILED),
    (ENDED_OK, Intent.KILL, Status.KILLED),
    (ENDED_OK, Intent.STOP, Status.STOPPED),
    ({**ENDED_OK, "exit_code": 1, "result": "exit-code"}, Intent.STOP, Status.STOPPED),
])
def test_unit_gone_status_from_recorded_ending(unit: UnitView | None, ending: dict[str, Any],
                                               intent: Intent | None, expected: Status) -> None:
    record = _record(intent=intent, **ending)
    assert derive_status(record, unit, main_alive=False, now=NOW) is expected


@pytest.mark.parametrize("unit", [None, GONE])
def test_lost_when_unit_gone_without_ending(unit: UnitView | None) -> None:
    assert derive_status(_record(), unit, main_alive=False, now=NOW) is Status.LOST


def test_starting_when_spawn_in_flight() -> None:
    record = _record(invocation_id=None, main_pid=None, started_at=None,
                     created_at=(NOW - timedelta(seconds=1)).isoformat())
    assert derive_status(record, None, main_alive=False, now=NOW) is Status.STARTING


def test_lost_when_spawn_never_confirmed_after_five_minutes() -> None:
    record = _record(invocation_id=None, main_pid=None, started_at=None,
                     created_at=(NOW - timedelta(minutes=5)).isoformat())
    assert derive_status(record, None, main_alive=False, now=NOW) is Status.LOST


def test_running_when_the_unit_runs_a_newer_invocation() -> None:
    # Units are named per session: a loaded one under another invocation is this
    # session, started again by systemd itself (Restart=).
    unit = _unit(invocation_id=OTHER_INV)
    assert derive_status(_record(), unit, main_alive=True, now=NOW) is Status.RUNNING
    assert derive_status(_record(**ENDED_OK), unit, main_alive=True, now=NOW) is Status.RUNNING


def test_an_older_invocations_ending_does_not_speak_for_a_newer_one() -> None:
    unit = _unit(invocation_id=OTHER_INV, active_state="failed", sub_state="failed",
                 main_pid=0, exec_main_code=1, exec_main_status=9, result="exit-code")
    record = _record(**ENDED_OK)
    assert derive_status(record, unit, main_alive=False, now=NOW) is Status.FAILED


def test_failed_from_unit_evidence_when_record_has_none() -> None:
    unit = _unit(active_state="inactive", sub_state="dead", main_pid=0, exec_main_code=1,
                 exec_main_status=3, result="exit-code")
    assert derive_status(_record(), unit, main_alive=False, now=NOW) is Status.FAILED
    assert unit.ending() == Ending(None, 3, None, "exit-code")


def test_unit_ending_names_the_killing_signal() -> None:
    unit = _unit(active_state="failed", sub_state="failed", main_pid=0, exec_main_code=2,
                 exec_main_status=9, result="signal")
    assert unit.ending() == Ending(None, None, "SIGKILL", "signal")
    assert derive_status(_record(), unit, main_alive=False, now=NOW) is Status.FAILED


def test_unit_ending_none_while_main_process_runs() -> None:
    assert _unit(exec_main_code=1).ending() is None
    assert _unit(exec_main_code=0, active_state="inactive", main_pid=0).ending() is None


def test_running_while_stop_post_hook_runs_after_main_exit() -> None:
    unit = _unit(active_state="deactivating", sub_state="stop-post", main_pid=0)
    assert derive_status(_record(), unit, main_alive=False, now=NOW) is Status.RUNNING


def test_a_failed_agent_runs_till_its_hook_said_whether_it_waits() -> None:
    """The unit knows the exit status before the hook has judged the agent's output: a
    command is failed at once, an agent only once its hook has recorded the end."""
    unit = _unit(active_state="deactivating", sub_state="stop-post", main_pid=0,
                 exec_main_code=1, exec_main_status=1, result="exit-code")
    assert derive_status(_record(), unit, main_alive=False, now=NOW) is Status.FAILED
    agent = _record(provider="claude")
    assert derive_status(agent, unit, main_alive=False, now=NOW) is Status.RUNNING
    ended = dataclasses.replace(agent, ended_at=NOW.isoformat(), exit_code=1,
                                result="exit-code")
    assert derive_status(ended, unit, main_alive=False, now=NOW) is Status.FAILED
    waiting = dataclasses.replace(ended, resumes_at=NOW.isoformat(), wait_kind="usage-limit")
    assert derive_status(waiting, unit, main_alive=False, now=NOW) is Status.LIMITED
    retrying = dataclasses.replace(waiting, wait_kind="transient")
    assert derive_status(retrying, GONE, main_alive=False, now=NOW) is Status.RETRYING
    stopped = dataclasses.replace(retrying, intent=Intent.STOP)
    assert derive_status(stopped, GONE, main_alive=False, now=NOW) is Status.STOPPED


def test_an_agent_that_said_it_failed_reads_failed_with_the_result_agent_error() -> None:
    # Before: "failed (result success)", the program's exit status against the agent's
    # verdict; a conversation's turn already said agent-error.
    said_failed = _record(provider="claude", agent_error=True, **ENDED_OK)
    session = Session.of(said_failed, derive_status(said_failed, GONE, False, NOW))
    assert (session.status, session.result) == (Status.FAILED, "agent-error")
    assert session.invocations[-1]["result"] == "agent-error"
    fine = Session.of(_record(provider="claude", agent_error=False, **ENDED_OK), Status.EXITED)
    assert fine.result == "success"
    killed = dataclasses.replace(said_failed, intent=Intent.KILL)
    assert Session.of(killed, Status.KILLED).result == "success"  # what kill recorded


def test_naive_created_at_does_not_crash() -> None:
    record = _record(invocation_id=None, created_at="2025-06-01T11:00:00")
    assert derive_status(record, None, main_alive=False, now=NOW) is Status.LOST


def test_session_json_keys_exactly() -> None:
    data = Session.of(_record(), Status.RUNNING, _unit()).to_json()
    assert set(data) == {
        "id", "name", "unit", "scope", "status", "main_pid", "invocation_id", "argv", "cwd",
        "tags", "description", "created_at", "started_at", "ended_at", "exit_code",
        "exit_signal", "result", "final_result", "parent_id", "persistent", "restarts",
        "invocations", "provider", "provider_session_id", "usage", "cost_usd", "options",
        "worktree", "after", "blocked", "placement", "queue", "priority", "position",
        "resumes_at", "waiting_for", "memory_current", "cpu_usage_nsec", "tasks_current",
        "io_read_bytes", "io_write_bytes", "processes"}
    assert type(data["status"]) is str and data["status"] == "running"
    assert data["invocations"][-1]["status"] == "running"
    assert data["main_pid"] == 4242


@pytest.mark.parametrize("status", list(Status))
def test_session_of_is_the_dataclass_its_fields_make(status: Status) -> None:
    """Session.of fills the instance directly: it must be the very session its
    constructor makes of the same fields, in order, and its JSON the same; neither
    shares a list or object with the record, nor the JSON with the session."""
    record = _record(history=[{"status": "failed"}], usage={"input_tokens": 3},
                     options={"sandbox": True}, after=["x"])
    session = Session.of(record, status, _unit())
    rebuilt = dataclasses.replace(session)  # through __init__
    assert session == rebuilt and repr(session) == repr(rebuilt)
    assert list(vars(session)) == [f.name for f in dataclasses.fields(Session)]
    data = session.to_json()
    assert list(data) == list(vars(session)) and data == rebuilt.to_json()
    assert data["status"] == str(status) and type(data["status"]) is str
    assert data["invocations"][-1]["status"] == str(status)
    for name in ("argv", "tags", "after", "options"):
        assert getattr(session, name) is not getattr(record, name)
    for name in ("argv", "tags", "after", "options", "usage", "invocations"):
        assert data[name] == getattr(session, name) and data[name] is not getattr(session, name)
    assert data["invocations"][0] is not record.history[0]


def test_session_of_ended_takes_unit_evidence_and_drops_pid() -> None:
    unit = _unit(active_state="failed", main_pid=0, exec_main_code=2, exec_main_status=15,
                 result="signal")
    session = Session.of(_record(), Status.FAILED, unit)
    assert session.main_pid is None
    assert (session.exit_code, session.exit_signal, session.result) == (None, "SIGTERM",
                                                                       "signal")


def test_session_of_fills_started_at_and_invocation_from_unit() -> None:
    record = _record(invocation_id=None, started_at=None)
    session = Session.of(record, Status.RUNNING, _unit())
    assert session.invocation_id == INV
    assert session.started_at == "2023-11-14T22:13:20.000000+00:00"


@pytest.mark.parametrize("status", list(Status))
def test_status_succeeded_only_for_exited(status: Status) -> None:
    assert status.succeeded is (status is Status.EXITED)


@pytest.mark.parametrize("status", list(Status))
def test_status_ended_false_only_while_it_may_still_run(status: Status) -> None:
    assert status.ended is (status not in (Status.STARTING, Status.RUNNING, Status.IDLE,
                                           Status.QUEUED, Status.LIMITED, Status.RETRYING))
    assert status.waiting_to_resume is (status in (Status.LIMITED, Status.RETRYING))


def test_record_json_round_trip_keeps_intent() -> None:
    record = _record(intent=Intent.KILL, **ENDED_OK)
    data = record.to_json()
    assert data["intent"] == "kill"
    assert Record.from_json(data, "here") == record


# --- a new invocation of the same session (persistent sessions) -------------------------

REQUESTED = "2025-06-01T12:00:00.000000+00:00"
EARLIER: dict[str, Any] = {"invocation_id": OTHER_INV, "started_at": "2025-05-01T00:00:00",
                           "ended_at": "2025-05-02T00:00:00", "status": "stopped",
                           "exit_code": None, "exit_signal": "SIGTERM", "result": "success"}


def test_next_invocation_archives_the_current_one_and_clears_it() -> None:
    record = _record(persistent=True, restarts=2, env={"K": "v"}, history=[EARLIER],
                     ended_at=NOW.isoformat(), exit_signal="SIGTERM", result="success",
                     program="/usr/bin/agent", path="/usr/bin", requested_at="2025-05-01",
                     usage={"input_tokens": 5}, cost_usd=0.25)
    following = record.next_invocation(REQUESTED)
    archived = {"invocation_id": INV, "started_at": record.started_at,
                "ended_at": NOW.isoformat(), "status": "stopped", "exit_code": None,
                "exit_signal": "SIGTERM", "result": "success",
                "usage": {"input_tokens": 5}, "cost_usd": 0.25}
    assert following == dataclasses.replace(
        record, history=[EARLIER, archived], restarts=3, invocation_id=None, main_pid=None,
        started_at=None, ended_at=None, exit_code=None, exit_signal=None, result=None,
        intent=None, requested_at=REQUESTED, usage=None, cost_usd=None)
    assert record.history == [EARLIER] and record.restarts == 2  # the old record is intact


@pytest.mark.parametrize(("ending", "intent", "status"), [
    ({}, None, "lost"),
    ({**ENDED_OK, "exit_code": 3, "result": "exit-code"}, None, "failed"),
    ({**ENDED_OK, "exit_code": None, "exit_signal": "SIGTERM"}, None, "stopped"),
    (ENDED_OK, None, "exited"),
    ({**ENDED_OK, "exit_code": None, "exit_signal": "SIGKILL", "result": "signal"},
     Intent.KILL, "killed"),
])
def test_next_invocation_archives_how_the_current_one_ended(
        ending: dict[str, Any], intent: Intent | None, status: str) -> None:
    following = _record(intent=intent, **ending).next_invocation(REQUESTED)
    entry = following.history[-1]
    assert type(entry["status"]) is str and entry["status"] == status
    assert (entry["invocation_id"], entry["exit_code"], entry["result"]) == (
        INV, ending.get("exit_code"), ending.get("result"))


def test_next_invocation_round_trips_through_json() -> None:
    following = _record(persistent=True, **ENDED_OK).next_invocation(REQUESTED)
    assert Record.from_json(following.to_json(), "here") == following


def test_session_invocations_list_history_then_the_current_one() -> None:
    restarted = dataclasses.replace(
        _record(persistent=True, restarts=1, history=[EARLIER]).next_invocation(REQUESTED),
        invocation_id="aaaa0000aaaa0000aaaa0000aaaa0000", main_pid=5151)
    unit = _unit(invocation_id="aaaa0000aaaa0000aaaa0000aaaa0000", main_pid=5151)
    data = Session.of(restarted, Status.RUNNING, unit).to_json()
    invocations = data["invocations"]
    assert [i["invocation_id"] for i in invocations] == [
        OTHER_INV, INV, "aaaa0000aaaa0000aaaa0000aaaa0000"]
    assert [i["status"] for i in invocations] == ["stopped", "lost", "running"]
    assert invocations[-1]["status"] == data["status"]
    assert invocations[-1]["started_at"] == "2023-11-14T22:13:20.000000+00:00"
    assert data["restarts"] == 2 and data["persistent"] is True


def test_a_run_systemd_started_again_shows_as_the_next_invocation() -> None:
    # Its record still holds the run before (its hook recorded that end); the unit runs a
    # newer invocation, which its own hook records only when it ends. Before, the view
    # mixed both: the old invocation id, its result on a running session, 0 restarts.
    ended = _record(options={"restart": "always"}, exit_signal="SIGTERM", **{
        **ENDED_OK, "exit_code": None})
    unit = _unit(invocation_id=OTHER_INV, main_pid=5151)
    data = Session.of(ended, Status.RUNNING, unit).to_json()
    assert (data["invocation_id"], data["main_pid"], data["restarts"]) == (OTHER_INV, 5151, 1)
    assert (data["result"], data["ended_at"], data["exit_signal"]) == (None, None, None)
    assert data["started_at"] == "2023-11-14T22:13:20.000000+00:00"  # the unit's run
    assert [(i["invocation_id"], i["status"], i["result"]) for i in data["invocations"]] == [
        (INV, "stopped", "success"), (OTHER_INV, "running", None)]
    # The unit's own invocation, or none known, is the record's: shown as recorded.
    for same in (_unit(active_state="failed", main_pid=0), _unit(invocation_id=None)):
        assert Session.of(ended, Status.STOPPED, same).to_json()["restarts"] == 0


def test_session_invocations_last_entry_carries_the_ending() -> None:
    unit = _unit(active_state="failed", main_pid=0, exec_main_code=1, exec_main_status=3,
                 result="exit-code")
    data = Session.of(_record(history=[EARLIER]), Status.FAILED, unit).to_json()
    last = data["invocations"][-1]
    assert len(data["invocations"]) == 2
    assert (last["status"], last["exit_code"], last["result"]) == ("failed", 3, "exit-code")
    assert last["status"] == data["status"]


def test_a_failed_unit_with_a_queued_restart_is_starting_not_ended() -> None:
    # With Restart=, a unit reads failed for a moment while its restart job is queued.
    failed = _unit(active_state="failed", sub_state="failed", main_pid=0, exec_main_code=1,
                   exec_main_status=3, result="exit-code")
    assert derive_status(_record(), failed, main_alive=False, now=NOW) is Status.FAILED
    queued = dataclasses.replace(failed, job_pending=True)
    assert derive_status(_record(), queued, main_alive=False, now=NOW) is Status.STARTING


def test_stop_post_between_restarts_is_not_the_end() -> None:
    between = _unit(active_state="deactivating", sub_state="stop-post", main_pid=0,
                    exec_main_code=1, exec_main_status=3, result="exit-code")
    assert derive_status(_record(), between, main_alive=False, now=NOW) is Status.FAILED
    restarting = _record(options={"restart": "on-failure"})
    assert derive_status(restarting, between, main_alive=False, now=NOW) is Status.STARTING


# Each checked field with a value of the wrong JSON type and the words its error uses.
WRONG_TYPES = [
    *[(name, 1, "a string") for name in ("id", "name", "unit", "cwd",
                                         "description", "created_at")],
    # Before, any string: `show` of a hand-edited "scope" failed as an internal error.
    ("scope", 1, '"user" or "system"'), ("scope", "galaxy", '"user" or "system"'),
    *[(name, 1, "a string or null") for name in (
        "parent_id", "invocation_id", "started_at", "ended_at", "exit_signal", "result",
        "final_result", "program", "path", "requested_at", "provider",
        "provider_session_id", "worktree", "worktree_repo", "blocked", "intent")],
    ("main_pid", "1", "an integer or null"), ("exit_code", True, "an integer or null"),
    ("argv", [], "a non-empty list of strings"), ("argv", ["a", 1], "a non-empty list of strings"),
    *[(name, ["a", None], "a list of strings") for name in ("tags", "env_files",
                                                            "secret_env", "after")],
    ("tags", "a", "a list of strings"), ("persistent", 1, "true or false"),
    ("restarts", -1, "a count"), ("restarts", 1.0, "a count"),
    *[("history", runs, "a list of runs (objects whose usage is counts and cost a number)")
      for runs in ([[]], [{"usage": {"output_tokens": "5"}}], [{"usage": "x"}],
                   [{"cost_usd": "0.1"}])],  # before: `show` failed summing them
    ("options", [], "an object"),
    ("agent", None, "an object"), ("agent_error", 0, "true, false or null"),
    ("usage", {"in": "1"}, "an object of counts"), ("usage", [], "an object of counts"),
    ("cost_usd", "1", "a number"), ("env", {"A": 1}, "an object of strings"),
    ("env", [], "an object of strings"),
]


@pytest.mark.parametrize(("name", "value", "expected"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_is_named(name: str, value: object, expected: str) -> None:
    data = {**_record().to_sparse_json(), name: value}
    with pytest.raises(ValueError) as raised:
        Record.from_json(data, "here")
    assert str(raised.value) == \
        f"here: field {name!r} of session {data['id']!r} is not {expected}"


def test_the_first_wrong_field_in_order_is_named() -> None:
    data = {"env": [], "restarts": -1, **_record().to_sparse_json(), "cwd": None}
    with pytest.raises(ValueError, match=r"field 'cwd' .* is not a string$"):
        Record.from_json(data, "here")


def test_every_right_type_is_taken() -> None:
    data = {**_record().to_sparse_json(), "parent_id": None, "main_pid": None,
            "exit_code": -1, "usage": {"input_tokens": 1}, "cost_usd": 0.5, "restarts": 0,
            "agent_error": False, "history": [{}], "env": {"A": "b"}, "intent": "stop",
            "persistent": True, "placement": "host a"}
    record = Record.from_json(data, "here")
    assert record.intent is Intent.STOP and record.cost_usd == 0.5
    assert Record.from_json(record.to_sparse_json(), "here") == record


def test_timestamps_are_written_as_datetime_writes_them() -> None:
    from orch.session import now_iso, usec_to_iso

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(5)
    for usec in [1, 999_999, 1_000_000, 1_733_450_000_123_456,
                 *(rng.randrange(1, 253_402_300_799_999_999) for _ in range(20_000))]:
        assert usec_to_iso(usec) == (epoch + timedelta(microseconds=usec)).isoformat(
            timespec="microseconds")
    assert usec_to_iso(0) is None
    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(now_iso())
    assert before <= stamp <= datetime.now(UTC)


def test_a_layout_checked_before_still_refuses_a_wrong_value() -> None:
    # The same fields in the same order: what was learnt of the first record's types
    # must not let the second's through.
    right = {**_record().to_sparse_json(), "main_pid": 5, "tags": ["a"]}
    assert Record.from_json(right, "here").main_pid == 5
    for name, value, expected in [("main_pid", "5", "an integer or null"),
                                  ("tags", ["a", 1], "a list of strings")]:
        with pytest.raises(ValueError, match=f"field {name!r} .* is not {expected}$"):
            Record.from_json({**right, name: value}, "here")
        assert Record.from_json(right, "here") == Record.from_json(right, "here")


# --- what a session used, over every invocation ------------------------------------------

def test_cost_and_tokens_are_summed_over_every_invocation() -> None:
    first = {**EARLIER, "usage": {"input_tokens": 10, "output_tokens": 2}, "cost_usd": 0.5}
    unpriced = {**EARLIER, "usage": None, "cost_usd": None}
    record = _record(history=[first, unpriced], usage={"input_tokens": 4,
                                                       "cache_read_input_tokens": 7},
                     cost_usd=0.25)
    session = Session.of(record, Status.RUNNING, _unit())
    assert session.cost_usd == 0.75
    assert session.usage == {"input_tokens": 14, "output_tokens": 2,
                             "cache_read_input_tokens": 7}
    # Each invocation keeps its own: the current one what the record says now.
    assert [run["cost_usd"] for run in session.invocations] == [0.5, None, 0.25]


def test_a_session_no_invocation_priced_has_no_cost() -> None:
    session = Session.of(_record(history=[EARLIER]), Status.RUNNING, _unit())
    assert session.cost_usd is None and session.usage is None


def test_a_session_shows_what_its_cgroup_uses() -> None:
    usage = Usage(memory_current=4096, cpu_usage_nsec=7, tasks_current=3)
    data = Session.of(_record(), Status.RUNNING, _unit(), usage).to_json()
    assert (data["memory_current"], data["cpu_usage_nsec"], data["tasks_current"]) == (4096, 7, 3)
    assert data["io_read_bytes"] is None and data["io_write_bytes"] is None
    assert data["processes"] is None  # ps does not read them


def test_a_run_systemd_started_again_shows_its_own_start() -> None:
    # Restart=: the record still names the last run (its start an hour ago); the unit
    # runs a newer one. Before, `show` said "running since" the first run's start.
    unit = _unit(invocation_id="bbbb0000bbbb0000bbbb0000bbbb0000")
    session = Session.of(_record(**ENDED_OK), Status.RUNNING, unit)
    assert session.started_at == "2023-11-14T22:13:20.000000+00:00"
    assert Session.of(_record(), Status.RUNNING, _unit()).started_at == \
        (NOW - timedelta(hours=1)).isoformat()  # the recorded run: the record's start
