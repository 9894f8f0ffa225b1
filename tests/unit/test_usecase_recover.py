"""recover over a fake manager: each record reconciled with its unit (the decisions
are orch.recovery's, tested there; here, that their effects happen)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orch import journal, secrets
from orch.errors import OrchError
from orch.frozen import replace
from orch.recovery import Outcome
from orch.runtime import Runtime
from orch.session import Ending, Status, UnitFacts
from orch.spec import after_unit
from orch.units import unit_name
from orch.usecases.recover import recover
from tests.unit.fakemanager import FakeManager, exited, put, running, started


@dataclass
class Journal:
    """What the journal says of ended invocations (by id), and which units it was asked of."""

    found: dict[str, Ending] = field(default_factory=dict)
    asked: list[list[str]] = field(default_factory=list)


@pytest.fixture
def evidence(monkeypatch: pytest.MonkeyPatch) -> Journal:
    told = Journal()

    def exit_evidence(units: Iterable[str], scope: str) -> dict[str, Ending]:
        told.asked.append(sorted(units))
        return told.found

    monkeypatch.setattr(journal, "exit_evidence", exit_evidence)
    return told


def test_a_running_session_is_refreshed_from_its_unit(fake: FakeManager, rt: Runtime,
                                                      evidence: Journal) -> None:
    record = put(rt, "unconfirmed")  # a spawn that crashed before confirming its unit
    view = running()
    fake.add(record.unit, view)
    report = recover(rt)
    assert report.outcomes == {record.id: Outcome.RUNNING}
    now = rt.store.load()[record.id]
    assert (now.invocation_id, now.main_pid) == (view.invocation_id, view.main_pid)
    assert [s.status for s in report.sessions] == [Status.RUNNING]
    assert report.counts["running"] == 1 and report.errors == []
    assert evidence.asked == []


def test_an_end_is_recorded_from_the_unit_or_the_journal(
        fake: FakeManager, rt: Runtime, evidence: Journal) -> None:
    by_unit = started(fake, rt, "by-unit")
    fake.set(by_unit.unit, exited(fake.unit(by_unit.unit), 4))
    by_journal = put(rt, "by-journal", invocation_id="c" * 32)
    lost = put(rt, "lost", invocation_id="d" * 32)
    evidence.found["c" * 32] = Ending("2025-01-01T00:00:00+00:00", 0, None, "success")
    secret = secrets.write(rt.scope, lost.id, {"K": "v"})
    report = recover(rt)
    assert report.outcomes == {by_unit.id: Outcome.ENDED, by_journal.id: Outcome.ENDED,
                               lost.id: Outcome.LOST}
    now = rt.store.load()
    assert now[by_unit.id].exit_code == 4 and now[by_journal.id].exit_code == 0
    assert not secret.exists()
    assert evidence.asked == [sorted([by_journal.unit, lost.unit])]
    assert recover(rt).outcomes[by_unit.id] is Outcome.ALREADY_ENDED


def test_an_end_recover_records_is_told_and_settles_its_dependents(
        fake: FakeManager, rt: Runtime, evidence: Journal) -> None:
    from orch import events

    # Their exit hooks could not record how they ended (their state was unwritable).
    failed = started(fake, rt, "failed")
    fake.set(failed.unit, exited(fake.unit(failed.unit), 4))
    lost = put(rt, "lost", invocation_id="d" * 32)
    waiting = put(rt, "waiting", after=[lost.id])
    fake.add(after_unit(waiting.unit), running(main_pid=0))  # its path unit, armed
    report = recover(rt)
    assert report.errors == [], report
    ended = [(e.session_id, e.status) for e in events.read(rt.store.directory)
             if e.event == "ended"]
    # Before, none was told, and the dependent waited for ever ("starting"). Lost is
    # found again by each recover, not recorded; it is told once an invocation.
    assert sorted(ended) == sorted([(failed.id, "failed"), (waiting.id, "failed"),
                                    (lost.id, "lost")])
    assert rt.store.load()[waiting.id].blocked == f"dependency {lost.id[:8]} (lost) " \
        "did not end successfully"
    recover(rt)
    assert len([e for e in events.read(rt.store.directory) if e.event == "ended"]) == 3
    # Its next invocation (a resume, say), lost too, is told again.
    rt.store.update(lambda s: s.__setitem__(lost.id, replace(
        s[lost.id], invocation_id="e" * 32, started_at="2999-01-01T00:00:00+00:00")))
    assert recover(rt).outcomes[lost.id] is Outcome.LOST
    told = [e for e in events.read(rt.store.directory) if e.session_id == lost.id]
    assert [(e.event, e.status) for e in told] == [("ended", "lost")] * 2


def test_a_persistent_session_that_ended_under_it_starts_again(
        fake: FakeManager, rt: Runtime, evidence: Journal) -> None:
    record = put(rt, "keeper", invocation_id="e" * 32, persistent=True)
    report = recover(rt)
    assert report.outcomes == {record.id: Outcome.RESTARTED}
    now = rt.store.load()[record.id]
    assert now.invocation_id == fake.unit(record.unit).invocation_id
    assert len(now.history) == 1 and now.restarts == 1
    assert fake.called("reset_failed") == [record.unit]
    assert [s.status for s in report.sessions] == [Status.RUNNING]


def test_a_restart_the_manager_refuses_is_lost_with_a_reason(
        fake: FakeManager, rt: Runtime, evidence: Journal) -> None:
    record = put(rt, "keeper", persistent=True, requested_at="2020-01-01T00:00:00+00:00")

    def refuse(unit: str, props: object) -> None:
        raise OrchError("no more units")

    fake.on_submit = refuse
    report = recover(rt)
    assert report.outcomes == {record.id: Outcome.LOST}
    assert report.errors == [f"cannot restart {record.id[:8]} (keeper): no more units"]


def test_a_restart_whose_secrets_are_missing_is_told_and_the_others_go_on(
        fake: FakeManager, rt: Runtime, evidence: Journal, tmp_path: Path) -> None:
    missing = put(rt, "needs-file", invocation_id="e" * 32, persistent=True,
                  env_files=[str(tmp_path / "gone.env")])
    unset = put(rt, "needs-var", invocation_id="f" * 32, persistent=True,
                secret_env=["ORCH_TEST_NOT_SET"])
    fine = put(rt, "keeper", invocation_id="a" * 32, persistent=True)
    # Before, the first such refusal ended recover itself (exit 2), half done, at boot.
    report = recover(rt)
    assert report.outcomes == {missing.id: Outcome.LOST, unset.id: Outcome.LOST,
                               fine.id: Outcome.RESTARTED}
    assert sorted(report.errors) == sorted([
        f"cannot restart {missing.id[:8]} (needs-file): "
        f"--env-file {tmp_path / 'gone.env'}: No such file or directory",
        f"cannot restart {unset.id[:8]} (needs-var): secret variable ORCH_TEST_NOT_SET "
        "is not set in this environment"])
    # Left as they were: no new run recorded that never starts.
    assert rt.store.load()[missing.id] == missing and rt.store.load()[unset.id] == unset
    # One whose end was recorded (stopped) stays what ps says, not lost as it was told.
    stopped = put(rt, "stopped", invocation_id="c" * 32, persistent=True,
                  env_files=[str(tmp_path / "gone.env")], ended_at="2026-01-01T00:00:00+00:00",
                  exit_signal="SIGTERM", result="success")
    assert recover(rt).outcomes[stopped.id] is Outcome.ENDED


def test_a_unit_of_ours_without_a_record_is_adopted(fake: FakeManager, rt: Runtime,
                                                    evidence: Journal) -> None:
    session_id = str(uuid.uuid4())
    unit = unit_name("orphan", session_id)
    view = running()
    hook = ["/usr/bin/python3", "-I", "exithook.py", str(rt.store.directory)]
    fake.add(unit, view, UnitFacts(
        unit=unit, view=view, description=f"orch session {session_id}: sleeps",
        environment=[f"ORCH_SESSION_ID={session_id}", f"ORCH_UNIT={unit}", "A=1"],
        argv=["/bin/sleep", "9"], program="/bin/sleep", cwd="/tmp", hook_argv=hook))
    elsewhere = unit_name("stranger", str(uuid.uuid4()))
    fake.add(elsewhere, running(), UnitFacts(
        unit=elsewhere, view=view, description="", environment=[], argv=[], program="",
        cwd="", hook_argv=["python", "-I", "exithook.py", "/another/state"]))
    report = recover(rt)
    assert report.outcomes == {session_id: Outcome.ADOPTED}
    adopted = rt.store.load()[session_id]
    assert (adopted.argv, adopted.env, adopted.description) == (["/bin/sleep", "9"],
                                                                {"A": "1"}, "sleeps")
    assert recover(rt).outcomes == {session_id: Outcome.RUNNING}


def test_a_dependent_whose_path_unit_a_reboot_took_is_armed_again(
        fake: FakeManager, rt: Runtime, evidence: Journal) -> None:
    first = started(fake, rt, "first")
    second = put(rt, "second", after=[first.id], requested_at="2020-01-01T00:00:00+00:00")
    report = recover(rt)
    assert fake.called("submit_transient") == [after_unit(second.unit)]
    # Waiting for its dependency, counted so (before: among the running, or starting).
    assert report.outcomes[second.id] is Outcome.WAITING
    assert report.counts["waiting"] == 1 and report.counts["running"] == 1
    assert {s.id: s.status for s in report.sessions}[second.id] is Status.STARTING



def test_a_recover_waits_for_another_one_to_finish(
        fake: FakeManager, rt: Runtime, evidence: Journal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Two at once could each find a persistent session gone and each start it again.
    import threading

    from orch.usecases import recover as recovering
    from tests.locking import held_elsewhere
    from tests.waiting import wait_for

    record = put(rt, "persistent", persistent=True, invocation_id="e" * 32)
    lock = rt.store.directory / recovering.RECOVER_LOCK
    reports = []
    with held_elsewhere(lock, tmp_path / "hold.py") as pid:
        monkeypatch.setattr(recovering, "LOCK_NOTICE_S", 0.0)
        waiting = threading.Thread(target=lambda: reports.append(recover(rt)))
        waiting.start()
        said = wait_for(lambda: [r.getMessage() for r in caplog.records
                                 if "waiting for" in r.getMessage()], 30, "the notice")
        assert said[0].startswith(f"orch: waiting for {lock}, held by pid {pid}")
        assert waiting.is_alive() and not reports  # nothing done meanwhile
        assert rt.store.load()[record.id] == record
    waiting.join(30)
    assert [r.outcomes for r in reports] == [{record.id: Outcome.RESTARTED}]
    assert recover(rt).outcomes[record.id] is Outcome.RUNNING  # started once


def test_a_persistent_agent_that_cannot_resume_starts_over_as_its_provider_needs(
        fake: FakeManager, rt: Runtime, evidence: Journal, claude: Path) -> None:
    gemini = claude.with_name("gemini")
    gemini.write_text("#!/bin/sh\n")
    gemini.chmod(0o755)
    # A gemini whose run ended saying its model answered nothing: no conversation of
    # gemini's to resume, and its id refused for a new one.
    agent = {"prompt": "hi", "provider_session_id": "conv-1"}
    first = put(rt, "unanswered", invocation_id="e" * 32, persistent=True,
                provider="gemini", provider_session_id="conv-1", agent=agent,
                usage={"input_tokens": 60, "output_tokens": 0},
                argv=["gemini", "--prompt=hi", "--session-id=conv-1"])
    # One cut off before it said: its model may have answered, so it is resumed.
    third = put(rt, "cut-off", invocation_id="d" * 32, persistent=True, provider="gemini",
                provider_session_id="conv-3", agent={**agent, "provider_session_id": "conv-3"},
                argv=["gemini", "--prompt=hi", "--session-id=conv-3"])
    # A codex cut off before it said its thread: nothing to resume, nothing to renew.
    second = put(rt, "no-thread", invocation_id="f" * 32, persistent=True,
                 provider="codex", agent={"prompt": "hi"}, argv=[str(claude), "hi"])
    report = recover(rt)
    assert report.outcomes == {first.id: Outcome.RESTARTED, second.id: Outcome.RESTARTED,
                               third.id: Outcome.RESTARTED}
    now = rt.store.load()
    assert now[third.id].argv[:2] == ["gemini", "--resume=conv-3"]
    fresh = now[first.id].provider_session_id
    assert fresh not in (None, "conv-1") and now[first.id].argv == [
        "gemini", "--prompt=hi", "--output-format", "stream-json", "--skip-trust",
        f"--session-id={fresh}"]
    assert now[second.id].argv == [str(claude), "hi"]


def test_a_persistent_agent_whose_provider_is_gone_restarts_as_recorded(
        fake: FakeManager, rt: Runtime, evidence: Journal, claude: Path) -> None:
    # [providers.mine] removed from the configuration since: neither resumed nor
    # started over, and the sessions after it are restarted too.
    gone = put(rt, "gone", invocation_id="e" * 32, persistent=True, provider="mine",
               agent={"prompt": "hi", "provider_session_id": "conv-1"},
               argv=[str(claude), "hi"])
    other = put(rt, "other", invocation_id="f" * 32, persistent=True)
    report = recover(rt)
    assert report.outcomes == {gone.id: Outcome.RESTARTED, other.id: Outcome.RESTARTED}
    assert rt.store.load()[gone.id].argv == [str(claude), "hi"]


def test_a_restart_its_provider_refuses_is_told_and_the_others_go_on(
        fake: FakeManager, rt: Runtime, evidence: Journal, claude: Path) -> None:
    # Before, the refusal came after its run was archived: recover stopped there, and
    # the session was left `starting` with no unit.
    import os

    config = Path(os.environ["XDG_CONFIG_HOME"]) / "orch" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"[providers.picky]\nbinary = \"{claude}\"\nargv = [\"{{prompt}}\"]\n"
                      "resume_argv = [\"{provider_session_id}\", \"{model!}\", \"{prompt}\"]\n")
    picky = put(rt, "picky", invocation_id="e" * 32, persistent=True, provider="picky",
                provider_session_id="conv-1", agent={"prompt": "hi"},
                usage={"output_tokens": 3}, argv=[str(claude), "hi"])
    other = put(rt, "other", invocation_id="f" * 32, persistent=True)
    report = recover(rt)
    assert report.outcomes == {picky.id: Outcome.LOST, other.id: Outcome.RESTARTED}
    assert report.errors == [f"cannot restart {picky.id[:8]} (picky): picky needs --model"]
    assert rt.store.load()[picky.id].history == picky.history  # nothing changed
