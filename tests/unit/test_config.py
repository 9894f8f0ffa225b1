"""The configuration file: one table of settings, checked on every read and every write."""

from __future__ import annotations

import multiprocessing
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from orch import config
from orch.config import PROVIDER_SETTINGS, ConfigError
from orch.errors import UsageError
from orch.queues import QueueLimits
from orch.scope import Scope
from orch.settings import SPAWN_SETTINGS, Kind

DATA = Path(__file__).parent / "data" / "config"
USER = Scope.USER

# What spawn.tags takes.
TAGS = "a list of strings of 1 to 64 characters, with no commas or control characters"


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ORCH_CONFIG pointed at a file whose directory does not exist yet."""
    target = tmp_path / "conf" / "config.toml"
    monkeypatch.setenv("ORCH_CONFIG", str(target))
    return target


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _doc(path: Path) -> dict[str, object]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _one_line(err: pytest.ExceptionInfo[UsageError] | pytest.ExceptionInfo[ConfigError]) -> str:
    message = err.value.message
    assert "\n" not in message and err.value.exit_code == 2
    return message


# --- where the file is ------------------------------------------------------------------

def test_user_file_is_under_xdg_config_home(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.delenv("ORCH_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.config_path(Scope.USER) == tmp_path / "xdg" / "orch" / "config.toml"


def test_relative_xdg_config_home_is_ignored(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.delenv("ORCH_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.config_path(Scope.USER) == tmp_path / ".config" / "orch" / "config.toml"


def test_system_file_is_in_etc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_CONFIG", raising=False)
    assert config.config_path(Scope.SYSTEM) == Path("/etc/orch/config.toml")


def test_orch_config_overrides_both_scopes(path: Path) -> None:
    assert config.config_path(Scope.USER) == path
    assert config.config_path(Scope.SYSTEM) == path


# --- reading ----------------------------------------------------------------------------

def test_missing_file_is_an_empty_config(path: Path) -> None:
    loaded = config.load(USER)
    assert loaded == config.Config(path=path, spawn={}, providers={}, profiles={})
    assert config.items(USER) == []
    assert config.get(USER, "spawn.model") is None
    assert loaded.spawn_defaults(None) == {}
    assert not path.parent.exists()


def test_full_example_loads_with_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CONFIG", str(DATA / "full.toml"))
    loaded = config.load(USER)
    assert set(loaded.spawn) == set(SPAWN_SETTINGS)
    assert loaded.spawn["memory_max"] == "2G" and loaded.spawn["nice"] == -5
    assert loaded.providers["claude"]["argv"] == [
        "--print", "--output-format", "stream-json", ["--model", "{model}"]]
    assert set(loaded.providers["claude"]) == set(PROVIDER_SETTINGS)
    assert loaded.providers["my-agent"] == {"binary": "my-agent", "argv": [], "results": "text"}
    assert loaded.profiles["big_box"]["tags"] == []
    listed = dict(config.items(USER))
    assert listed["profiles.fast.timeout"] == 600
    assert listed["providers.claude.results"] == "claude-stream-json"
    keys = [k for k, _ in config.items(USER)]
    assert keys == sorted(keys) and len(keys) == len(SPAWN_SETTINGS) + 4 + 3 + 3 + 3 + 2
    assert set(loaded.queues["night"]) == set(config.QUEUE_SETTINGS)
    assert loaded.queue_limits("night") == QueueLimits(max_running=3,
                                                        min_memory_available=2 << 30)


# --- the settings table -----------------------------------------------------------------

def test_spawn_settings_are_the_documented_ones() -> None:
    kinds = {key: s.kind for key, s in SPAWN_SETTINGS.items()}
    assert kinds == {
        "provider": Kind.STRING, "model": Kind.STRING, "system_prompt": Kind.STRING,
        "auto_approve": Kind.BOOL, "interactive": Kind.BOOL, "tty": Kind.BOOL,
            "max_turns": Kind.INT, "add_dirs": Kind.STRING_LIST,
        "timeout": Kind.DURATION, "memory_max": Kind.SIZE, "cpu_quota": Kind.PERCENT,
        "tasks_max": Kind.INT, "nice": Kind.INT, "restart": Kind.CHOICE, "sandbox": Kind.BOOL,
        "worktree": Kind.BOOL, "persistent": Kind.BOOL, "env_files": Kind.STRING_LIST,
        "secret_env": Kind.STRING_LIST, "tags": Kind.STRING_LIST, "cwd": Kind.STRING,
        "queue": Kind.STRING, "priority": Kind.INT, "retries": Kind.INT,
        "retry_delay": Kind.DURATION, "limit_wait": Kind.DURATION,
    }
    assert all(s.key == key and s.help for key, s in SPAWN_SETTINGS.items())
    assert set(PROVIDER_SETTINGS) == {"binary", "argv", "resume_argv", "results"}


def test_help_covers_every_setting() -> None:
    rows = dict(config.describe())
    for key in SPAWN_SETTINGS:
        assert f"spawn.{key}" in rows
    for key in PROVIDER_SETTINGS:
        assert f"providers.NAME.{key}" in rows
    assert "from -20 to 19" in rows["spawn.nice"]
    assert '"no", "on-failure", "always"' in rows["spawn.restart"]


# --- set / get / unset / items for every kind -------------------------------------------

ROUND_TRIPS = [
    ("spawn.model", "opus", "opus"),
    ("spawn.provider", "my-agent", "my-agent"),
    ("spawn.system_prompt", "line one\nline \"two\"", "line one\nline \"two\""),
    ("spawn.cwd", "/srv/repo", "/srv/repo"),
    ("spawn.auto_approve", "yes", True),
    ("spawn.sandbox", "TRUE", True),
    ("spawn.worktree", "0", False),
    ("spawn.persistent", "no", False),
    ("spawn.max_turns", "12", 12),
    ("spawn.tasks_max", "infinity", "infinity"),
    ("spawn.tasks_max", "512", 512),
    ("spawn.nice", "-20", -20),
    ("spawn.nice", "19", 19),
    ("spawn.timeout", "1h30m", "1h30m"),
    ("spawn.timeout", "90", 90),
    ("spawn.timeout", "0", 0),
    ("spawn.memory_max", "300M", "300M"),
    ("spawn.memory_max", "1048576", 1048576),
    ("spawn.memory_max", "infinity", "infinity"),
    ("spawn.cpu_quota", "50%", "50%"),
    ("spawn.restart", "on-failure", "on-failure"),
    ("spawn.tags", "a, b", ["a", "b"]),
    ("spawn.tags", "['x y', 'z w']", ["x y", "z w"]),
    ("spawn.add_dirs", "", []),
    ("spawn.env_files", "/etc/a.env", ["/etc/a.env"]),
    ("spawn.secret_env", "API_KEY,_OTHER2", ["API_KEY", "_OTHER2"]),
    ("profiles.fast.model", "haiku", "haiku"),
    ("profiles.big-box.memory_max", "8G", "8G"),
    ("providers.mine.binary", "/usr/bin/agent", "/usr/bin/agent"),
    ("providers.mine.argv", "['-p', ['--model', '{model}']]", ["-p", ["--model", "{model}"]]),
    ("providers.mine.resume_argv", "[]", []),
    ("providers.mine.results", "codex-jsonl", "codex-jsonl"),
]


@pytest.mark.parametrize(("dotted", "raw", "stored"), ROUND_TRIPS)
def test_round_trip(path: Path, dotted: str, raw: str, stored: object) -> None:
    config.set_value(USER, dotted, raw)
    assert config.get(USER, dotted) == stored
    assert config.items(USER) == [(dotted, stored)]
    node: object = _doc(path)
    for part in dotted.split("."):
        assert isinstance(node, dict)
        node = node[part]
    assert node == stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["config.toml"]  # no temp or lock file left behind
    assert config.unset(USER, dotted) is True
    assert config.get(USER, dotted) is None
    assert config.unset(USER, dotted) is False
    assert _doc(path) == {}


def test_setting_the_same_value_again_does_not_rewrite(path: Path) -> None:
    config.set_value(USER, "spawn.model", "opus")
    inode = path.stat().st_ino
    config.set_value(USER, "spawn.model", "opus")
    assert path.stat().st_ino == inode
    config.set_value(USER, "spawn.model", "sonnet")
    assert path.stat().st_ino != inode  # a change is a new file renamed into place


def test_other_keys_survive_a_set(path: Path) -> None:
    _write(path, (DATA / "full.toml").read_text())
    before = dict(config.items(USER))
    config.set_value(USER, "profiles.fast.nice", "10")
    config.set_value(USER, "spawn.memory_max", "4G")
    after = dict(config.items(USER))
    assert after.pop("profiles.fast.nice") == 10
    assert after.pop("spawn.memory_max") == "4G"
    before.pop("spawn.memory_max")
    assert after == before


def test_unset_removes_tables_left_empty(path: Path) -> None:
    config.set_value(USER, "spawn.model", "opus")
    config.set_value(USER, "profiles.fast.model", "haiku")
    config.set_value(USER, "profiles.fast.nice", "5")
    config.set_value(USER, "profiles.slow.nice", "15")
    assert config.unset(USER, "profiles.fast.model")
    assert _doc(path)["profiles"] == {"fast": {"nice": 5}, "slow": {"nice": 15}}
    assert config.unset(USER, "profiles.fast.nice")
    assert _doc(path)["profiles"] == {"slow": {"nice": 15}}
    assert config.unset(USER, "profiles.slow.nice")
    assert _doc(path) == {"spawn": {"model": "opus"}}
    assert config.unset(USER, "spawn.model")
    assert path.read_bytes() == b""


def test_unset_on_a_missing_file_creates_nothing(path: Path) -> None:
    assert config.unset(USER, "spawn.model") is False
    assert not path.parent.exists()


def test_unset_can_mend_a_file_with_an_unknown_key(path: Path) -> None:
    _write(path, '[spawn]\nmodel = "opus"\nmemmax = "2G"\n')
    with pytest.raises(ConfigError):
        config.load(USER)
    assert config.unset(USER, "spawn.memmax") is True
    assert config.items(USER) == [("spawn.model", "opus")]


def test_unset_of_an_unknown_key_that_is_not_there_is_refused(path: Path) -> None:
    # A typo (memroy_max) must not read as done: before, "was not set", exit 0.
    for content in (None, '[spawn]\nmodel = "opus"\n'):
        if content is not None:
            _write(path, content)
        with pytest.raises(UsageError, match=r"^no such setting: spawn\.memroy_max"):
            config.unset(USER, "spawn.memroy_max")
    assert config.unset(USER, "spawn.memory_max") is False  # known, only not set


def test_set_writes_through_a_symbolic_link(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = _write(tmp_path / "dotfiles" / "orch.toml", '[spawn]\nmodel = "opus"\n')
    link = tmp_path / "conf" / "config.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    monkeypatch.setenv("ORCH_CONFIG", str(link))
    config.set_value(USER, "spawn.nice", "3")
    assert link.is_symlink()
    assert _doc(real) == {"spawn": {"model": "opus", "nice": 3}}


def _set_many(config_file: str, worker: int) -> None:
    os.environ["ORCH_CONFIG"] = config_file
    for i in range(10):
        config.set_value(USER, f"profiles.p{worker}-{i}.max_turns", str(i + 1))


def test_concurrent_sets_lose_nothing(path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_set_many, args=(str(path), w)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * 4
    assert len(config.load(USER).profiles) == 40


# --- get and keys that do not exist -----------------------------------------------------

@pytest.mark.parametrize("dotted", [
    "spawn.memmax", "spawn", "spawn.model.x", "model", "profiles.fast", "profiles.fast.binary",
    "providers.x.model", "providers.bad name.binary", "profiles..model", "colours.x.y", "",
    "spawn.a\nb", "profiles.a\nb.model",
])
def test_unknown_keys_are_usage_errors(path: Path, dotted: str) -> None:
    calls: list[Callable[[], object]] = [lambda: config.get(USER, dotted),
                                         lambda: config.set_value(USER, dotted, "1")]
    for call in calls:
        with pytest.raises(UsageError) as err:
            call()
        assert _one_line(err).startswith("no such setting")
    assert not path.parent.exists()


def test_unknown_key_suggests_the_close_one(path: Path) -> None:
    with pytest.raises(UsageError) as err:
        config.get(USER, "spawn.memmax")
    assert _one_line(err) == "no such setting: spawn.memmax; did you mean memory_max?"


def test_known_but_unset_key_is_none(path: Path) -> None:
    _write(path, '[profiles.fast]\nmodel = "haiku"\n')
    assert config.get(USER, "spawn.model") is None
    assert config.get(USER, "profiles.fast.nice") is None
    assert config.get(USER, "profiles.other.model") is None
    assert config.get(USER, "providers.claude.binary") is None


# --- files that break the rules ---------------------------------------------------------

BAD_FILES = [
    ('[bogus]\nx = 1\n',
     'bogus: unknown table; expected one of hooks, hosts, profiles, providers, queues, spawn'),
    ('spawn = 3\n', 'spawn: expected a table, got 3'),
    ('[spawn]\nmemmax = "2G"\n', 'spawn.memmax: unknown setting; did you mean memory_max?'),
    ('[spawn]\n"a\\nb" = 1\n', 'spawn."a\\nb": unknown setting'),
    ('"x\\ny" = 1\n', '"x\\ny": unknown table'),
    ('[spawn]\nmax_turns = "3"\n', 'spawn.max_turns: expected an integer of at least 1, got "3"'),
    ('[spawn]\nmax_turns = 0\n', 'spawn.max_turns: expected an integer of at least 1, got 0'),
    ('[spawn]\nnice = 20\n', 'spawn.nice: expected an integer from -20 to 19, got 20'),
    ('[spawn]\nnice = -21\n', 'spawn.nice: expected an integer from -20 to 19, got -21'),
    ('[spawn]\ntasks_max = "lots"\n',
     'spawn.tasks_max: expected an integer of at least 1 or "infinity", got "lots"'),
    ('[spawn]\nauto_approve = "yes"\n', 'spawn.auto_approve: expected true or false, got "yes"'),
    ('[spawn]\nmemory_max = "lots"\n',
     'spawn.memory_max: expected a size such as 300M, 2G or infinity, got "lots"'),
    ('[spawn]\nmemory_max = "2g"\n', 'spawn.memory_max: expected a size'),
    ('[spawn]\nmemory_max = 0\n', 'spawn.memory_max: expected a size'),
    ('[spawn]\ncpu_quota = 50\n',
     'spawn.cpu_quota: expected a percentage such as "50%" or "200%" (1% to 1000000%), got 50'),
    ('[spawn]\ncpu_quota = "0%"\n', 'spawn.cpu_quota: expected a percentage'),
    ('[spawn]\ntimeout = "1..5h"\n', 'spawn.timeout: expected a duration such as 90s'),
    ('[spawn]\ntimeout = -1\n', 'spawn.timeout: expected a duration'),
    ('[spawn]\ntimeout = 1.5\n', 'spawn.timeout: expected a duration'),
    ('[spawn]\nrestart = "sometimes"\n',
     'spawn.restart: expected one of "no", "on-failure", "always", got "sometimes"'),
    ('[spawn]\ntags = ["ok", 3]\n',
     f'spawn.tags: expected {TAGS}, got ["ok", 3]'),
    ('[spawn]\ntags = "ok"\n', f'spawn.tags: expected {TAGS}, got "ok"'),
    ('[spawn]\nsecret_env = ["API_KEY", "1BAD"]\n',
     'spawn.secret_env: expected a list of strings matching [A-Za-z_][A-Za-z0-9_]*'),
    ('[spawn]\nmodel = ""\n', 'spawn.model: expected a non-empty string, got ""'),
    ('[spawn]\nprovider = "my agent"\n', 'spawn.provider: expected a string matching'),
    ('[profiles.fast]\nnice = 99\n', 'profiles.fast.nice: expected an integer from -20 to 19'),
    ('[profiles.fast]\nbinary = "x"\n', 'profiles.fast.binary: unknown setting'),
    ('[profiles."bad name"]\nmodel = "x"\n', 'profiles."bad name": expected a name'),
    ('profiles = ["fast"]\n', 'profiles: expected a table'),
    ('[profiles]\nfast = "haiku"\n', 'profiles.fast: expected a table, got "haiku"'),
    ('[providers.x]\nresults = "xml"\n',
     'providers.x.results: expected one of "claude-stream-json", "codex-jsonl", '
     '"copilot-jsonl", "gemini-json", "text", got "xml"'),
    ('[providers.x]\nargv = ["a", 3]\n',
     'providers.x.argv: expected a list whose items are strings or lists of strings, '
     'got ["a", 3]'),
    ('[providers.x]\nargv = ["a", ["b", 3]]\n', 'providers.x.argv: expected a list whose'),
    ('[providers.x]\nargv = [["a", ["b"]]]\n', 'providers.x.argv: expected a list whose'),
    ('[providers.x]\nresume_argv = "claude --resume"\n',
     'providers.x.resume_argv: expected a list whose'),
    ('[providers.x]\nbinary = 7\n', 'providers.x.binary: expected a non-empty string, got 7'),
    ('[providers.x]\ncolour = "red"\n', 'providers.x.colour: unknown setting; expected one of '
     'argv, binary, results, resume_argv'),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_file_is_one_line_naming_file_key_and_expectation(path: Path, text: str,
                                                              expected: str) -> None:
    _write(path, text)
    calls: list[Callable[[], object]] = [lambda: config.load(USER), lambda: config.items(USER),
                                         lambda: config.get(USER, "spawn.model")]
    for call in calls:
        with pytest.raises(ConfigError) as err:
            call()
        assert _one_line(err).startswith(f"{path}: {expected}")


def test_bad_file_refuses_a_set_and_is_left_as_it_was(path: Path) -> None:
    original = b'[spawn]\nnice = 20  # too nice\n'
    _write(path, original.decode())
    with pytest.raises(ConfigError):
        config.set_value(USER, "spawn.model", "opus")
    assert path.read_bytes() == original


def test_long_values_are_cut_short_in_errors(path: Path) -> None:
    _write(path, f'[spawn]\nnice = "{"x" * 500}"\n')
    with pytest.raises(ConfigError) as err:
        config.load(USER)
    message = _one_line(err)
    assert message.endswith(f'got "{"x" * 55}..."')


def test_invalid_toml_names_file_and_position(path: Path) -> None:
    _write(path, '[spawn]\nmodel = "opus"\nnice = \n')
    with pytest.raises(ConfigError) as err:
        config.load(USER)
    message = _one_line(err)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "(at line 3, column 8)" in message


def test_file_that_is_not_utf8_is_refused(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b'[spawn]\nmodel = "\xff"\n')
    with pytest.raises(ConfigError) as err:
        config.load(USER)
    assert _one_line(err).startswith(f"{path}: not valid UTF-8")


def test_directory_in_place_of_the_file_is_refused(path: Path) -> None:
    path.mkdir(parents=True)
    with pytest.raises(ConfigError) as err:
        config.load(USER)
    assert _one_line(err) == f"{path}: is a directory, not a configuration file"


def test_fifo_in_place_of_the_file_is_refused_without_hanging(path: Path) -> None:
    path.parent.mkdir()
    os.mkfifo(path)
    with pytest.raises(ConfigError) as err:
        config.load(USER)
    assert _one_line(err) == f"{path}: not a regular file"


# --- `orch config set` values that are refused ------------------------------------------

BAD_SETS = [
    ("spawn.nice", "40", "expected an integer from -20 to 19, got 40"),
    ("spawn.nice", "-3.5", 'expected an integer from -20 to 19, got "-3.5"'),
    ("spawn.max_turns", "0", "expected an integer of at least 1, got 0"),
    ("spawn.tasks_max", "many", 'expected an integer of at least 1 or "infinity", got "many"'),
    ("spawn.memory_max", "lots", 'expected a size such as 300M, 2G or infinity, got "lots"'),
    ("spawn.memory_max", "1.5", "expected a size"),
    ("spawn.cpu_quota", "50",
     'expected a percentage such as "50%" or "200%" (1% to 1000000%), got "50"'),
    ("spawn.timeout", "nan", 'expected a duration such as 90s, 30m, 1h30m, 2h 30min or '
     'infinity (as systemd.time(7) reads it: a bare number is seconds'),
    ("spawn.timeout", "-1", "expected a duration"),
    ("spawn.restart", "sometimes", 'expected one of "no", "on-failure", "always"'),
    ("spawn.auto_approve", "maybe", 'expected true or false (or yes/no, 1/0), got "maybe"'),
    ("spawn.model", "", 'expected a non-empty string, got ""'),
    ("spawn.tags", "a,,b", f"expected {TAGS}, comma-separated (a,b) or as "
     "a TOML array (['a', 'b'])"),
    ("spawn.tags", "[1, 2]", f"expected {TAGS}"),
    ("spawn.tags", "['a'", f"expected {TAGS}"),
    # What a spawn refused, the file refuses too (a comma would split it in `ps --tag`).
    ("spawn.tags", "['a,b']", f"expected {TAGS}"),
    ("spawn.secret_env", "OK,1BAD", "expected a list of strings matching"),
    ("providers.x.argv", "--print --verbose", "expected a list whose items are strings or "
     "lists of strings, as a TOML array"),
    ("providers.x.argv", "['a']\nresults = 'text'", "expected a list whose items"),
    ("providers.x.argv", "[['a', ['b']]]", "expected a list whose items"),
    ("providers.x.results", "xml", 'expected one of "claude-stream-json"'),
]

ORIGINAL = b"""# my settings, by hand
[spawn]
model = "opus"   # the big one
tags = [ "a",  "b" ]

[profiles.fast]
nice = 5
"""


@pytest.mark.parametrize(("dotted", "raw", "expected"), BAD_SETS)
def test_refused_set_leaves_the_file_byte_for_byte(path: Path, dotted: str, raw: str,
                                                   expected: str) -> None:
    _write(path, ORIGINAL.decode())
    with pytest.raises(UsageError) as err:
        config.set_value(USER, dotted, raw)
    message = _one_line(err)
    assert message.startswith(f"{dotted}: {expected}")
    assert message.endswith(f"(nothing written to {path})")
    assert path.read_bytes() == ORIGINAL
    assert os.listdir(path.parent) == ["config.toml"]


def test_refused_set_creates_no_file(path: Path) -> None:
    with pytest.raises(UsageError):
        config.set_value(USER, "spawn.nice", "40")
    assert not path.parent.exists()


# --- profiles ---------------------------------------------------------------------------

def test_profile_overlays_spawn_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CONFIG", str(DATA / "full.toml"))
    loaded = config.load(USER)
    plain = loaded.spawn_defaults(None)
    assert plain == loaded.spawn
    fast = loaded.spawn_defaults("fast")
    assert fast["model"] == "haiku" and fast["max_turns"] == 5 and fast["timeout"] == 600
    assert fast["memory_max"] == "2G" and fast["provider"] == "claude"
    big = loaded.spawn_defaults("big_box")
    assert big["tags"] == [] and big["memory_max"] == 8589934592 and big["tasks_max"] == 4096
    assert set(big) == set(loaded.spawn)


def test_spawn_defaults_hand_out_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CONFIG", str(DATA / "full.toml"))
    loaded = config.load(USER)
    tags = loaded.spawn_defaults(None)["tags"]
    assert isinstance(tags, list)
    tags.append("extra")
    assert loaded.spawn["tags"] == ["nightly", "ci"]


def test_unknown_profile_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CONFIG", str(DATA / "full.toml"))
    with pytest.raises(UsageError) as err:
        config.load(USER).spawn_defaults("slow")
    assert _one_line(err) == (f"--profile slow: no such profile in {DATA / 'full.toml'} "
                              "(known profiles: big_box, fast)")


def test_unknown_profile_with_none_defined(path: Path) -> None:
    with pytest.raises(UsageError) as err:
        config.load(USER).spawn_defaults("fast")
    assert _one_line(err).endswith("(known profiles: none)")


def test_a_provider_template_no_spawn_could_use_is_refused_at_set(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    # Before, it was written, and every spawn with that provider refused it.
    path = tmp_path / "config.toml"
    monkeypatch.setenv("ORCH_CONFIG", str(path))
    with pytest.raises(UsageError) as err:
        config.set_value(USER, "providers.mine.argv", "['{bogus}']")
    assert err.value.message.startswith(f"{path}: provider mine: argv: unknown placeholder "
                                        "{bogus} (known: ")
    assert err.value.message.endswith("(nothing written)") and not path.exists()
    config.set_value(USER, "providers.mine.argv", "['run', '{prompt!}']")  # a key at a time
    config.set_value(USER, "providers.mine.binary", "my-agent")
    assert config.load(USER).providers == {"mine": {"argv": ["run", "{prompt!}"],
                                                    "binary": "my-agent"}}


@pytest.mark.parametrize("value", ['"abc"', "0", '"500ms"', "true"])
def test_a_bad_hook_time_limit_says_what_it_takes(path: Path, value: str) -> None:
    _write(path, f'[hooks]\ntime_limit = {value}\n')
    with pytest.raises(ConfigError) as err:
        config.load(USER)
    # Before: "a duration from 1s to 0s", and no infinity, which it takes.
    assert "hooks.time_limit: expected a duration of at least 1s, such as" in _one_line(err)


@pytest.mark.parametrize(("value", "seconds"), [('"30s"', 30.0), ("90", 90.0),
                                                ('"infinity"', float("inf"))])
def test_a_hook_time_limit_is_read_as_a_duration(path: Path, value: str,
                                                 seconds: float) -> None:
    _write(path, f'[hooks]\ntime_limit = {value}\n')
    assert config.load(USER).hook_time_limit() == seconds
