"""Agents the API failed, over a fake manager: limited until a usage limit resets,
retried with backoff up to --retries, woken by their timer, stopped, resumed by hand,
re-armed by recover, and queues held while a provider is limited. The journal read is
replaced by the agent's real output (tests/unit/data/agents)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orch import agents, events, journal, queues
from orch.errors import UsageError
from orch.frozen import replace
from orch.runtime import Runtime
from orch.session import Record, Status
from orch.spec import SpawnOptions
from orch.usecases import control, query, recover, unattended
from orch.usecases import spawn as spawning
from tests.unit.fakemanager import Clock, FakeManager, put, runtime

AGENTS = Path(__file__).parent / "data" / "agents"


@pytest.fixture
def output(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What the journal holds of each unit's output: set per test."""
    held: dict[str, list[str]] = {}
    monkeypatch.setattr(journal, "output_lines",
                        lambda record, **_: held.get(record.unit, []))
    return held


def _failed(rt: Runtime, claude: Path, sample: str | None, output: dict[str, list[str]],
            options: SpawnOptions | None = None, **fields: object) -> Record:
    """An agent session whose run just ended with exit status 1, printing SAMPLE."""
    fields.setdefault("provider_session_id", "conv-1")
    fields.setdefault("provider", "claude")
    fields.setdefault("agent", {"prompt": "hi"})
    record = put(rt, "agent", argv=[str(claude), "-p", "hi"],
                 invocation_id="a" * 32, ended_at=rt.now_iso(),
                 exit_code=1, result="exit-code", program=str(claude),
                 options=(options or SpawnOptions()).to_json(), **fields)
    if sample:
        output[record.unit] = (AGENTS / sample).read_text().splitlines()
    return record


def _timers(fake: FakeManager, record: Record) -> list[str]:
    return [str(u) for u in fake.called("submit_transient")
            if str(u).startswith(f"orch-wake-{record.id}-")]


def _timer_props(fake: FakeManager, unit: str) -> dict[str, object]:
    return {name: value for name, _, value in fake.units[unit].properties}


# Three hours before the usage-limit sample's reset (its resetsAt, 1796569200).
BEFORE_RESET = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def before_reset(fake: FakeManager, isolated_env: Path) -> Runtime:
    """A runtime whose clock stands three hours before the sample's reset."""
    return runtime(fake, isolated_env, Clock(BEFORE_RESET))


def test_a_usage_limit_waits_for_its_reset_with_a_little_jitter(
        fake: FakeManager, before_reset: Runtime, claude: Path,
        output: dict[str, list[str]]) -> None:
    rt = before_reset
    record = _failed(rt, claude, "claude-usage-limit.jsonl", output)
    waiting = unattended.after_exit(rt, record.id)
    assert waiting is not None and waiting.waiting_for == "usage limit (five_hour)"
    assert waiting.resumes_at == "2026-12-06T15:00:00.000000+00:00"  # resetsAt 1796569200
    session = query.result(rt, record.id)
    assert (session.status, session.resumes_at, session.main_pid) == (
        Status.LIMITED, waiting.resumes_at, None)
    [timer] = _timers(fake, record)
    props = _timer_props(fake, timer)
    assert props["RandomizedDelayUSec"] == 120_000_000
    assert props["TimersMonotonic"] == [("OnActiveSec", 3 * 3600 * 1_000_000)]
    service = _timer_props(fake, timer.replace(".timer", ".service"))
    assert service["ExecStart"][0][1][-3:] == [  # type: ignore[index]
        "--wake", str(rt.store.directory), record.id]


def test_transient_failures_back_off_and_stop_after_the_retries(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    options = SpawnOptions(retries=2, retry_delay_sec=10.0)
    record = _failed(rt, claude, "claude-overloaded.jsonl", output, options)
    delays = []
    for attempt in range(3):
        waiting = unattended.after_exit(rt, record.id)
        if attempt == 2:
            assert waiting is None  # out of retries: it fails as it is
            break
        assert waiting is not None and waiting.waiting_for == "API overloaded (529)"
        assert query.result(rt, record.id).status is Status.RETRYING
        [(_, delay)] = _timer_props(fake, _timers(fake, record)[-1])["TimersMonotonic"]  # type: ignore[misc]
        delays.append(round(delay / 1e6))
        fake.units.pop(_timers(fake, record)[-1])  # elapsed: gone
        woken = unattended.wake(rt, record.id)
        assert woken is not None and woken.status is Status.RUNNING
        now = rt.store.load()[record.id]
        # The conversation the agent said it had (its output), resumed.
        assert now.retried == attempt + 1
        assert f"--resume={now.provider_session_id}" in now.argv
        # The resumed run fails the same way: its hook recorded the end.
        rt.store.update(lambda s: s.__setitem__(record.id, _ended(s[record.id])))
        fake.units.pop(record.unit)
        output[record.unit] = (AGENTS / "claude-overloaded.jsonl").read_text().splitlines()
    assert delays == [10, 20]
    assert query.result(rt, record.id).status is Status.FAILED


def _ended(record: Record) -> Record:
    import dataclasses

    return dataclasses.replace(record, exit_code=1, result="exit-code",
                               ended_at=record.started_at or "2026-12-06T12:00:00+00:00")


def test_no_retries_asked_and_the_task_s_own_failure_never_wait(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    overloaded = _failed(rt, claude, "claude-overloaded.jsonl", output)
    assert unattended.after_exit(rt, overloaded.id) is None
    own = _failed(rt, claude, "claude-tools.jsonl", output,
                  SpawnOptions(retries=3))
    assert unattended.after_exit(rt, own.id) is None
    stopped = _failed(rt, claude, "claude-usage-limit.jsonl", output, intent="stop")
    assert unattended.after_exit(rt, stopped.id) is None
    command = put(rt, "cmd", argv=["/bin/false"], exit_code=1, result="exit-code")
    assert unattended.after_exit(rt, command.id) is None
    assert fake.called("submit_transient") == []
    assert rt.store.load()[own.id].final_result is not None  # its result read all the same


def test_stop_and_kill_cancel_the_wait_and_its_timer(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    for action, status in ((control.stop, Status.STOPPED), (control.kill, Status.KILLED)):
        record = _failed(rt, claude, "claude-usage-limit.jsonl", output)
        unattended.after_exit(rt, record.id)
        [timer] = _timers(fake, record)
        ended = action(rt, record.id)
        assert ended.status is status
        # Ended: it resumes no more, and says no time (before, "Resumes: ... 25s left").
        assert (ended.resumes_at, ended.waiting_for) == (None, None)
        assert query.result(rt, record.id).resumes_at is None  # as show reads it
        assert ("stop", timer) in fake.calls
        assert unattended.wake(rt, record.id) is None  # a timer that fired anyway: nothing


def test_resume_and_send_by_hand_run_it_now_and_cancel_the_timer(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    record = _failed(rt, claude, "claude-usage-limit.jsonl", output)
    unattended.after_exit(rt, record.id)
    [timer] = _timers(fake, record)
    session = spawning.resume(rt, record.id, "go on")
    assert session.status is Status.RUNNING and session.resumes_at is None
    assert ("stop", timer) in fake.calls
    now = rt.store.load()[record.id]
    assert now.retried == 0 and now.history[-1]["status"] == "failed"


@pytest.mark.parametrize("resume", ["conversation", "from the start"])
def test_a_resume_whose_secrets_are_missing_is_refused_before_anything_changes(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]],
        tmp_path: Path, resume: str) -> None:
    fields: dict[str, object] = {"env_files": [str(tmp_path / "gone.env")]}
    if resume == "from the start":
        fields["provider_session_id"] = None
    record = _failed(rt, claude, None, output, **fields)
    with pytest.raises(UsageError, match=r"--env-file .*gone\.env: No such file"):
        unattended.resume(rt, record, "go on")
    # Before, a new run was recorded first, which never started: `starting`, then lost.
    assert rt.store.load()[record.id] == record
    assert fake.called("submit_transient") == []


def test_a_provider_without_a_conversation_to_resume_runs_again_from_the_start(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    _config(f"[providers.plain]\nbinary = \"{claude}\"\nargv = [\"-p\", \"{{prompt}}\"]\n"
            "results = \"claude-stream-json\"\n")  # no resume_argv
    record = _failed(rt, claude, "claude-overloaded.jsonl", output,
                     SpawnOptions(retries=1), provider="plain")
    assert unattended.after_exit(rt, record.id) is not None
    woken = unattended.wake(rt, record.id)
    assert woken is not None and woken.status is Status.RUNNING
    assert rt.store.load()[record.id].argv == [str(claude), "-p", "hi"]


def _config(body: str) -> None:
    import os

    config = Path(os.environ["XDG_CONFIG_HOME"]) / "orch" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(body)


def test_recover_arms_again_a_timer_a_reboot_took(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    record = _failed(rt, claude, "claude-usage-limit.jsonl", output)
    unattended.after_exit(rt, record.id)
    fake.units.clear()  # a reboot: every transient unit gone
    report = recover.recover(rt)
    assert report.sessions[0].status is Status.LIMITED
    assert len(_timers(fake, record)) == 2
    recover.recover(rt)
    assert len(_timers(fake, record)) == 2  # armed once


def test_a_limited_provider_holds_its_queued_sessions_but_not_others(
        fake: FakeManager, before_reset: Runtime, claude: Path,
        output: dict[str, list[str]]) -> None:
    rt = before_reset
    _config("[queues.q]\nmax_running = 3\n")
    limited = _failed(rt, claude, "claude-usage-limit.jsonl", output, queue="q",
                      admitted_at=rt.now_iso())
    unattended.after_exit(rt, limited.id)
    later = put(rt, "later", provider="claude", queue="q", argv=[str(claude)])
    other = put(rt, "other", queue="q", argv=["/bin/true"])
    reset = rt.store.load()[limited.id].resumes_at
    assert queues.limited_providers(rt.store.load(), rt.now_iso()) == {"claude": reset}
    from orch.usecases import queueing

    assert [s.id for s in queueing.admit(rt).sessions] == [other.id]
    assert query.result(rt, later.id).status is Status.QUEUED
    # Stopped, the limited one no longer waits, but the account's limit holds: the
    # queue's claude still waits (before, it started, to fail on the limit at once),
    # and the queue looks again at the reset, the stopped session's wake gone.
    control.stop(rt, limited.id)
    assert queueing.admit(rt).sessions == []
    held = query.result(rt, later.id)
    assert held.status is Status.QUEUED
    # It says why it waits, and until when (before: only "queued #1").
    assert (held.waiting_for, held.resumes_at) == ("the usage limit of claude", reset)
    [listed] = [s for s in query.list_sessions(rt) if s.id == later.id]
    assert (listed.position, listed.resumes_at) == (1, reset)
    looks = [str(u) for u in fake.called("submit_transient")
             if str(u).startswith("orch-wake-reset-queue-q-")]
    assert looks, fake.calls
    until = (datetime.fromisoformat(str(reset)) - rt.now()).total_seconds()
    assert _timer_props(fake, looks[-1])["TimersMonotonic"] == [
        ("OnActiveSec", round(until * 1_000_000))]
    assert _timer_props(fake, looks[-1])["RandomizedDelayUSec"] == 120_000_000  # a fleet
    # Its own timer: a wait of hours for the reset stands in for no look at memory.
    _config("[queues.q]\nmax_running = 3\nmin_memory_available = \"100T\"\n")
    put(rt, "plain", queue="q", argv=["/bin/true"])
    queueing.admit(rt)
    assert [u for u in fake.called("submit_transient")
            if str(u).startswith("orch-wake-queue-q-")], fake.calls


def test_a_retrys_doubled_wait_stops_at_the_longest_wait(rt: Runtime) -> None:
    # At --retries 100, 30 s doubled each time passed any clock (year 9999) by the
    # fortieth retry, and the exit hook that armed it failed.
    from orch.limits import ApiFailure, Failure
    from orch.spec import MAX_WAIT_S

    record = put(rt, "agent", provider="claude",
                 options=SpawnOptions(retries=100, retry_delay_sec=30.0).to_json())
    overloaded = ApiFailure(Failure.TRANSIENT, "API overloaded (529)")
    waits = [unattended._resumes_at(replace(record, retried=n), overloaded, 0.0)
             for n in (0, 1, 10, 20, 99)]
    assert waits == [30.0, 60.0, 30.0 * 2**10, MAX_WAIT_S, MAX_WAIT_S]


def _gemini(rt: Runtime, claude: Path, output: dict[str, list[str]],
            **fields: object) -> Record:
    """A gemini session (orch chose its conversation id, conv-1) whose first run gemini
    ended on a rate limit (its real output), with a retry to come."""
    gemini = claude.with_name("gemini")
    gemini.write_text("#!/bin/sh\n")
    gemini.chmod(0o755)
    return _failed(rt, claude, "gemini-rate-limited.jsonl", output, SpawnOptions(retries=1),
                   provider="gemini", agent={"prompt": "hi", "provider_session_id": "conv-1"},
                   **fields)


def test_a_gemini_run_its_model_never_answered_starts_over_under_a_new_id(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    # gemini keeps no conversation without a model turn ("No previous sessions found")
    # and refuses the old id for a new one ("already exists").
    record = _gemini(rt, claude, output)
    assert unattended.after_exit(rt, record.id) is not None
    said = rt.store.load()[record.id].provider_session_id  # as its output said it
    woken = unattended.wake(rt, record.id)
    assert woken is not None and woken.status is Status.RUNNING
    now = rt.store.load()[record.id]
    assert now.provider_session_id not in (None, "conv-1", said)
    assert now.agent["provider_session_id"] == now.provider_session_id
    assert now.argv[:2] == ["gemini", "--prompt=hi"]
    assert f"--session-id={now.provider_session_id}" in now.argv
    # Told as a retry, as a resumed conversation's is.
    told = [(e.event, e.detail) for e in events.read(rt.store.directory)
            if e.session_id == record.id]
    assert told == [("retried", "rate limited"), ("started", None)]
    # By hand, it is refused in one line: there is nothing to resume.
    with pytest.raises(UsageError, match="gemini never answered it, so it has no "
                                         "conversation to resume"):
        spawning.resume(rt, _gemini(rt, claude, output).id, "go on")


def test_a_gemini_conversation_its_model_answered_is_resumed(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    record = _gemini(rt, claude, output, history=[
        {"status": "exited", "usage": {"input_tokens": 60, "output_tokens": 12}}])
    assert unattended.after_exit(rt, record.id) is not None
    said = rt.store.load()[record.id].provider_session_id
    assert unattended.wake(rt, record.id) is not None
    now = rt.store.load()[record.id]
    assert now.provider_session_id == said and f"--resume={said}" in now.argv


def test_a_gemini_run_cut_off_before_it_said_what_it_used_may_be_resumed(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    # Killed or cut mid-turn: no result, so no usage; its model may have answered
    # (tool calls, say), and gemini then keeps the conversation.
    for usage in (None, {"output_tokens": "5"}):  # the second, from a hand-edited file
        record = _gemini(rt, claude, output, usage=usage)
        assert agents.can_resume(record)
        assert agents.resume_argv(record, "go on")[:2] == ["gemini", "--resume=conv-1"]


def test_resuming_by_hand_a_waiting_gemini_its_model_never_answered_starts_it_over(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    record = _gemini(rt, claude, output)
    unattended.after_exit(rt, record.id)
    [timer] = _timers(fake, record)
    said = rt.store.load()[record.id].provider_session_id
    session = spawning.resume(rt, record.id, "go on")
    assert session.status is Status.RUNNING and ("stop", timer) in fake.calls
    now = rt.store.load()[record.id]
    assert now.provider_session_id not in (None, "conv-1", said)
    assert now.argv[:2] == ["gemini", "--prompt=hi"]


def test_a_wake_its_provider_refuses_ends_the_session_as_failed_and_says_why(
        fake: FakeManager, rt: Runtime, claude: Path, output: dict[str, list[str]]) -> None:
    # A resume template that needs what the conversation never had: refused at each
    # wake, which left it waiting for ever, its timer spent.
    _config(f"[providers.picky]\nbinary = \"{claude}\"\nargv = [\"-p\", \"{{prompt}}\"]\n"
            "resume_argv = [\"--resume={provider_session_id}\", \"--model={model!}\", "
            "\"{prompt}\"]\n"
            "results = \"claude-stream-json\"\n")
    record = _failed(rt, claude, "claude-overloaded.jsonl", output, SpawnOptions(retries=1),
                     provider="picky")
    assert unattended.after_exit(rt, record.id) is not None
    with pytest.raises(UsageError, match="picky needs --model"):
        unattended.wake(rt, record.id)
    ended = unattended.give_up(rt, record.id, "could not run it again: picky needs --model")
    assert ended is not None and ended.resumes_at is None
    assert query.result(rt, record.id).status is Status.FAILED
    [told] = [(e.event, e.status, e.detail) for e in events.read(rt.store.directory)
              if e.session_id == record.id]
    assert told == ("ended", "failed", "could not run it again: picky needs --model")
    assert unattended.give_up(rt, record.id, "again") is None  # no longer waits
