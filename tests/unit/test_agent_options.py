"""Spawn options, secrets files and agent results: the pure parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch.agents import with_result
from orch.errors import UsageError
from orch.request import spawn_request
from orch.results import AgentResult
from orch.scope import Scope
from orch.secrets import _quoted, gather, parse_env_file
from orch.session import Record
from orch.spec import Restart, SpawnOptions


def _props(options: SpawnOptions, scope: Scope = Scope.USER,
           cwd: str = "/home/u/src") -> dict[str, object]:
    return {name: value for name, _, value in options.properties(scope, cwd)}


def test_limits_map_to_systemds_units() -> None:
    props = _props(SpawnOptions(timeout_sec=90, memory_max=300 * 2**20, cpu_quota=50,
                                tasks_max=64, nice=5))
    assert props == {"RuntimeMaxUSec": 90_000_000, "MemoryMax": 300 * 2**20,
                     "CPUQuotaPerSecUSec": 500_000, "TasksMax": 64, "Nice": 5}


def test_restart_comes_with_a_bounded_start_limit() -> None:
    props = _props(SpawnOptions(restart=Restart.ON_FAILURE))
    assert props["Restart"] == "on-failure"
    assert props["StartLimitBurst"] == 5 and props["StartLimitIntervalUSec"] == 600_000_000
    assert "Restart" not in _props(SpawnOptions())


def test_the_sandbox_for_a_user_unit() -> None:
    props = _props(SpawnOptions(sandbox=True, add_dirs=("/data",), writable=("/home/u/.x",)))
    assert props["ProtectSystem"] == "strict" and props["ProtectHome"] == "read-only"
    assert props["ReadWritePaths"] == ["/home/u/src", "/data", "/home/u/.x"]
    assert props["PrivateTmp"] is True and props["NoNewPrivileges"] is True
    assert props["PrivateUsers"] is True and props["PermissionsStartOnly"] is True
    assert "PrivateUsers" not in _props(SpawnOptions(sandbox=True), Scope.SYSTEM)


@pytest.mark.parametrize("cwd", ["/tmp", "/tmp/work", "/var/tmp/x"])
def test_no_private_tmp_when_a_writable_path_lives_there(cwd: str) -> None:
    props = _props(SpawnOptions(sandbox=True), cwd=cwd)
    assert "PrivateTmp" not in props
    # The shared ones stay writable then: an agent's scratch files go there.
    assert props["ReadWritePaths"] == [cwd, "/tmp", "/var/tmp"]
    private = _props(SpawnOptions(sandbox=True), cwd="/tmpfoo")
    assert private["PrivateTmp"] is True and private["ReadWritePaths"] == ["/tmpfoo"]


def test_options_round_trip_through_the_record() -> None:
    options = SpawnOptions(timeout_sec=5.0, restart=Restart.ALWAYS, sandbox=True,
                           add_dirs=("/a",), writable=("/b",))
    assert SpawnOptions.from_json(options.to_json()) == options
    assert SpawnOptions().to_json() == {}
    with pytest.raises(ValueError, match="unknown spawn option"):
        SpawnOptions.from_json({"colour": "red"})


def test_settings_from_the_config_become_options() -> None:
    options = spawn_request(None, None, {
        "timeout": "1h30m", "memory_max": "2G", "cpu_quota": "150%",
        "tasks_max": "infinity", "nice": -3, "restart": "always", "sandbox": True,
        "add_dirs": ["/srv/data"]}).options()
    assert options == SpawnOptions(timeout_sec=5400.0, memory_max=2 * 2**30, cpu_quota=150,
                                   tasks_max=None, nice=-3, restart=Restart.ALWAYS,
                                   sandbox=True, add_dirs=("/srv/data",))
    assert spawn_request(None, None, {"timeout": 0}).options().timeout_sec is None


def test_env_files_parse_as_systemd_reads_them(tmp_path: Path) -> None:
    # More in test_envfile.py, and against systemd itself in the integration tests.
    env = tmp_path / "keys.env"
    env.write_text("# comment\n\nA=1\nB='two words'\nC=\"x=y\"\nD=\n")
    assert parse_env_file(str(env)) == {"A": "1", "B": "two words", "C": "x=y", "D": ""}
    env.write_text("A=1\nnot an assignment\n")
    with pytest.raises(UsageError, match=r"keys.env:2: expected KEY=VALUE"):
        parse_env_file(str(env))
    with pytest.raises(UsageError, match="no/such"):
        parse_env_file("/no/such/file")


def test_secrets_from_the_environment_must_be_set(tmp_path: Path) -> None:
    assert gather([], ["TOKEN"], {"TOKEN": "t"}) == {"TOKEN": "t"}
    with pytest.raises(UsageError, match="TOKEN is not set"):
        gather([], ["TOKEN"], {})


def test_environment_file_quoting_keeps_values_verbatim() -> None:
    # systemd's EnvironmentFile= syntax: in double quotes, \\ \" \$ and \` are escapes.
    assert _quoted('sk-"q" $HOME `x` \\b') == '"sk-\\"q\\" \\$HOME \\`x\\` \\\\b"'


def _agent_record(**changes: object) -> Record:
    base = Record(id="s", name="n", unit="orch-n-00000000.service", scope="user",
                  argv=["claude"], cwd="/", created_at="2025-01-01T00:00:00+00:00",
                  provider="claude")
    return Record(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_an_agents_result_is_recorded_but_a_kill_result_wins() -> None:
    found = AgentResult("conv-1", "the answer", False, {"output_tokens": 3}, 0.01)
    recorded = with_result(_agent_record(), found)
    assert (recorded.provider_session_id, recorded.final_result, recorded.agent_error,
            recorded.usage, recorded.cost_usd) == ("conv-1", "the answer", False,
                                                   {"output_tokens": 3}, 0.01)
    killed = with_result(_agent_record(final_result="from orch kill"), found)
    assert killed.final_result == "from orch kill"


def test_an_agent_error_is_recorded_even_without_text() -> None:
    recorded = with_result(_agent_record(), AgentResult(None, None, True, None, None))
    assert recorded.agent_error is True and recorded.final_result is None


def test_the_sessions_own_writable_paths_count_for_a_private_tmp() -> None:
    # orch's state under /var/tmp (ORCH_STATE_DIR), left writable for `orch kill self`:
    # a private /var/tmp would hide it, and the unit failed to start (exit status 226).
    props = {name: value for name, _, value in SpawnOptions(sandbox=True).properties(
        Scope.USER, "/home/u/src", ["/var/tmp/orch-state"])}
    assert "PrivateTmp" not in props
    assert props["ReadWritePaths"] == ["/home/u/src", "/var/tmp/orch-state", "/tmp",
                                       "/var/tmp"]
