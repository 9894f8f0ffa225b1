"""Spawn settings defined once (orch.settings) and the typed request built from them
(orch.request): flags, layers, units, and the configuration read once per spawn."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest

from orch import agents, config
from orch.errors import UsageError
from orch.providers import BUILTIN, AgentRequest
from orch.request import SpawnRequest, config_for_spawn, spawn_request
from orch.scope import Scope
from orch.settings import (
    SPAWN_SETTINGS,
    Kind,
    Restart,
    flag_value,
    parse_duration_seconds,
    parse_percent,
    parse_size_bytes,
)
from orch.spec import SpawnOptions
from tests.unit.fresh import probe

USER = Scope.USER
G = 1024**3
M = 1024**2
FLAGGED = [s for s in SPAWN_SETTINGS.values() if s.flag is not None]


def _one_line(err: pytest.ExceptionInfo[UsageError]) -> str:
    message = err.value.message
    assert "\n" not in message and err.value.exit_code == 2
    return message


def _config(spawn: dict[str, object] | None = None,
            profiles: dict[str, dict[str, object]] | None = None) -> config.Config:
    return config.Config(path=Path("/etc/orch/config.toml"), spawn=spawn or {},
                         providers={}, profiles=profiles or {})


# --- the table --------------------------------------------------------------------------

def test_the_settings_are_the_spawn_flags_and_secret_env_in_help_order() -> None:
    assert list(SPAWN_SETTINGS) == [
        "tags", "env_files", "cwd", "provider", "model", "system_prompt", "auto_approve",
        "tty", "interactive",
        "add_dirs", "max_turns", "timeout", "memory_max", "cpu_quota", "tasks_max", "nice",
        "restart", "sandbox", "worktree", "queue", "priority", "retries", "retry_delay",
        "limit_wait", "persistent", "secret_env"]
    flags = {s.key: s.flag for s in SPAWN_SETTINGS.values()}
    assert flags["add_dirs"] == "--add-dir" and flags["env_files"] == "--env-file"
    assert flags["tags"] == "--tag" and flags["secret_env"] is None
    assert flags["memory_max"] == "--memory-max"
    named = [s.flag for s in FLAGGED]
    assert len(set(named)) == len(named) and all(f and f.startswith("--") for f in named)


def test_each_unit_property_is_named_in_its_help() -> None:
    properties = {s.key: s.unit_property for s in SPAWN_SETTINGS.values() if s.unit_property}
    assert properties == {"timeout": "RuntimeMaxSec=", "memory_max": "MemoryMax=",
                          "cpu_quota": "CPUQuota=", "tasks_max": "TasksMax=",
                          "nice": "Nice=", "restart": "Restart="}
    for key, name in properties.items():
        assert f"({name})" in SPAWN_SETTINGS[key].help
    assert SPAWN_SETTINGS["memory_max"].help == "Memory limit (MemoryMax=): 300M, 2G."


def test_the_provider_help_names_every_built_in_provider() -> None:
    for name in BUILTIN:
        assert name in SPAWN_SETTINGS["provider"].help


def test_restart_choices_are_the_restart_policies() -> None:
    assert SPAWN_SETTINGS["restart"].choices == ("no", "on-failure", "always")
    assert [str(r) for r in Restart] == ["no", "on-failure", "always"]


@pytest.mark.parametrize(("key", "cli_type", "repeatable", "metavar"), [
    ("auto_approve", "flag", False, None), ("sandbox", "flag", False, None),
    # An integer is read as the file's is (from_flag), not by the command line's parser.
    ("max_turns", "str", False, "N"), ("nice", "str", False, "N"),
    ("tasks_max", "str", False, "N"),  # takes "infinity" too
    ("timeout", "str", False, "DURATION"), ("memory_max", "str", False, "SIZE"),
    ("cpu_quota", "str", False, "PERCENT"), ("restart", "str", False, "POLICY"),
    ("tags", "str", True, "TAG"), ("add_dirs", "str", True, "DIR"),
    ("env_files", "str", True, "FILE"), ("provider", "str", False, "NAME"),
])
def test_how_the_command_line_reads_each(key: str, cli_type: str, repeatable: bool,
                                         metavar: str | None) -> None:
    setting = SPAWN_SETTINGS[key]
    assert (setting.cli_type, setting.repeatable, setting.metavar) == (
        cli_type, repeatable, metavar)
    assert setting.flag_help.endswith("(repeatable)") == repeatable


def test_the_table_loads_light() -> None:
    out = probe("import orch.request\n"
                "out['heavy'] = sorted(m for m in ('typer', 'click', 'tomllib', 'tomli_w', "
                "'pystemd', 'orch.config', 'typing', 'fractions') if m in sys.modules)")
    assert out == {"heavy": []}


# --- flags ------------------------------------------------------------------------------

BAD_FLAGS: dict[str, object] = {
    "provider": "a b", "model": "", "system_prompt": "", "auto_approve": "maybe",
    "interactive": "perhaps", "tty": "sure",
    "add_dirs": [""], "max_turns": 0, "timeout": "soon", "memory_max": "lots",
    "cpu_quota": "50", "tasks_max": "0", "nice": 40, "restart": "sometimes",
    "sandbox": "x", "worktree": "x", "persistent": "x", "env_files": ["/ok", ""],
    "tags": ["ok", ""], "cwd": "", "queue": "a b", "priority": 5000,
    "retries": -1, "retry_delay": "soon", "limit_wait": "later",
}


def test_every_flag_has_a_bad_value_here() -> None:
    assert set(BAD_FLAGS) == {s.key for s in FLAGGED}


@pytest.mark.parametrize("key", sorted(BAD_FLAGS))
def test_a_bad_flag_value_is_one_usage_error_naming_the_flag(key: str) -> None:
    setting = SPAWN_SETTINGS[key]
    with pytest.raises(UsageError) as err:
        setting.from_flag(BAD_FLAGS[key])
    assert _one_line(err).startswith(f"{setting.flag}: expected ")
    with pytest.raises(UsageError) as err:
        spawn_request(None, None, {key: BAD_FLAGS[key]})
    assert _one_line(err).startswith(f"{setting.flag}: expected ")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("memory_max", "lots", '--memory-max: expected a size such as 300M, 2G or infinity, '
     'got "lots"'),
    ("tags", ["ok", ""], '--tag: expected a string of 1 to 64 characters, with no commas '
     'or control characters, got ""'),
    ("add_dirs", [""], '--add-dir: expected a non-empty string, got ""'),
    ("nice", 40, "--nice: expected an integer from -20 to 19, got 40"),
    ("tasks_max", "0", '--tasks-max: expected an integer of at least 1 or "infinity", '
     'got "0"'),
    ("restart", "sometimes", '--restart: expected one of "no", "on-failure", "always", '
     'got "sometimes"'),
    # Where a wait of infinity or nothing has no meaning, or overflowed: a retry's wait,
    # infinite, crashed the exit hook that armed it and every `show` of the session.
    ("retry_delay", "infinity", "--retry-delay: expected a duration from 1s to 30d, such "
     "as 90s, 30m, 1h30m, 2h 30min (as systemd.time(7) reads it: a bare number is seconds; "
     'units us, ms, s, min or m, h, d, w, M (month), y), got "infinity"'),
    ("cpu_quota", "99999999999999999999%", '--cpu-quota: expected a percentage such as '
     '"50%" or "200%" (1% to 1000000%), got "99999999999999999999%"'),
])
def test_bad_flag_messages(key: str, value: object, message: str) -> None:
    with pytest.raises(UsageError) as err:
        flag_value(key, value)
    assert _one_line(err) == message


@pytest.mark.parametrize(("key", "value", "held"), [
    ("timeout", "90", 90), ("timeout", "2h 30min", "2h 30min"), ("memory_max", "300M", "300M"),
    ("memory_max", "1024", 1024), ("tasks_max", "12", 12), ("tasks_max", "infinity", "infinity"),
    ("cpu_quota", "50%", "50%"), ("nice", -20, -20), ("max_turns", 3, 3),
    ("sandbox", True, True), ("tags", ["a", "b"], ["a", "b"]), ("restart", "always", "always"),
])
def test_a_flag_is_held_as_the_file_holds_it(key: str, value: object, held: object) -> None:
    assert SPAWN_SETTINGS[key].from_flag(value) == held


# --- layers -----------------------------------------------------------------------------

def test_flags_over_profile_over_spawn() -> None:
    loaded = _config({"memory_max": "2G", "nice": 1, "model": "opus", "tags": ["base"]},
                     {"big": {"memory_max": "8G", "nice": 2, "tags": ["profile"]}})
    assert spawn_request(loaded, None, {}).memory_max == 2 * G
    from_profile = spawn_request(loaded, "big", {})
    assert (from_profile.memory_max, from_profile.nice, from_profile.model,
            from_profile.tags) == (8 * G, 2, "opus", ("profile",))
    flagged = spawn_request(loaded, "big", {"memory_max": "300M", "tags": ["flag"],
                                            "nice": None, "model": None})
    # A flag not given (None) leaves the layers below; a given list replaces, not extends.
    assert (flagged.memory_max, flagged.nice, flagged.model, flagged.tags) == (
        300 * M, 2, "opus", ("flag",))


def test_a_false_flag_overrides_a_true_setting() -> None:
    loaded = _config({"sandbox": True, "persistent": True})
    request = spawn_request(loaded, None, {"sandbox": False})
    assert (request.sandbox, request.persistent) == (False, True)


def test_an_unknown_profile_names_the_file() -> None:
    with pytest.raises(UsageError) as err:
        spawn_request(_config(profiles={"fast": {}}), "slow", {})
    assert _one_line(err) == ("--profile slow: no such profile in /etc/orch/config.toml "
                              "(known profiles: fast)")
    with pytest.raises(UsageError):
        spawn_request(None, "slow", {})


# --- the typed request, as the old path (config + flag_value + options_from_settings)
# made it: the expected values are what that path produced for each case.

CASES: list[tuple[dict[str, object], dict[str, dict[str, object]], str | None,
                  dict[str, object], SpawnRequest]] = [
    ({}, {}, None, {}, SpawnRequest()),
    ({"memory_max": "2G", "timeout": "30min", "tags": ["a"]}, {}, None, {},
     SpawnRequest(memory_max=2 * G, timeout_sec=1800.0, tags=("a",))),
    ({"memory_max": "2G"}, {"big": {"memory_max": "8G", "nice": 5}}, "big", {},
     SpawnRequest(memory_max=8 * G, nice=5)),
    ({"memory_max": "2G"}, {"big": {"memory_max": "8G"}}, "big", {"memory_max": "300M"},
     SpawnRequest(memory_max=300 * M)),
    # 0 and infinity are no limit at all.
    ({"memory_max": "infinity", "tasks_max": "infinity", "timeout": 0}, {}, None, {},
     SpawnRequest()),
    ({}, {}, None, {"timeout": "0"}, SpawnRequest()),
    ({}, {}, None, {"timeout": "infinity", "memory_max": "1024", "tasks_max": "infinity"},
     SpawnRequest(memory_max=1024)),
    ({}, {}, None, {"timeout": "90", "memory_max": "1.5G", "cpu_quota": "150%",
                    "tasks_max": "12", "nice": -3, "restart": "on-failure", "sandbox": True,
                    "worktree": True, "persistent": True},
     SpawnRequest(timeout_sec=90.0, memory_max=3 * G // 2, cpu_quota=150, tasks_max=12,
                  nice=-3, restart=Restart.ON_FAILURE, sandbox=True, worktree=True,
                  persistent=True)),
    ({"timeout": 45, "memory_max": 4096, "cpu_quota": "50%", "tasks_max": 7, "nice": 19,
      "restart": "always", "sandbox": True}, {}, None, {},
     SpawnRequest(timeout_sec=45.0, memory_max=4096, cpu_quota=50, tasks_max=7, nice=19,
                  restart=Restart.ALWAYS, sandbox=True)),
    ({"provider": "claude", "model": "opus", "system_prompt": "be brief", "auto_approve": True,
      "max_turns": 3, "add_dirs": ["/tmp", "rel/dir"]}, {}, None, {},
     SpawnRequest(provider="claude", model="opus", system_prompt="be brief",
                  auto_approve=True, max_turns=3, add_dirs=("/tmp", "HERE/rel/dir"))),
    ({"provider": "claude", "model": "opus"}, {"cheap": {"model": "haiku", "max_turns": 1}},
     "cheap", {"system_prompt": "hi", "add_dirs": ["x"], "auto_approve": True},
     SpawnRequest(provider="claude", model="haiku", system_prompt="hi", auto_approve=True,
                  max_turns=1, add_dirs=("HERE/x",))),
    ({"provider": "claude"}, {}, None, {"provider": "exec"}, SpawnRequest(provider="exec")),
    ({"tags": ["base"], "env_files": ["/e1"], "secret_env": ["TOKEN"], "cwd": "/srv"},
     {"p": {"tags": ["prof"], "secret_env": ["OTHER"]}}, "p",
     {"tags": ["flag1", "flag2"], "env_files": ["e2"], "cwd": "/var"},
     SpawnRequest(tags=("flag1", "flag2"), env_files=("e2",), secret_env=("OTHER",),
                  cwd="/var")),
    ({"sandbox": True, "persistent": True, "worktree": True}, {}, None,
     {"sandbox": False, "persistent": False}, SpawnRequest(worktree=True)),
    ({"provider": "claude", "timeout": "2h 30min", "max_turns": 10}, {}, None,
     {"max_turns": 2, "timeout": "1.5d"},
     SpawnRequest(provider="claude", timeout_sec=129600.0, max_turns=2)),
    ({"tags": ["t"]}, {}, None, {"add_dirs": [], "tags": []}, SpawnRequest()),
]


def _here(request: SpawnRequest, here: Path) -> SpawnRequest:
    return dataclasses.replace(request, add_dirs=tuple(
        d.replace("HERE", str(here)) for d in request.add_dirs))


@pytest.mark.parametrize(("spawn", "profiles", "profile", "flags", "expected"), CASES)
def test_the_request_is_what_the_old_path_made(
        spawn: dict[str, object], profiles: dict[str, dict[str, object]], profile: str | None,
        flags: dict[str, object], expected: SpawnRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    request = spawn_request(_config(spawn, profiles), profile, flags)
    assert request == _here(expected, tmp_path)
    _assert_typed(request)


def _assert_typed(request: SpawnRequest) -> None:
    """Every field holds a value of its annotated type."""
    hints = typing.get_type_hints(SpawnRequest)
    for field in dataclasses.fields(SpawnRequest):
        value = getattr(request, field.name)
        hint = hints[field.name]
        if typing.get_origin(hint) is tuple:
            assert isinstance(value, tuple) and all(isinstance(v, str) for v in value)
            continue
        allowed = typing.get_args(hint) or (hint,)
        assert isinstance(value, allowed), (field.name, value)
        assert not isinstance(value, bool) or bool in allowed, field.name


def test_every_setting_has_its_field() -> None:
    fields = {f.name for f in dataclasses.fields(SpawnRequest)}
    assert fields == {"timeout_sec" if key == "timeout" else key for key in SPAWN_SETTINGS}


def test_options_and_agent_request() -> None:
    request = SpawnRequest(provider="claude", model="opus", add_dirs=("/a",), max_turns=2,
                           memory_max=G, restart=Restart.ALWAYS, sandbox=True, nice=3,
                           timeout_sec=1.5, cpu_quota=20, tasks_max=9, tags=("x",))
    assert request.options() == SpawnOptions(
        timeout_sec=1.5, memory_max=G, cpu_quota=20, tasks_max=9, nice=3,
        restart=Restart.ALWAYS, sandbox=True, add_dirs=("/a",))
    assert request.agent == "claude"
    assert request.agent_request("go") == AgentRequest(
        prompt="go", model="opus", add_dirs=("/a",), max_turns=2)
    assert request.agent_prompt(["go"]) == "go"
    with pytest.raises(UsageError) as err:
        request.agent_prompt(["go", "on"])
    assert _one_line(err) == "--provider claude takes one PROMPT argument (quote it), got 2"
    assert SpawnRequest().agent is None and SpawnRequest(provider="exec").agent is None


# --- the configuration, read once -------------------------------------------------------

@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every configuration file read, in order."""
    reads: list[Path] = []
    real = config._read

    def read(path: Path) -> object:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(config, "_read", read)
    return reads


def test_an_agent_spawn_with_a_profile_reads_the_config_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counted: list[Path]) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[spawn]\nprovider = "mine"\nmemory_max = "2G"\n'
                    '[providers.mine]\nbinary = "mine"\nargv = ["--model={model}", "{prompt}"]\n'
                    '[profiles.fast]\nmodel = "quick"\n')
    monkeypatch.setenv("ORCH_CONFIG", str(path))
    flags = {"nice": 3}
    loaded = config_for_spawn(USER, "fast", flags)
    request = spawn_request(loaded, "fast", flags)
    assert request.agent == "mine" and request.memory_max == 2 * G
    argv = agents.fresh_argv("mine", request.agent_request("hi"), USER, loaded)
    assert argv == ["mine", "--model=quick", "hi"]
    assert agents.state_dir("mine", USER, loaded) is None
    assert counted == [path]
    agents.fresh_argv("mine", request.agent_request("hi"), USER)  # a library caller: reads
    assert counted == [path, path]


def test_a_plain_spawn_without_a_file_reads_nothing(counted: list[Path]) -> None:
    assert config_for_spawn(USER, None, {"memory_max": "1G", "provider": "exec"}) is None
    assert counted == []
    assert config_for_spawn(USER, "p", {}) is not None  # a profile must be looked up
    assert config_for_spawn(USER, None, {"provider": "claude"}) is not None  # and an agent
    assert len(counted) == 2


def test_a_plain_spawn_does_not_load_the_config_machinery(tmp_path: Path) -> None:
    out = probe("from orch.request import config_for_spawn, spawn_request\n"
                "from orch.scope import Scope\n"
                "loaded = config_for_spawn(Scope.USER, None, {'memory_max': '2G'})\n"
                "out['request'] = repr(spawn_request(loaded, None, {'memory_max': '2G'}))\n"
                "out['config'] = 'orch.config' in sys.modules",
                prelude=f"import os\nos.environ['ORCH_CONFIG'] = {str(tmp_path / 'no')!r}\n")
    assert out["config"] is False and "memory_max=2147483648" in str(out["request"])


# --- value parsers ----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    ("0", 0), (0, 0), (90, 90), ("90", 90), ("45s", 45), ("30m", 1800), ("12h", 43200),
    ("7d", 604800), ("2w", 1209600), ("1h30m", 5400), ("1.5h", 5400), ("1d12h", 129600),
    ("0.5", 0.5),
    # systemd.time(7) as systemd reads it: M is a month, spaces and long unit names are
    # fine, a number after a unit is seconds.
    ("30M", 30 * 2_629_800), (" 5s", 5), ("10m5", 605), ("2h 30min", 9000),
    ("1 minute 30 seconds", 90), ("250ms", 0.25), ("1y", 31_557_600), ("infinity", math.inf),
])
def test_parse_duration_seconds(value: str | int, seconds: float) -> None:
    assert parse_duration_seconds(value) == seconds


@pytest.mark.parametrize("value", [
    "nan", "inf", "1..5h", "1.2.3m", "-1", -1, "", "5x", "h", "m30", "5secs", "3.",
    "1h-5m", "1e3", "9" * 400, 2**70, 2**64, True, "infinity 5",
])
def test_parse_duration_seconds_refuses(value: str | int) -> None:
    with pytest.raises(UsageError) as err:
        parse_duration_seconds(value)
    assert "expected a duration" in _one_line(err)


@pytest.mark.parametrize(("value", "size"), [
    (1, 1), ("1", 1), (300, 300), ("512K", 512 * 1024), ("300M", 300 * 1024**2),
    ("2G", 2 * 1024**3), ("1T", 1024**4), ("1.5G", 3 * 1024**3 // 2), ("0.5K", 512),
    ("infinity", None),
])
def test_parse_size_bytes(value: str | int, size: int | None) -> None:
    assert parse_size_bytes(value) == size


@pytest.mark.parametrize("value", [
    "lots", "", "0", 0, -1, "-1M", "2g", "1.5", "1P", "2 G", "G", "Infinity", "1..5G",
    "16384P", 2**64, True,
])
def test_parse_size_bytes_refuses(value: str | int) -> None:
    with pytest.raises(UsageError) as err:
        parse_size_bytes(value)
    assert "expected a size such as 300M, 2G or infinity" in _one_line(err)


@pytest.mark.parametrize(("value", "percent"), [("50%", 50), ("200%", 200), ("1%", 1)])
def test_parse_percent(value: str, percent: int) -> None:
    assert parse_percent(value) == percent


@pytest.mark.parametrize("value", ["50", "0%", "-5%", "5.5%", "%", "50 %", "fifty%", ""])
def test_parse_percent_refuses(value: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_percent(value)
    assert 'expected a percentage such as "50%"' in _one_line(err)


def test_kinds_of_the_spawn_settings_are_closed() -> None:
    assert {s.kind for s in SPAWN_SETTINGS.values()} <= set(Kind) - {Kind.ARGV}


def test_a_priority_without_a_queue_is_refused_not_dropped() -> None:
    from orch.request import spawn_request

    with pytest.raises(UsageError, match=r"^--priority orders a queue: give --queue"):
        spawn_request(None, None, {"priority": "5"})
    assert spawn_request(None, None, {"priority": "5", "queue": "night"}).priority == 5


def test_a_terminal_and_a_conversation_are_refused_together() -> None:
    from orch.request import spawn_request

    # Before, accepted: the prompt and every `orch send` went to no one.
    with pytest.raises(UsageError, match=r"^--tty and --interactive do not go together"):
        spawn_request(None, None, {"provider": "claude", "tty": True, "interactive": True})
    assert spawn_request(None, None, {"provider": "claude", "tty": True}).tty


@pytest.mark.parametrize(("key", "value", "flag"), [
    ("model", "opus", "--model"), ("system_prompt", "be brief", "--system-prompt"),
    ("auto_approve", True, "--auto-approve"), ("interactive", True, "--interactive"),
    ("max_turns", "3", "--max-turns"), ("retries", "2", "--retries"),
    ("retry_delay", "1s", "--retry-delay"), ("limit_wait", "1h", "--limit-wait")])
def test_an_agents_option_given_to_a_plain_command_is_refused_not_dropped(
        key: str, value: object, flag: str) -> None:
    from orch.request import spawn_request

    for provider, said in ((None, ""), ("exec", "--provider exec runs a plain command: ")):
        with pytest.raises(UsageError) as err:
            spawn_request(None, None, {"provider": provider, key: value})
        assert err.value.message == (f"{said}{flag} is an agent's option: give --provider "
                                     "(claude, codex, ...) or leave it out")
    assert spawn_request(None, None, {"provider": "claude", key: value}).agent == "claude"
    # Not given (None, or a flag left off): nothing to refuse.
    assert spawn_request(None, None, {key: None}).agent is None


def test_retries_given_to_a_conversation_are_refused_not_dropped() -> None:
    from orch.request import spawn_request

    for key, value in (("retries", "2"), ("retry_delay", "10s")):
        with pytest.raises(UsageError, match="--retries and --interactive do not go"):
            spawn_request(None, None, {"provider": "claude", "interactive": True, key: value})
    # A [spawn] default for every spawn is no request of this one: left, as documented.
    loaded = _config({"retries": 2})
    assert spawn_request(loaded, None, {"provider": "claude", "interactive": True}).interactive


@pytest.mark.parametrize("key", ["retry_delay", "limit_wait"])
@pytest.mark.parametrize(("value", "taken"), [
    ("1s", True), ("30d", True), ("5m", True), (90, True),
    ("0", False), (0, False), ("infinity", False), ("30d 1s", False), ("1y", False)])
def test_a_wait_to_run_again_is_finite_and_more_than_nothing(key: str, value: object,
                                                          taken: bool) -> None:
    setting = SPAWN_SETTINGS[key]
    assert setting.accepts(setting.from_text(value) if isinstance(value, str) else value) \
        is taken  # as `config set` checks it
    if not taken:
        with pytest.raises(UsageError):
            flag_value(key, value)


@pytest.mark.parametrize(("value", "taken"), [("1%", True), ("1000000%", True),
                                              ("0%", False), ("1000001%", False),
                                              ("99999999999999999999%", False)])
def test_a_cpu_quota_fits_what_systemd_holds(value: str, taken: bool) -> None:
    assert SPAWN_SETTINGS["cpu_quota"].accepts(value) is taken
