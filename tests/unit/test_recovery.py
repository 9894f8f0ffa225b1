"""The pure side of `orch recover`: decisions, journal evidence, adoption, tallies."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orch.journal_entries import endings_from_journal
from orch.recovery import (
    Decision,
    Outcome,
    counts,
    decide,
    record_from_unit,
    wants_restart,
)
from orch.session import (
    Ending,
    Intent,
    Record,
    Status,
    UnitFacts,
    UnitView,
    derive_status,
    ended_status,
)

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
INV = "0123456789abcdef0123456789abcdef"
OTHER_INV = "fedcba9876543210fedcba9876543210"
STARTED = (NOW - timedelta(hours=1)).isoformat()
UNIT_START_USEC = 1_700_000_000_000_000
UNIT_STARTED = "2023-11-14T22:13:20.000000+00:00"  # UNIT_START_USEC as ISO 8601


def _record(**changes: Any) -> Record:
    base = Record(id="11111111-2222-4333-8444-555555555555", name="agent",
                  unit="orch-agent-11111111.service", scope="user", argv=["agent", "--x"],
                  cwd="/srv", description="d", created_at=STARTED, invocation_id=INV,
                  main_pid=4242, started_at=STARTED, requested_at=STARTED)
    return dataclasses.replace(base, **changes)


def _unit(**changes: Any) -> UnitView:
    base = UnitView(loaded=True, active_state="active", sub_state="running",
                    invocation_id=INV, main_pid=4242, exec_main_start_usec=UNIT_START_USEC,
                    exec_main_start_mono_usec=1_000, exec_main_code=0, exec_main_status=0,
                    result="success")
    return dataclasses.replace(base, **changes)


GONE = UnitView(False, "inactive", "dead", None, 0, 0, 0, 0, 0, "")
ENDED_AT = (NOW - timedelta(minutes=10)).isoformat()
EXITED_OK: dict[str, Any] = {"ended_at": ENDED_AT, "exit_code": 0, "result": "success"}
MANAGER_STOPPED: dict[str, Any] = {"ended_at": ENDED_AT, "exit_signal": "SIGTERM",
                                   "result": "success"}
FAILED_3: dict[str, Any] = {"ended_at": ENDED_AT, "exit_code": 3, "result": "exit-code"}
KILLED: dict[str, Any] = {"ended_at": ENDED_AT, "exit_signal": "SIGKILL", "result": "signal"}


# --- decide: the unit is loaded under the recorded invocation -------------------------

def test_running_refreshes_main_pid_and_fills_missing_started_at() -> None:
    record = _record(main_pid=1111, started_at=None)
    decision = decide(record, _unit(main_pid=4242), True, None, now=NOW)
    assert decision == Decision(Outcome.RUNNING, dataclasses.replace(
        record, main_pid=4242, started_at=UNIT_STARTED), restart=False)


def test_running_keeps_a_recorded_started_at() -> None:
    decision = decide(_record(), _unit(), True, None, now=NOW)
    assert decision.outcome is Outcome.RUNNING
    assert decision.record == _record()


def test_unconfirmed_spawn_found_running_gains_the_unit_invocation() -> None:
    record = _record(invocation_id=None, main_pid=None, started_at=None)
    decision = decide(record, _unit(), True, None, now=NOW)
    assert decision.outcome is Outcome.RUNNING
    assert decision.record == dataclasses.replace(record, invocation_id=INV, main_pid=4242,
                                                  started_at=UNIT_STARTED)
    assert decision.record.history == [] and decision.record.restarts == 0


def test_active_unit_whose_main_process_is_not_alive_is_lost_and_untouched() -> None:
    record = _record()
    decision = decide(record, _unit(), False, None, now=NOW)
    assert decision == Decision(Outcome.LOST, record, restart=False)


def test_ended_from_the_unit_own_evidence() -> None:
    unit = _unit(active_state="inactive", sub_state="dead", main_pid=0, exec_main_code=1,
                 exec_main_status=4, result="exit-code")
    decision = decide(_record(), unit, False, None, now=NOW)
    assert decision.outcome is Outcome.ENDED and not decision.restart
    assert decision.record == _record(exit_code=4, exit_signal=None, result="exit-code")
    assert derive_status(decision.record, GONE, False, NOW) is Status.FAILED


def test_unit_evidence_wins_over_the_journal_for_a_current_unit() -> None:
    unit = _unit(active_state="failed", sub_state="failed", main_pid=0, exec_main_code=2,
                 exec_main_status=9, result="signal")
    journal = Ending(ENDED_AT, 1, None, "exit-code")
    decision = decide(_record(), unit, False, journal, now=NOW)
    assert decision.outcome is Outcome.ENDED
    ending = decision.record.ending()
    assert ending == Ending(None, None, "SIGKILL", "signal")


# --- decide: the unit is gone ---------------------------------------------------------

@pytest.mark.parametrize("journal", [None, Ending(NOW.isoformat(), 9, None, "exit-code")])
def test_gone_with_a_recorded_ending_is_already_ended_and_untouched(
        journal: Ending | None) -> None:
    record = _record(**FAILED_3)
    decision = decide(record, GONE, False, journal, now=NOW)
    assert decision == Decision(Outcome.ALREADY_ENDED, record, restart=False)


def test_gone_without_a_recorded_ending_takes_the_journal_evidence() -> None:
    journal = Ending("2025-06-01T11:59:00.000000+00:00", 7, None, "exit-code")
    decision = decide(_record(), GONE, False, journal, now=NOW)
    assert decision.outcome is Outcome.ENDED and not decision.restart
    assert decision.record == _record(ended_at="2025-06-01T11:59:00.000000+00:00",
                                      exit_code=7, result="exit-code")
    assert decision.record.ending() == journal


@pytest.mark.parametrize("unit", [GONE, dataclasses.replace(GONE, loaded=True)])
def test_a_blocked_session_that_never_ran_is_already_ended(unit: UnitView) -> None:
    # --after whose dependency failed: before, every recover called it lost.
    record = _record(invocation_id=None, main_pid=None, started_at=None,
                     after=["x"], blocked="dependency x is gone")
    assert decide(record, unit, False, None, now=NOW) == \
        Decision(Outcome.ALREADY_ENDED, record)


def test_gone_without_any_evidence_is_lost_and_untouched() -> None:
    record = _record()
    assert decide(record, GONE, False, None, now=NOW) == Decision(Outcome.LOST, record)


def test_persistent_gone_without_any_evidence_is_restarted() -> None:
    record = _record(persistent=True)
    decision = decide(record, GONE, False, None, now=NOW)
    assert decision == Decision(Outcome.RESTARTED, record, restart=True)


def test_persistent_gone_with_journal_evidence_of_a_manager_stop_is_restarted() -> None:
    journal = Ending(ENDED_AT, None, "SIGTERM", "success")
    decision = decide(_record(persistent=True), GONE, False, journal, now=NOW)
    assert decision.outcome is Outcome.RESTARTED and decision.restart
    assert decision.record.ending() == journal  # the evidence is kept for the archive


@pytest.mark.parametrize(("ending", "intent", "outcome"), [
    (MANAGER_STOPPED, None, Outcome.RESTARTED),  # the manager stopped it (a shutdown)
    (MANAGER_STOPPED, Intent.STOP, Outcome.ALREADY_ENDED),  # orch stop
    (EXITED_OK, None, Outcome.ALREADY_ENDED),  # exited 0 on its own
    (FAILED_3, None, Outcome.ALREADY_ENDED),  # failed on its own
    (KILLED, None, Outcome.ALREADY_ENDED),  # a signal other than the manager's stop
    (KILLED, Intent.KILL, Outcome.ALREADY_ENDED),  # orch kill
    (MANAGER_STOPPED, Intent.KILL, Outcome.ALREADY_ENDED),
], ids=["manager-stop", "orch-stop", "exited-0", "exit-code", "signal", "orch-kill",
        "orch-kill-as-sigterm"])
def test_persistent_session_restarts_only_when_ended_under_it(
        ending: dict[str, Any], intent: Intent | None, outcome: Outcome) -> None:
    record = _record(persistent=True, intent=intent, **ending)
    decision = decide(record, GONE, False, None, now=NOW)
    assert decision.outcome is outcome
    assert decision.restart is (outcome is Outcome.RESTARTED)
    assert decision.record == record


@pytest.mark.parametrize("ending", [{}, MANAGER_STOPPED], ids=["lost", "manager-stop"])
def test_a_session_that_is_not_persistent_never_restarts(ending: dict[str, Any]) -> None:
    record = _record(**ending)
    assert not wants_restart(record)
    assert not decide(record, GONE, False, None, now=NOW).restart


@pytest.mark.parametrize("intent", [Intent.STOP, Intent.KILL])
def test_persistent_session_stopped_through_orch_is_not_restarted_when_its_end_is_lost(
        intent: Intent) -> None:
    record = _record(persistent=True, intent=intent)
    decision = decide(record, GONE, False, None, now=NOW)
    assert not decision.restart
    assert decision.outcome is not Outcome.RESTARTED


# --- decide: a spawn or restart not yet confirmed -------------------------------------

@pytest.mark.parametrize("persistent", [False, True])
def test_unconfirmed_spawn_just_requested_is_left_starting(persistent: bool) -> None:
    record = _record(invocation_id=None, main_pid=None, started_at=None,
                     requested_at=NOW.isoformat(), persistent=persistent)
    decision = decide(record, GONE, False, None, now=NOW)
    assert decision == Decision(Outcome.STARTING, record, restart=False)


def test_restart_in_flight_of_an_old_session_is_left_starting() -> None:
    # created an hour ago, but its new invocation was asked for just now
    record = _record(invocation_id=None, main_pid=None, started_at=None, persistent=True,
                     restarts=1, requested_at=(NOW - timedelta(seconds=2)).isoformat())
    assert decide(record, GONE, False, None, now=NOW).outcome is Outcome.STARTING


@pytest.mark.parametrize(("persistent", "outcome"), [(False, Outcome.LOST),
                                                      (True, Outcome.RESTARTED)])
def test_unconfirmed_spawn_requested_five_minutes_ago_is_lost(persistent: bool,
                                                              outcome: Outcome) -> None:
    record = _record(invocation_id=None, main_pid=None, started_at=None,
                     requested_at=(NOW - timedelta(minutes=5)).isoformat(),
                     persistent=persistent)
    decision = decide(record, GONE, False, None, now=NOW)
    assert decision == Decision(outcome, record, restart=persistent)


# --- decide: the unit runs an invocation the record does not know ---------------------

def _archived(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"invocation_id": INV, "started_at": STARTED, "ended_at": None,
                             "status": "lost", "exit_code": None, "exit_signal": None,
                             "result": None, "usage": None, "cost_usd": None}
    entry.update(changes)
    return entry


@pytest.mark.parametrize(("recorded", "journal", "archived"), [
    ({}, None, _archived()),
    ({}, Ending(ENDED_AT, 2, None, "exit-code"),
     _archived(ended_at=ENDED_AT, exit_code=2, result="exit-code", status="failed")),
    (MANAGER_STOPPED, None,
     _archived(ended_at=ENDED_AT, exit_signal="SIGTERM", result="success", status="stopped")),
], ids=["no-evidence", "journal-evidence", "recorded-ending"])
def test_unit_under_another_invocation_is_followed_and_the_old_one_archived(
        recorded: dict[str, Any], journal: Ending | None, archived: dict[str, Any]) -> None:
    record = _record(persistent=True, **recorded)
    unit = _unit(invocation_id=OTHER_INV, main_pid=5151)
    decision = decide(record, unit, True, journal, now=NOW)
    assert decision.outcome is Outcome.RUNNING and not decision.restart
    new = decision.record
    assert new.history == [archived]
    assert new.restarts == 1
    assert (new.invocation_id, new.main_pid, new.started_at) == (OTHER_INV, 5151, UNIT_STARTED)
    assert new.ending() is None and new.intent is None
    assert new.requested_at is not None and datetime.fromisoformat(new.requested_at)
    assert (new.id, new.unit, new.argv, new.persistent) == (record.id, record.unit,
                                                            record.argv, True)
    assert derive_status(new, unit, True, NOW) is Status.RUNNING


# --- decide is idempotent: recover twice does what recover once did ------------------

SECOND_OUTCOME = {
    Outcome.RUNNING: Outcome.RUNNING,
    Outcome.ENDED: Outcome.ALREADY_ENDED,
    Outcome.ALREADY_ENDED: Outcome.ALREADY_ENDED,
    Outcome.LOST: Outcome.LOST,
    Outcome.STARTING: Outcome.STARTING,
}
IDEMPOTENT = {
    "running": (_record(main_pid=1, started_at=None), _unit(), True, {}),
    "unconfirmed-running": (_record(invocation_id=None, main_pid=None), _unit(), True, {}),
    "active-not-alive": (_record(), _unit(), False, {}),
    "unit-evidence": (_record(), _unit(active_state="inactive", main_pid=0, exec_main_code=1,
                                       exec_main_status=4, result="exit-code"), False, {}),
    "journal-evidence": (_record(), GONE, False, {INV: Ending(ENDED_AT, 7, None, "exit-code")}),
    "recorded-ending": (_record(**FAILED_3), GONE, False, {}),
    "lost": (_record(), GONE, False, {}),
    "persistent-orch-stop": (_record(persistent=True, intent=Intent.STOP, **MANAGER_STOPPED),
                             GONE, False, {}),
    "starting": (_record(invocation_id=None, requested_at=NOW.isoformat()), GONE, False, {}),
    "another-invocation": (_record(), _unit(invocation_id=OTHER_INV), True,
                           {INV: Ending(ENDED_AT, 1, None, "exit-code")}),
}


@pytest.mark.parametrize(("record", "unit", "alive", "journal"), IDEMPOTENT.values(),
                         ids=IDEMPOTENT.keys())
def test_deciding_again_changes_nothing(record: Record, unit: UnitView, alive: bool,
                                        journal: dict[str, Ending]) -> None:
    # The journal is evidence of the recorded invocation's end, looked up as recover does.
    first = decide(record, unit, alive, journal.get(record.invocation_id or ""), now=NOW)
    second = decide(first.record, unit, alive, journal.get(first.record.invocation_id or ""),
                    now=NOW)
    assert second.record == first.record
    assert second.outcome is SECOND_OUTCOME[first.outcome]
    assert not second.restart


def test_unit_under_another_invocation_that_already_failed_is_not_running() -> None:
    unit = _unit(invocation_id=OTHER_INV, active_state="failed", sub_state="failed", main_pid=0,
                 exec_main_code=1, exec_main_status=3, result="exit-code")
    first = decide(_record(), unit, False, None, now=NOW)
    second = decide(first.record, unit, False, None, now=NOW)
    assert first.outcome is not Outcome.RUNNING
    assert second.record == first.record


# --- the manager's journal records of an end (field sets seen with systemd 252) -----------

MAIN_EXITED = "98e322203f7a4ed290d09fe03c09fe15"
UNIT_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"
UNIT_SUCCEEDED = "7ad2d189f7e94e70a38c781354912448"
UNIT_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
J_INV = "744d0c2f5b8e4a1d9c3b6a7f8e9d0c1b"
J_INV2 = "2b1e7c9d0a3f4e5b8c6d1f2a3b4c5d6e"
TS = "1795220983793025"
TS_ISO = "2026-11-21T00:29:43.793025+00:00"
TS_LATER = "1795220983795101"
TS_LATER_ISO = "2026-11-21T00:29:43.795101+00:00"


def _exited(invocation: str, code: str, status: str, *, user: bool = False,
            stamp: str = TS) -> dict[str, Any]:
    return {"MESSAGE_ID": MAIN_EXITED, _inv_field(user): invocation,
            _unit_field(user): "orch-x-744d0c2f.service", "EXIT_CODE": code,
            "EXIT_STATUS": status, "__REALTIME_TIMESTAMP": stamp, "PRIORITY": "5",
            "_PID": "1" if not user else "812", "SYSLOG_IDENTIFIER": "systemd",
            "MESSAGE": f"orch-x-744d0c2f.service: Main process exited, code={code}, "
                       f"status={status}", **_manager_trusted(user)}


def _result(invocation: str, result: str, *, user: bool = False) -> dict[str, Any]:
    return {"MESSAGE_ID": UNIT_FAILED, _inv_field(user): invocation,
            _unit_field(user): "orch-x-744d0c2f.service", "UNIT_RESULT": result,
            "__REALTIME_TIMESTAMP": TS_LATER, "PRIORITY": "4", "SYSLOG_IDENTIFIER": "systemd",
            "MESSAGE": f"orch-x-744d0c2f.service: Failed with result '{result}'.",
            **_manager_trusted(user)}


def _succeeded(invocation: str, *, user: bool = False) -> dict[str, Any]:
    return {"MESSAGE_ID": UNIT_SUCCEEDED, _inv_field(user): invocation,
            _unit_field(user): "orch-x-744d0c2f.service", "__REALTIME_TIMESTAMP": TS_LATER,
            "PRIORITY": "6", "SYSLOG_IDENTIFIER": "systemd",
            "MESSAGE": "orch-x-744d0c2f.service: Deactivated successfully.",
            **_manager_trusted(user)}


def _inv_field(user: bool) -> str:
    return "USER_INVOCATION_ID" if user else "INVOCATION_ID"


def _unit_field(user: bool) -> str:
    return "USER_UNIT" if user else "UNIT"


def _manager_trusted(user: bool) -> dict[str, str]:
    # A user manager's records also carry the invocation of user@.service itself, as a
    # trusted field: it must never be taken for the session's invocation.
    if not user:
        return {"_SYSTEMD_UNIT": "init.scope"}
    return {"_SYSTEMD_UNIT": "user@1000.service",
            "_SYSTEMD_INVOCATION_ID": "99999999999999999999999999999999"}


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_journal_exit_status_and_failure_result(user: bool) -> None:
    entries = [_exited(J_INV, "exited", "7", user=user), _result(J_INV, "exit-code", user=user)]
    assert endings_from_journal(entries) == {J_INV: Ending(TS_ISO, 7, None, "exit-code")}


@pytest.mark.parametrize(("code", "status", "result", "signal"), [
    ("killed", "KILL", "signal", "SIGKILL"),
    ("killed", "TERM", "signal", "SIGTERM"),
    ("dumped", "SEGV", "core-dump", "SIGSEGV"),
])
def test_journal_killed_by_a_signal(code: str, status: str, result: str, signal: str) -> None:
    endings = endings_from_journal([_exited(J_INV, code, status), _result(J_INV, result)])
    assert endings == {J_INV: Ending(TS_ISO, None, signal, result)}
    assert ended_status(endings[J_INV], None) is Status.FAILED


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_journal_deactivated_successfully_alone_means_exited(user: bool) -> None:
    endings = endings_from_journal([_succeeded(J_INV, user=user)])
    assert endings == {J_INV: Ending(TS_LATER_ISO, None, None, "success")}
    assert ended_status(endings[J_INV], None) is Status.EXITED


def _stopped(invocation: str, *, user: bool = False) -> dict[str, Any]:
    return {"MESSAGE_ID": "9d1aaa27d60140bd96365438aad20286", _inv_field(user): invocation,
            _unit_field(user): "orch-x-744d0c2f.service", "__REALTIME_TIMESTAMP": TS,
            "PRIORITY": "6", "SYSLOG_IDENTIFIER": "systemd", "JOB_TYPE": "stop",
            "JOB_RESULT": "done", "MESSAGE": "Stopped orch-x-744d0c2f.service - orch session",
            **_manager_trusted(user)}


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_journal_a_stop_by_the_manager_means_stopped(user: bool) -> None:
    # Before, a system manager's stop read as a clean exit (a persistent session was not
    # started again at boot), and a user manager's, which logs no "Deactivated
    # successfully", as no evidence at all (lost).
    for entries in ([_succeeded(J_INV, user=user), _stopped(J_INV, user=user)],
                    [_stopped(J_INV, user=user)]):
        endings = endings_from_journal(entries)
        assert endings[J_INV].exit_signal == "SIGTERM", entries
        assert ended_status(endings[J_INV], None) is Status.STOPPED
    # What the main process's end says comes first: a stop that had to kill fails.
    killed = endings_from_journal([_exited(J_INV, "killed", "KILL", user=user),
                                   _result(J_INV, "timeout", user=user),
                                   _stopped(J_INV, user=user)])
    assert killed == {J_INV: Ending(TS_ISO, None, "SIGKILL", "timeout")}


def test_journal_exit_zero_at_debug_level_with_success() -> None:
    endings = endings_from_journal([_exited(J_INV, "exited", "0"), _succeeded(J_INV)])
    assert endings == {J_INV: Ending(TS_ISO, 0, None, "success")}


def test_journal_exit_record_without_result_record_infers_the_result() -> None:
    assert endings_from_journal([_exited(J_INV, "exited", "7")]) == {
        J_INV: Ending(TS_ISO, 7, None, "exit-code")}


def test_journal_entries_without_an_invocation_id_are_ignored() -> None:
    entries = [{k: v for k, v in e.items() if k != "INVOCATION_ID"}
               for e in (_exited(J_INV, "exited", "7"), _result(J_INV, "exit-code"),
                         _succeeded(J_INV))]
    assert endings_from_journal(entries) == {}


def test_journal_start_records_are_no_evidence_of_an_end() -> None:
    start = {"MESSAGE_ID": UNIT_STARTING, "INVOCATION_ID": J_INV, "UNIT": "orch-x.service",
             "__REALTIME_TIMESTAMP": TS}
    assert endings_from_journal([start]) == {}


def test_journal_invocations_are_kept_apart() -> None:
    entries = [_exited(J_INV, "exited", "7"), _succeeded(J_INV2), _result(J_INV, "exit-code")]
    assert endings_from_journal(entries) == {
        J_INV: Ending(TS_ISO, 7, None, "exit-code"),
        J_INV2: Ending(TS_LATER_ISO, None, None, "success"),
    }


def test_journal_byte_array_fields_are_decoded() -> None:
    exited = _exited(J_INV, "exited", "7")
    exited["INVOCATION_ID"] = list(J_INV.encode())
    exited["EXIT_STATUS"] = list(b"7")
    failed = _result(J_INV, "exit-code")
    failed["UNIT_RESULT"] = list(b"exit-code")
    assert endings_from_journal([exited, failed]) == {J_INV: Ending(TS_ISO, 7, None,
                                                                    "exit-code")}


# --- adopting a unit that has no record -------------------------------------------------

SID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
STATE_DIR = "/var/lib/orch"
ADOPTED_UNIT = "orch-my\\x20agent-1a2b3c4d.service"


def _facts(*, unit: str = ADOPTED_UNIT, env: dict[str, str | None] | None = None,
           **changes: Any) -> UnitFacts:
    environment: dict[str, str | None] = {
        "PATH": "/usr/local/bin:/usr/bin", "FOO": "bar", "ORCH_SESSION_ID": SID,
        "ORCH_UNIT": unit, "ORCH_SCOPE": "user"}
    environment.update(env or {})
    base = UnitFacts(
        unit=unit, view=_unit(invocation_id=INV, main_pid=4242),
        description=f"orch session {SID}: review the code: carefully",
        environment=[f"{k}={v}" for k, v in environment.items() if v is not None],
        argv=["agent", "--x"], program="/usr/bin/agent", cwd="/srv/repo",
        hook_argv=["/usr/bin/python3", "-I", "/usr/lib/orch/exithook.py", STATE_DIR,
                   "/run/user/1000/orch/after"])
    return dataclasses.replace(base, **changes)


def test_record_rebuilt_from_a_unit_of_ours() -> None:
    record = record_from_unit(_facts(), "user", STATE_DIR)
    assert record == Record(
        id=SID, name="my agent", unit=ADOPTED_UNIT, scope="user", argv=["agent", "--x"],
        cwd="/srv/repo", description="review the code: carefully", env={"FOO": "bar"},
        created_at=UNIT_STARTED, invocation_id=INV, main_pid=4242, started_at=UNIT_STARTED,
        program="/usr/bin/agent", path="/usr/local/bin:/usr/bin", requested_at=UNIT_STARTED)


def test_rebuilt_record_keeps_equals_signs_in_values_and_empty_values() -> None:
    record = record_from_unit(_facts(env={"Q": "a=b=c", "EMPTY": ""}), "user", STATE_DIR)
    assert record is not None
    assert record.env == {"FOO": "bar", "Q": "a=b=c", "EMPTY": ""}


def test_rebuilt_record_of_a_unit_with_no_argv_no_cwd_and_no_main_pid() -> None:
    facts = _facts(argv=[], cwd="", view=_unit(main_pid=0))
    record = record_from_unit(facts, "system", STATE_DIR)
    assert record is not None
    assert (record.argv, record.cwd, record.main_pid, record.scope) == (
        ["/usr/bin/agent"], "/", None, "system")


def test_rebuilt_record_loads_back_from_json() -> None:
    record = record_from_unit(_facts(), "user", STATE_DIR)
    assert record is not None
    assert Record.from_json(record.to_json(), "here") == record


NOT_OURS = {
    "hook-writes-elsewhere": _facts(hook_argv=["/usr/bin/python3", "-I", "x", "/srv/other"]),
    "hook-writes-to-a-parent": _facts(hook_argv=["/usr/bin/python3", "-I", "x", "/var/lib"]),
    "state-dir-only-as-marker-dir": _facts(hook_argv=["/usr/bin/python3", "-I", "x",
                                                      "/srv/other", STATE_DIR]),
    "no-hook": _facts(hook_argv=[]),
    "no-session-id": _facts(env={"ORCH_SESSION_ID": None}),
    "session-id-not-a-uuid": _facts(env={"ORCH_SESSION_ID": "not-a-uuid"}),
    "session-id-empty": _facts(env={"ORCH_SESSION_ID": ""}),
    "names-another-unit": _facts(env={"ORCH_UNIT": "orch-other-1a2b3c4d.service"}),
    "names-no-unit": _facts(env={"ORCH_UNIT": None}),
}


@pytest.mark.parametrize("facts", NOT_OURS.values(), ids=NOT_OURS.keys())
def test_units_not_of_this_state_directory_are_not_adopted(facts: UnitFacts) -> None:
    assert record_from_unit(facts, "user", STATE_DIR) is None


def test_adoption_keeps_a_user_variable_that_merely_starts_with_orch() -> None:
    record = record_from_unit(_facts(env={"ORCH_MODE": "dry"}), "user", STATE_DIR)
    assert record is not None
    assert record.env == {"FOO": "bar", "ORCH_MODE": "dry"}


# --- tallies --------------------------------------------------------------------------

def test_counts_name_every_outcome_and_add_up() -> None:
    outcomes = [Outcome.RUNNING, Outcome.LOST, Outcome.RUNNING, Outcome.ADOPTED]
    tally = counts(outcomes)
    assert tally == {"running": 2, "starting": 0, "ended": 0, "already-ended": 0, "lost": 1,
                     "restarted": 0, "queued": 0, "waiting": 0, "adopted": 1}
    assert set(tally) == {str(o) for o in Outcome}
    assert sum(tally.values()) == len(outcomes)


def test_counts_of_nothing_are_all_zero() -> None:
    assert counts(iter(())) == dict.fromkeys((str(o) for o in Outcome), 0)


def test_journal_repeated_and_binary_fields_are_read_not_a_crash() -> None:
    # journalctl's JSON gives a field an entry holds twice as a list of its values, and a
    # non-UTF-8 one as a byte array: the exit record still counts, its last value wins.
    exited = {**_exited(J_INV, "exited", "7"), "EXIT_STATUS": ["1", "7"],
              "MESSAGE": [104, 105, 255]}
    result = {**_result(J_INV, "exit-code"), "UNIT_RESULT": ["success", [101, 120, 105, 116,
                                                                         45, 99, 111, 100, 101]]}
    assert endings_from_journal([exited, result]) == {
        J_INV: Ending(TS_ISO, 7, None, "exit-code")}
