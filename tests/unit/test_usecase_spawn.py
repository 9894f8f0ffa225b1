"""The spawn use case over a fake manager: what is recorded when, how a failed start
reads, --after's arming and release, agents and resume."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from orch import events, secrets
from orch.connection import PROGRAM_EXITED
from orch.errors import ManagerTimeout, ManagerUnreachable, OrchError, SpawnFailed, UsageError
from orch.runtime import Runtime
from orch.session import Record, Session, Status
from orch.spec import Restart, SpawnOptions, after_dir, after_unit
from orch.systemd import GONE
from orch.usecases import spawn as spawning
from tests.unit.fakemanager import (
    FakeManager,
    exited,
    not_started,
    put,
    running,
    runtime,
    unreachable,
)


def test_a_spawn_records_then_starts_and_confirms_the_unit(fake: FakeManager,
                                                         rt: Runtime) -> None:
    def recorded_before_start(unit: str, props: object) -> None:
        assert [r.unit for r in rt.store.load().values()] == [unit]

    fake.on_submit = recorded_before_start
    session = spawning.spawn(rt, ["/bin/echo", "hi"], name="greet", tags=["a"],
                             env={"X": "1"}, persistent=True)
    assert session.status is Status.RUNNING and session.name == "greet"
    record = rt.store.load()[session.id]
    unit = fake.unit(record.unit)
    assert (record.invocation_id, record.main_pid) == (unit.invocation_id, unit.main_pid)
    assert record.persistent and record.program == "/bin/echo" and record.tags == ["a"]
    assert [name for name, _ in fake.calls][:2] == ["connect", "submit_transient"]


def test_without_a_manager_nothing_is_recorded(isolated_env: Path) -> None:
    from orch.scope import Scope

    rt = Runtime(Scope.USER, runtime(FakeManager(), isolated_env).store, connect=unreachable)
    with pytest.raises(ManagerUnreachable):
        spawning.spawn(rt, ["/bin/true"])
    assert rt.store.load() == {}


def test_a_refused_unit_leaves_no_record(fake: FakeManager, rt: Runtime) -> None:
    def refuse(unit: str, props: object) -> None:
        raise OrchError("the manager said no")

    fake.on_submit = refuse
    with pytest.raises(OrchError, match="the manager said no"):
        spawning.spawn(rt, ["/bin/true"])
    assert rt.store.load() == {}


def test_a_start_the_manager_did_not_answer_stays_recorded(fake: FakeManager,
                                                          rt: Runtime) -> None:
    # Unlike a refusal, no answer may still become a unit (a manager that took 90 s):
    # its exit hook must find the record to say how it went.
    def no_answer(unit: str, props: object) -> None:
        raise ManagerTimeout("the systemd manager did not answer the start within 20s")

    fake.on_submit = no_answer
    with pytest.raises(ManagerTimeout) as err:
        spawning.spawn(rt, ["/bin/true"])
    [record] = rt.store.load().values()
    assert err.value.hint == (f"session {record.id} stays recorded: "
                              f"`orch show {record.id[:8]}` tells whether it started")
    assert record.invocation_id is None and record.ending() is None


def test_a_program_that_cannot_run_is_one_line_and_stays_recorded(
        fake: FakeManager, rt: Runtime) -> None:
    fake.start = lambda unit: exited(not_started(), 203)
    fake.job_results = {}

    def failed_job(unit: str, props: object) -> None:
        fake.job_results[unit] = "failed"

    fake.on_submit = failed_job
    with pytest.raises(SpawnFailed) as caught:
        spawning.spawn(rt, ["/bin/false"])
    assert str(caught.value) == "cannot run /bin/false: exec failed (exit status 203)"
    assert caught.value.hint is not None and "recorded as failed" in caught.value.hint
    assert len(rt.store.load()) == 1


@pytest.mark.parametrize(("view", "why"), [
    (GONE, "the start job ended 'failed'"),
    (exited(not_started(), 242), "it exited at once (exit status 242)"),
    (exited(not_started(), 200), "cannot change to its working directory (exit status 200)"),
])
def test_how_a_failed_start_is_worded(fake: FakeManager, rt: Runtime, view: object,
                                      why: str) -> None:
    fake.start = lambda unit: view  # type: ignore[assignment,return-value]
    fake.on_submit = lambda unit, props: fake.job_results.__setitem__(unit, "failed")
    with pytest.raises(SpawnFailed, match=re.escape(f"cannot run /bin/true: {why}")):
        spawning.spawn(rt, ["/bin/true"])


def test_a_program_that_ran_and_failed_at_once_is_a_session(fake: FakeManager,
                                                          rt: Runtime) -> None:
    fake.start = lambda unit: exited(not_started(), 1)
    fake.on_submit = lambda unit, props: fake.job_results.__setitem__(unit, "failed")
    assert spawning.spawn(rt, ["/bin/false"]).status is Status.FAILED


@pytest.mark.parametrize("status", [0, 1])
def test_a_program_that_exited_before_its_start_job_ended(fake: FakeManager, rt: Runtime,
                                                          status: int) -> None:
    # The manager said the program ran and exited while the job waited for the exit
    # hook (Manager.wait_job): its start is told, as a job that ended at its exec.
    fake.start = lambda unit: dataclasses.replace(
        exited(running(), status), active_state="deactivating", sub_state="stop-post")
    fake.on_submit = lambda unit, props: fake.job_results.__setitem__(unit, PROGRAM_EXITED)
    assert spawning.spawn(rt, ["/bin/true"]).exit_code == status
    told = [e.event for e in events.read(rt.store.directory) if e.event == "started"]
    assert told == ["started"]


def test_start_failure_names_a_signal() -> None:
    session = dataclasses.replace(_a_session(), exit_signal="SIGKILL", exit_code=None)
    assert spawning.start_failure(session, "failed") == "killed by SIGKILL while starting"
    assert spawning.program_ran(session)


def _a_session() -> Session:
    record = Record(id="x", name="x", unit="orch-x.service", scope="user", argv=["x"], cwd="/")
    return Session.of(record, Status.FAILED, None)


def test_secrets_are_read_once_and_their_file_removed_after_the_start(
        fake: FakeManager, rt: Runtime, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "keys.env"
    env_file.write_text("TOKEN=s3cret\n")
    reads = []
    real_gather = secrets.gather

    def gather(*args: object) -> dict[str, str]:
        reads.append(args)
        return real_gather(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(secrets, "gather", gather)
    monkeypatch.setenv("API_KEY", "k")
    seen: list[str] = []

    def look(unit: str, props: object) -> None:
        seen.extend(os.listdir(secrets.secrets_dir(rt.scope)))

    fake.on_submit = look
    session = spawning.spawn(rt, ["/bin/true"], env_files=[str(env_file)],
                             secret_env=["API_KEY"])
    assert len(reads) == 1
    assert seen == [f"{session.id}.env"]
    assert os.listdir(secrets.secrets_dir(rt.scope)) == []
    assert "s3cret" not in (rt.store.directory / "sessions.json").read_text()


def test_with_restart_the_secrets_file_stays_for_the_next_start(
        fake: FakeManager, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "k")
    session = spawning.spawn(rt, ["/bin/true"], secret_env=["API_KEY"],
                             options=SpawnOptions(restart=Restart.ON_FAILURE))
    assert os.listdir(secrets.secrets_dir(rt.scope)) == [f"{session.id}.env"]


def test_bad_arguments_are_refused_before_anything_is_recorded(
        fake: FakeManager, rt: Runtime, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--add-dir"):
        spawning.spawn(rt, ["/bin/true"], options=SpawnOptions(add_dirs=(str(tmp_path / "no"),)))
    with pytest.raises(SpawnFailed):
        spawning.spawn(rt, ["/no/such/program"])
    with pytest.raises(OrchError):
        spawning.spawn(rt, ["/bin/true"], env_files=[str(tmp_path / "missing.env")])
    assert rt.store.load() == {} and fake.calls == []


def test_the_parent_is_the_session_the_caller_runs_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_SESSION_ID", "not an id")
    assert spawning.parent_id() is None
    monkeypatch.setenv("ORCH_SESSION_ID", "12345678-1234-4234-8234-123456789abc")
    assert spawning.parent_id() == "12345678-1234-4234-8234-123456789abc"


# -- --after --------------------------------------------------------------------------


def test_a_dependent_of_a_running_session_is_armed_and_waits(fake: FakeManager,
                                                           rt: Runtime) -> None:
    first = spawning.spawn(rt, ["/bin/sleep", "9"], name="first")
    second = spawning.spawn(rt, ["/bin/true"], name="second", after=["first"])
    assert second.status is Status.STARTING
    record = rt.store.load()[second.id]
    assert record.after == [first.id] and record.invocation_id is None
    assert fake.unit(after_unit(second.unit)).loaded  # the path unit, armed
    assert fake.unit(second.unit) == not_started()
    assert after_dir(rt.scope).is_dir()


def test_a_dependent_of_a_succeeded_session_starts_at_once(fake: FakeManager,
                                                         rt: Runtime) -> None:
    first = spawning.spawn(rt, ["/bin/true"], name="first")
    fake.set(first.unit, exited(fake.unit(first.unit), 0))
    second = spawning.spawn(rt, ["/bin/true"], name="second", after=[first.id[:8]])
    assert second.status is Status.RUNNING
    assert after_unit(second.unit) not in fake.units


def test_a_dependent_of_a_failed_session_is_blocked_and_never_submitted(
        fake: FakeManager, rt: Runtime) -> None:
    first = spawning.spawn(rt, ["/bin/true"], name="first")
    fake.set(first.unit, exited(fake.unit(first.unit), 3))
    second = spawning.spawn(rt, ["/bin/true"], name="second", after=["first"])
    assert second.status is Status.FAILED
    assert "did not end successfully" in (rt.store.load()[second.id].blocked or "")
    assert fake.called("submit_transient") == [first.unit]
    # It ended then, never having run (before, no end time in show or --json).
    assert second.ended_at == rt.store.load()[second.id].ended_at is not None
    assert second.exit_code is None and second.started_at is None


def test_a_dependency_that_ends_while_arming_releases_through_the_marker(
        fake: FakeManager, rt: Runtime) -> None:
    first = spawning.spawn(rt, ["/bin/true"], name="first")

    def first_ends(unit: str, props: object) -> None:
        fake.set(first.unit, exited(fake.unit(first.unit), 0))

    fake.on_submit = first_ends
    second = spawning.spawn(rt, ["/bin/true"], name="second", after=["first"])
    marker = after_dir(rt.scope) / f"{second.id}.go"
    assert marker.read_text() == "released at spawn\n"


def test_an_arming_the_manager_refuses_leaves_no_record(fake: FakeManager,
                                                      rt: Runtime) -> None:
    first = spawning.spawn(rt, ["/bin/sleep", "9"], name="first")

    def refuse(unit: str, props: object) -> None:
        raise OrchError("no path units today")

    fake.on_submit = refuse
    with pytest.raises(OrchError, match="no path units"):
        spawning.spawn(rt, ["/bin/true"], name="second", after=["first"])
    assert list(rt.store.load()) == [first.id]


# -- agents ---------------------------------------------------------------------------


def test_an_agent_runs_its_providers_command_and_keeps_its_state_in_a_sandbox(
        fake: FakeManager, rt: Runtime, claude: Path) -> None:
    from orch.providers import AgentRequest

    session = spawning.spawn_agent(rt, "claude", AgentRequest(prompt="hello"),
                                   options=SpawnOptions(sandbox=True))
    record = rt.store.load()[session.id]
    assert record.provider == "claude" and record.name == "claude"
    assert record.program == str(claude) and "hello" in record.argv
    assert record.agent["prompt"] == "hello"
    options = SpawnOptions.from_json(record.options)
    assert options.sandbox and len(options.writable) == 1


def test_a_sandboxed_agent_keeps_its_state_where_its_environment_moves_it(
        fake: FakeManager, rt: Runtime, claude: Path, tmp_path: Path) -> None:
    # Before, ~/.claude was made writable and CLAUDE_CONFIG_DIR left where the env file
    # put it: read-only, and the agent could not start.
    from orch.providers import AgentRequest

    moved = tmp_path / "claude-home"
    env_file = tmp_path / "claude.env"
    env_file.write_text(f"CLAUDE_CONFIG_DIR={moved}\n")
    for how in ({"env_files": [str(env_file)]}, {"env": {"CLAUDE_CONFIG_DIR": str(moved)}}):
        session = spawning.spawn_agent(rt, "claude", AgentRequest(prompt="hello"),
                                       options=SpawnOptions(sandbox=True), **how)
        record = rt.store.load()[session.id]
        assert SpawnOptions.from_json(record.options).writable == (str(moved),)
        assert record.env.get("CLAUDE_CONFIG_DIR") == how.get("env", {}).get(
            "CLAUDE_CONFIG_DIR")  # the caller's own, or none (the file's then counts)
        assert moved.is_dir()


def _provider_cli(provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PROVIDER's CLI on PATH (a script that does nothing), and a home of the test's own
    (where its default state folder is made, not in ours)."""
    binary = tmp_path / "bin" / provider
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(binary.parent))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(("provider", "variable", "kept"), [
    ("codex", "CODEX_HOME", "."), ("gemini", "GEMINI_CLI_HOME", ".gemini")])
def test_a_relative_agent_home_is_in_the_directory_the_agent_runs_in(
        fake: FakeManager, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        provider: str, variable: str, kept: str) -> None:
    # Before, a relative one left the default home's folder writable, and the agent,
    # which reads it from its own directory, could not write its state.
    from orch.providers import AgentRequest

    _provider_cli(provider, tmp_path, monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    session = spawning.spawn_agent(rt, provider, AgentRequest(prompt="hello"), cwd=str(work),
                                   options=SpawnOptions(sandbox=True),
                                   env={variable: "state/here"})
    writable = SpawnOptions.from_json(rt.store.load()[session.id].options).writable
    assert writable == (str(Path(os.path.normpath(work / "state/here" / kept))),)
    assert not (tmp_path / "home" / f".{provider}").exists()


@pytest.mark.parametrize(("provider", "variable", "kept"), [
    ("copilot", "COPILOT_HOME", "."),  # all of ~/.copilot, moved
    ("gemini", "GEMINI_CLI_HOME", ".gemini")])  # another home, its .gemini in it
def test_a_sandboxed_gemini_or_copilot_keeps_its_state_where_its_env_file_moves_it(
        fake: FakeManager, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        provider: str, variable: str, kept: str) -> None:
    # Before, only claude's and codex's variables were known: ~/.copilot or ~/.gemini
    # was made writable, and the agent's own folder left read-only.
    from orch.providers import AgentRequest

    _provider_cli(provider, tmp_path, monkeypatch)
    moved = tmp_path / f"{provider}-home"
    env_file = tmp_path / f"{provider}.env"
    env_file.write_text(f"{variable}={moved}\n")
    session = spawning.spawn_agent(rt, provider, AgentRequest(prompt="hello"),
                                   options=SpawnOptions(sandbox=True), env_files=[str(env_file)])
    record = rt.store.load()[session.id]
    assert SpawnOptions.from_json(record.options).writable == (str((moved / kept).resolve()),)
    assert variable not in record.env  # the file's own counts
    # Given both ways, the env file's wins, as the manager applies it over --env's.
    both = spawning.spawn_agent(rt, provider, AgentRequest(prompt="hello"),
                                options=SpawnOptions(sandbox=True), env_files=[str(env_file)],
                                env={variable: str(tmp_path / "from-env")})
    assert SpawnOptions.from_json(rt.store.load()[both.id].options).writable == \
        (str((moved / kept).resolve()),)
    home_default = spawning.spawn_agent(rt, provider, AgentRequest(prompt="hello"),
                                        options=SpawnOptions(sandbox=True))
    writable = SpawnOptions.from_json(rt.store.load()[home_default.id].options).writable
    assert writable == (str(tmp_path / "home" / f".{provider}"),)
    assert (tmp_path / "home" / f".{provider}").is_dir()


def test_resume_starts_the_next_invocation_of_an_ended_agent(
        fake: FakeManager, rt: Runtime, claude: Path) -> None:
    record = put(rt, "agent", provider="claude", argv=[str(claude), "-p", "hi"],
                 agent={"prompt": "hi"}, provider_session_id="conv-1",
                 invocation_id="a" * 32, final_result="done", ended_at=rt.now_iso(),
                 exit_code=0, result="success", program=str(claude))
    session = spawning.resume(rt, record.id, "go on")
    now = rt.store.load()[record.id]
    assert session.status is Status.RUNNING
    assert now.invocation_id != record.invocation_id and len(now.history) == 1
    assert "--resume=conv-1" in now.argv and "go on" in now.argv
    assert fake.called("reset_failed") == [record.unit]


def test_resume_refuses_a_running_session_and_a_refused_start(
        fake: FakeManager, rt: Runtime, claude: Path) -> None:
    record = put(rt, "agent", provider="claude", argv=[str(claude)], agent={"prompt": "hi"},
                 provider_session_id="conv-1", invocation_id="a" * 32, final_result="x",
                 ended_at=rt.now_iso(), exit_code=0, result="success")
    fake.add(record.unit, dataclasses.replace(exited(not_started(), 0), main_pid=4_194_399,
                                              active_state="active"))
    with pytest.raises(OrchError, match="still running"):
        spawning.resume(rt, record.id)
    del fake.units[record.unit]
    queued = put(rt, "later", provider="claude", argv=[str(claude)], agent={"prompt": "hi"},
                 queue="q")
    with pytest.raises(OrchError) as caught:  # before: "is still running", never having run
        spawning.resume(rt, queued.id)
    assert caught.value.message.endswith("(later) is queued")
    assert caught.value.hint == "it has not run yet"

    def refuse(unit: str, props: object) -> None:
        raise OrchError("refused")

    fake.on_submit = refuse
    with pytest.raises(OrchError, match="refused"):
        spawning.resume(rt, record.id)


def test_an_agent_whose_conversation_id_orch_may_choose_records_it_at_spawn(
        fake: FakeManager, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orch.providers import AgentRequest

    bin_dir = tmp_path / "agents"
    bin_dir.mkdir()
    for name in ("copilot", "codex"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    # copilot never says its conversation's id: orch chooses it, and can resume it.
    session = spawning.spawn_agent(rt, "copilot", AgentRequest(prompt="hello"))
    record = rt.store.load()[session.id]
    assert record.provider_session_id and \
        f"--session-id={record.provider_session_id}" in record.argv
    rt.store.update(lambda s: s.__setitem__(record.id, dataclasses.replace(
        s[record.id], ended_at=rt.now_iso(), exit_code=0, result="success")))
    fake.set(record.unit, exited(fake.unit(record.unit), 0))
    back = spawning.resume(rt, record.id, "go on")
    resumed = rt.store.load()[back.id]
    assert f"--resume={record.provider_session_id}" in resumed.argv
    # codex has no flag for it: its id comes from its output, as before.
    other = spawning.spawn_agent(rt, "codex", AgentRequest(prompt="hi"))
    assert rt.store.load()[other.id].provider_session_id is None


def test_an_agent_that_exited_before_its_start_job_ended_started(
        fake: FakeManager, rt: Runtime, claude: Path) -> None:
    # Its view reads running while its exit hook may still make the failure a wait; how
    # its start went is in the unit's exit all the same.
    from orch.providers import AgentRequest

    fake.start = lambda unit: dataclasses.replace(
        exited(running(), 1), active_state="deactivating", sub_state="stop-post")
    fake.on_submit = lambda unit, props: fake.job_results.__setitem__(unit, PROGRAM_EXITED)
    session = spawning.spawn_agent(rt, "claude", AgentRequest(prompt="hello"))
    assert session.status is Status.RUNNING
    assert [e.event for e in events.read(rt.store.directory)
            if e.event == "started"] == ["started"]
