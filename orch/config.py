"""The configuration file: defaults for `orch spawn`, agent providers and named profiles.

One TOML file per scope: the caller's `$XDG_CONFIG_HOME/orch/config.toml` for the user
manager, `/etc/orch/config.toml` for the system manager; `ORCH_CONFIG` names another file
for both. A missing file is an empty configuration.

Every setting is described once, in SPAWN_SETTINGS and PROVIDER_SETTINGS; reading the
file, `orch config set`, the error messages and the help all derive from those tables.
A file that breaks a rule stops the command with one line naming the file, the dotted key
and what was expected; it is never rewritten. Changes are written as state.py writes the
state file: a temp file in the same directory, fsynced, renamed over the old one.
"""

from __future__ import annotations

import difflib
import fcntl
import json
import math
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Any

import tomli_w

from orch import files, timespan
from orch.errors import OrchError, PermissionDenied, UsageError
from orch.results import ResultFormat
from orch.scope import Scope

CONFIG_FILE = "config.toml"
SYSTEM_CONFIG = Path("/etc/orch") / CONFIG_FILE
NAME = re.compile(r"[A-Za-z0-9_-]+")
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
TABLES = ("spawn", "providers", "profiles", "hosts")
# Longest value quoted back in an error: a system prompt can be pages long.
_SHOW_MAX = 60


class ConfigError(OrchError):
    """The configuration file cannot be used as it is; it is left untouched."""

    exit_code = 2


class Kind(StrEnum):
    """What a setting's value looks like in the file."""

    STRING = "string"
    BOOL = "bool"
    INT = "int"
    DURATION = "duration"
    SIZE = "size"
    PERCENT = "percent"
    CHOICE = "choice"
    STRING_LIST = "string-list"
    ARGV = "argv"  # a provider's command line: strings, or arrays of strings


@dataclass(frozen=True)
class Setting:
    """One key of a table, and the values it takes.

    `choices` are the values of a CHOICE, and for an INT the words it also accepts (such
    as "infinity"); `minimum` and `maximum` bound an INT; `pattern` is a regular expression
    a STRING, or every item of a STRING_LIST, must match in full.
    """

    key: str
    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None

    def expected(self) -> str:
        """What a valid value looks like, as the end of "expected ..."."""
        if self.kind is Kind.STRING:
            return f"a string matching {self.pattern}" if self.pattern else "a non-empty string"
        if self.kind is Kind.BOOL:
            return "true or false"
        if self.kind is Kind.INT:
            text = "an integer"
            if self.minimum is not None and self.maximum is not None:
                text += f" from {self.minimum} to {self.maximum}"
            elif self.minimum is not None:
                text += f" of at least {self.minimum}"
            elif self.maximum is not None:
                text += f" of at most {self.maximum}"
            return text + "".join(f' or "{word}"' for word in self.choices)
        if self.kind is Kind.DURATION:
            return timespan.EXPECTED
        if self.kind is Kind.SIZE:
            return "a size such as 300M, 2G or infinity"
        if self.kind is Kind.PERCENT:
            return 'a percentage such as "50%" or "200%"'
        if self.kind is Kind.CHOICE:
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        if self.kind is Kind.STRING_LIST:
            if self.pattern:
                return f"a list of strings matching {self.pattern}"
            return "a list of non-empty strings"
        return "a list whose items are strings or lists of strings"


def _table(*settings: Setting) -> dict[str, Setting]:
    return {s.key: s for s in settings}


SPAWN_SETTINGS: dict[str, Setting] = _table(
    Setting("provider", Kind.STRING, "Agent provider to run (a built-in one or [providers.NAME]).",
            pattern=NAME.pattern),
    Setting("model", Kind.STRING, "Model the agent is asked to use."),
    Setting("system_prompt", Kind.STRING, "System prompt handed to the agent."),
    Setting("auto_approve", Kind.BOOL, "Let the agent act without asking for approval."),
    Setting("max_turns", Kind.INT, "Stop the agent after this many turns.", minimum=1),
    Setting("add_dirs", Kind.STRING_LIST, "More directories the agent may work in."),
    Setting("timeout", Kind.DURATION, "Stop the session after this long (0: never)."),
    Setting("memory_max", Kind.SIZE, "Memory limit of the session (MemoryMax=)."),
    Setting("cpu_quota", Kind.PERCENT, "CPU time limit, 100% being one CPU (CPUQuota=)."),
    Setting("tasks_max", Kind.INT, "Most processes and threads in the session (TasksMax=).",
            choices=("infinity",), minimum=1),
    Setting("nice", Kind.INT, "Scheduling priority of the session (Nice=).",
            minimum=-20, maximum=19),
    Setting("restart", Kind.CHOICE, "When systemd restarts the agent (Restart=).",
            choices=("no", "on-failure", "always")),
    Setting("sandbox", Kind.BOOL, "Run the agent in a sandbox."),
    Setting("worktree", Kind.BOOL, "Run the agent in its own git worktree."),
    Setting("persistent", Kind.BOOL, "Keep the session across reboots."),
    Setting("env_files", Kind.STRING_LIST, "Files of KEY=VALUE lines for the environment."),
    Setting("secret_env", Kind.STRING_LIST,
            "Names of the caller's environment variables handed to the agent as secrets.",
            pattern=ENV_NAME),
    Setting("tags", Kind.STRING_LIST, "Tags given to the session."),
    Setting("cwd", Kind.STRING, "Working directory of the session."),
)

PROVIDER_SETTINGS: dict[str, Setting] = _table(
    Setting("binary", Kind.STRING, "Program that runs the agent."),
    Setting("argv", Kind.ARGV, "Arguments of a new run (an array item is a group of words)."),
    Setting("resume_argv", Kind.ARGV, "Arguments to resume an earlier run."),
    Setting("results", Kind.CHOICE, "Format of the agent's output.", choices=tuple(ResultFormat)),
)


HOST_SETTINGS: dict[str, Setting] = _table(
    Setting("address", Kind.STRING, "Where SSH reaches the host: [USER@]HOST[:PORT]."),
    Setting("labels", Kind.STRING_LIST, "Labels that `orch spawn --label` chooses hosts by.",
            pattern=NAME.pattern),
    Setting("orch", Kind.STRING, "The command that runs orch on the host (default: orch)."),
)


def describe() -> list[tuple[str, str]]:
    """Every setting as (dotted key, help and expected value), in table order, for help."""
    rows = [(f"spawn.{s.key}", f"{s.help} Expected: {s.expected()}.")
            for s in SPAWN_SETTINGS.values()]
    rows.append(("profiles.NAME.KEY", "A [spawn] key, used with --profile NAME."))
    rows += [(f"providers.NAME.{s.key}", f"{s.help} Expected: {s.expected()}.")
             for s in PROVIDER_SETTINGS.values()]
    rows += [(f"hosts.NAME.{s.key}", f"{s.help} Expected: {s.expected()}.")
             for s in HOST_SETTINGS.values()]
    return rows


# --- conversions the rest of orch calls -------------------------------------------------

_NUMBER = r"\d+(?:\.\d+)?"
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(rf"({_NUMBER})([KMGT]?)")
# systemd keeps sizes and times in a uint64, the top value meaning infinity.
_UINT64_MAX = 2**64 - 1
# TOML integers are 64-bit signed.
_INT64 = range(-2**63, 2**63)


def parse_duration_seconds(value: str | int) -> float:
    """Seconds in an int or a systemd time span (orch.timespan: '90', '45s', '30min',
    '2h 30min', '1.5d', '30M' a month); math.inf for 'infinity'. UsageError, one line
    listing the syntax, for anything systemd would refuse."""
    return timespan.parse_seconds(value)


def parse_size_bytes(value: str | int) -> int | None:
    """Bytes from an int or '512K', '300M', '1.5G', '1T' (powers of 1024, as systemd
    counts); None for 'infinity'. UsageError for anything else, zero included."""
    expected = "expected a size such as 300M, 2G or infinity"
    if value == "infinity":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"{_show(value)}: {expected}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(value)
        # A fraction of a byte means nothing: a decimal point needs a unit.
        if match is None or ("." in match[1] and not match[2]):
            raise UsageError(f"{_show(value)}: {expected}")
        size = math.floor(Fraction(match[1]) * _SIZE_UNITS[match[2]])
    if not 0 < size < _UINT64_MAX:
        raise UsageError(f"{_show(value)}: {expected} (more than 0 and less than 16E)")
    return size


def parse_percent(value: str) -> int:
    """50 from '50%': a whole number above 0 followed by '%'. UsageError otherwise."""
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+)%", value)
        if match is not None and int(match[1]) > 0:
            return int(match[1])
    raise UsageError(f'{_show(value)}: expected a percentage such as "50%" or "200%"')


# --- checking values --------------------------------------------------------------------

def _show(value: object) -> str:
    """VALUE as it would appear in TOML, on one line and cut short if long."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        # Cut inside the quotes, so the value still reads as a string.
        cut = value if len(value) <= _SHOW_MAX else value[:_SHOW_MAX - 5] + "..."
        return json.dumps(cut, ensure_ascii=False)
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    return text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX - 3] + "..."


def _key_text(key: str) -> str:
    """KEY bare if it is a plain dotted key, else quoted: a TOML key can hold a newline."""
    return key if re.fullmatch(r"[A-Za-z0-9_.-]+", key) else _show(key)


def _valid(setting: Setting, value: object) -> bool:
    """Whether VALUE, as read from TOML, is one SETTING takes."""
    kind = setting.kind
    if kind is Kind.STRING:
        return isinstance(value, str) and (
            re.fullmatch(setting.pattern, value) is not None if setting.pattern else value != "")
    if kind is Kind.BOOL:
        return isinstance(value, bool)
    if kind is Kind.INT:
        if isinstance(value, str):
            return value in setting.choices
        return (isinstance(value, int) and not isinstance(value, bool) and value in _INT64
                and (setting.minimum is None or value >= setting.minimum)
                and (setting.maximum is None or value <= setting.maximum))
    if kind is Kind.CHOICE:
        return isinstance(value, str) and value in setting.choices
    if kind is Kind.STRING_LIST:
        return isinstance(value, list) and all(
            isinstance(item, str) and (re.fullmatch(setting.pattern, item) is not None
                                       if setting.pattern else item != "")
            for item in value)
    if kind is Kind.ARGV:
        return isinstance(value, list) and all(
            isinstance(item, str)
            or (isinstance(item, list) and all(isinstance(word, str) for word in item))
            for item in value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    try:
        if kind is Kind.DURATION:
            parse_duration_seconds(value)
        elif kind is Kind.SIZE:
            parse_size_bytes(value)
        elif isinstance(value, str):
            parse_percent(value)
        else:
            return False  # a percentage is a string: "50%", never 50
    except UsageError:
        return False
    return True


def _unknown_key(key: str, known: Mapping[str, object]) -> str:
    """The end of an "unknown key" message: a close match if there is one, else the list."""
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f"did you mean {close[0]}?"
    return "expected one of " + ", ".join(sorted(known))


def _check_table(where: str, table: object, settings: Mapping[str, Setting]) -> dict[str, object]:
    """TABLE checked against SETTINGS; ValueError with "dotted.key: reason" otherwise."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table, got {_show(table)}")
    for key, value in table.items():
        setting = settings.get(key)
        if setting is None:
            raise ValueError(f"{where}.{_key_text(key)}: unknown setting; "
                             f"{_unknown_key(key, settings)}")
        if not _valid(setting, value):
            raise ValueError(f"{where}.{key}: expected {setting.expected()}, got {_show(value)}")
    return dict(table)


def _check_named(where: str, tables: object,
                 settings: Mapping[str, Setting]) -> dict[str, dict[str, object]]:
    """[where.NAME] tables, each checked against SETTINGS."""
    if not isinstance(tables, dict):
        raise ValueError(f"{where}: expected a table, got {_show(tables)}")
    checked: dict[str, dict[str, object]] = {}
    for name, table in tables.items():
        if not NAME.fullmatch(name):
            raise ValueError(f"{where}.{_key_text(name)}: expected a name of letters, digits, "
                             "_ and -")
        checked[name] = _check_table(f"{where}.{name}", table, settings)
    return checked


def _check_hosts(tables: object) -> dict[str, dict[str, object]]:
    """[hosts.NAME] tables: each needs an address that parses."""
    from orch.hosts import AUTO, LOCAL, parse_address

    checked = _check_named("hosts", tables, HOST_SETTINGS)
    for name, table in checked.items():
        if name in (AUTO, LOCAL):
            raise ValueError(f"hosts.{name}: {name!r} is a word orch keeps for itself")
        if "address" not in table:
            raise ValueError(f"hosts.{name}: no address; expected address = \"[USER@]HOST[:PORT]\"")
        try:
            parse_address(str(table["address"]))
        except UsageError as err:
            raise ValueError(f"hosts.{name}.address: {err.message}") from None
    return checked


@dataclass(frozen=True)
class Config:
    """One configuration file's validated contents (values as written in the TOML)."""

    path: Path
    spawn: dict[str, object]
    providers: dict[str, dict[str, object]]
    profiles: dict[str, dict[str, object]]
    hosts: dict[str, dict[str, object]] = field(default_factory=dict)

    def spawn_defaults(self, profile: str | None) -> dict[str, object]:
        """The [spawn] settings overlaid by [profiles.PROFILE]'s; UsageError if PROFILE is
        not defined."""
        merged = dict(self.spawn)
        if profile is not None:
            if profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none"
                raise UsageError(f"--profile {profile}: no such profile in {self.path} "
                                 f"(known profiles: {known})")
            merged.update(self.profiles[profile])
        # Copies: a caller extending a list must not change this Config.
        return {k: list(v) if isinstance(v, list) else v for k, v in merged.items()}


def _validate(doc: dict[str, Any], path: Path) -> Config:
    """DOC, as tomllib read it from PATH, checked; ConfigError naming PATH otherwise."""
    try:
        for key in doc:
            if key not in TABLES:
                hint = _unknown_key(key, dict.fromkeys(TABLES))
                raise ValueError(f"{_key_text(key)}: unknown table; {hint}")
        return Config(path=path,
                      spawn=_check_table("spawn", doc.get("spawn", {}), SPAWN_SETTINGS),
                      providers=_check_named("providers", doc.get("providers", {}),
                                             PROVIDER_SETTINGS),
                      profiles=_check_named("profiles", doc.get("profiles", {}), SPAWN_SETTINGS),
                      hosts=_check_hosts(doc.get("hosts", {})))
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from None


# --- the file ---------------------------------------------------------------------------

def config_path(scope: Scope) -> Path:
    """The configuration file for SCOPE (ORCH_CONFIG overrides both scopes)."""
    return scope.config_path()


def _os_error(err: OSError, path: Path) -> OrchError:
    kind = PermissionDenied if files.is_permission(err) else ConfigError
    return kind(files.describe(err, path))


def _read(path: Path) -> tuple[bytes | None, dict[str, Any]]:
    """PATH's bytes (None if missing) and its TOML; ConfigError if it is not TOML."""
    # Symbolic links are followed: a configuration file is often one (dotfile managers).
    # O_NONBLOCK: opening a FIFO put in the file's place must not hang; files ignore it.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, {}
    except OSError as err:
        raise _os_error(err, path) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a directory, not a configuration file")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read()
    except OSError as err:
        raise _os_error(err, path) from None
    finally:
        os.close(fd)
    try:
        return raw, tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not valid UTF-8 (at byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def load(scope: Scope) -> Config:
    """SCOPE's configuration, checked (empty if the file does not exist)."""
    path = config_path(scope)
    return _validate(_read(path)[1], path)


def _target(path: Path) -> Path:
    """Where a write to PATH lands: through a symbolic link, not over it."""
    return Path(os.path.realpath(path))


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on DIRECTORY: two `orch config set` must not lose an update.

    The directory itself carries the lock, so no lock file is left beside the config.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise _os_error(err, directory) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(target: Path, path: Path, data: bytes) -> None:
    """DATA as TARGET's contents, atomically and durably; PATH names it in errors."""
    try:
        files.write_atomically(target, data, 0o600)
    except files.WriteFailed as failed:
        raise _os_error(failed.error, path if failed.path == target else failed.path) \
            from None


# --- dotted keys and the `orch config` commands -----------------------------------------

@dataclass(frozen=True)
class _Key:
    """A dotted key taken apart: its table, the NAME of a named table, the setting."""

    table: str
    name: str | None
    key: str

    def parts(self) -> list[str]:
        return [self.table, self.key] if self.name is None else [self.table, self.name, self.key]


def _settings_of(table: str) -> dict[str, Setting]:
    return {"providers": PROVIDER_SETTINGS, "hosts": HOST_SETTINGS}.get(table, SPAWN_SETTINGS)


def _split(dotted: str, unknown_ok: bool = False) -> tuple[_Key, Setting | None]:
    """DOTTED as a key and its setting; UsageError "no such setting" unless it is one.

    With UNKNOWN_OK, an unknown last part is let through (setting None) so that `unset`
    can take away a key that makes the file invalid.
    """
    shape = "settings are spawn.KEY, profiles.NAME.KEY, providers.NAME.KEY and hosts.NAME.KEY"
    parts = dotted.split(".")
    if parts[0] == "spawn" and len(parts) == 2:
        found = _Key("spawn", None, parts[1])
    elif parts[0] in ("profiles", "providers", "hosts") and len(parts) == 3:
        found = _Key(parts[0], parts[1], parts[2])
        if not NAME.fullmatch(parts[1]):
            kind = parts[0].removesuffix("s")
            raise UsageError(f"no such setting: {_key_text(dotted)}; {kind} names are letters, "
                             "digits, _ and -")
    else:
        raise UsageError(f"no such setting: {_key_text(dotted)}; {shape}")
    settings = _settings_of(found.table)
    setting = settings.get(found.key)
    if setting is None and not (unknown_ok and NAME.fullmatch(found.key)):
        raise UsageError(f"no such setting: {_key_text(dotted)}; "
                         f"{_unknown_key(found.key, settings)}")
    return found, setting


def _lookup(doc: Mapping[str, Any], key: _Key) -> object:
    node: object = doc
    for part in key.parts():
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def get(scope: Scope, dotted: str) -> object:
    """The value of DOTTED as written in SCOPE's file; None if it is not set."""
    key, _ = _split(dotted)
    config = load(scope)
    if key.table == "spawn":
        return config.spawn.get(key.key)
    tables = {"providers": config.providers, "hosts": config.hosts}.get(key.table,
                                                                     config.profiles)
    return tables.get(key.name or "", {}).get(key.key)


_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def _toml_array(raw: str) -> object:
    """RAW read as a TOML array literal; ValueError if it is not one alone."""
    try:
        doc = tomllib.loads(f"v = {raw}\n")
    except tomllib.TOMLDecodeError:
        raise ValueError(raw) from None
    # "[1]\nx = 2" parses too: only the one value may come out.
    if list(doc) != ["v"] or not isinstance(doc["v"], list):
        raise ValueError(raw)
    return doc["v"]


def _from_cli(setting: Setting, raw: str) -> object:
    """RAW, a command-line string, as the TOML value SETTING stores; ValueError if it
    cannot be one (the value is checked afterwards)."""
    kind = setting.kind
    if kind is Kind.BOOL:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(raw)
    if kind is Kind.INT:
        if raw in setting.choices:
            return raw
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise ValueError(raw)
        return int(raw)
    if kind in (Kind.DURATION, Kind.SIZE):
        # Whole seconds or bytes go in as TOML integers, anything else as written.
        return int(raw) if re.fullmatch(r"\d+", raw) else raw
    if kind is Kind.STRING_LIST:
        if raw.lstrip().startswith("["):
            return _toml_array(raw)
        return [item.strip() for item in raw.split(",")] if raw.strip() else []
    if kind is Kind.ARGV:
        return _toml_array(raw)
    return raw


def _cli_expected(setting: Setting) -> str:
    if setting.kind is Kind.BOOL:
        return "true or false (or yes/no, 1/0)"
    if setting.kind is Kind.STRING_LIST:
        return (f"{setting.expected()}, comma-separated (a,b) or as a TOML array "
                "(['a', 'b'])")
    if setting.kind is Kind.ARGV:
        return f"{setting.expected()}, as a TOML array such as ['--print', ['--model', 'M']]"
    return setting.expected()


def set_value(scope: Scope, dotted: str, raw: str) -> None:
    """Set DOTTED to RAW (a command-line string converted as the setting's kind asks) in
    SCOPE's file, keeping every other key. Nothing is written if RAW is not a valid value
    or the file is not valid as it stands."""
    key, setting = _split(dotted)
    assert setting is not None  # _split lets an unknown key through only when asked to
    path = config_path(scope)
    try:
        value = _from_cli(setting, raw)
    except ValueError:
        value = raw
        ok = False
    else:
        ok = _valid(setting, value)
    if not ok:
        raise UsageError(f"{dotted}: expected {_cli_expected(setting)}, got {_show(value)} "
                         f"(nothing written to {path})")
    target = _target(path)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise _os_error(err, target.parent) from None
    with _locked(target.parent):
        before, doc = _read(path)
        _validate(doc, path)
        node = doc
        for part in key.parts()[:-1]:
            node = node.setdefault(part, {})
        if before is not None and node.get(key.key) == value:
            return
        node[key.key] = value
        _validate(doc, path)  # the whole file as it will be, before any byte is written
        _write(target, path, tomli_w.dumps(doc).encode("utf-8"))


def unset(scope: Scope, dotted: str) -> bool:
    """Take DOTTED out of SCOPE's file, and any table that leaves empty; False if it was
    not set. An unknown key in a known table may be taken out too, to mend a file."""
    key, _ = _split(dotted, unknown_ok=True)
    path = config_path(scope)
    target = _target(path)
    if not target.parent.is_dir():
        return False
    with _locked(target.parent):
        before, doc = _read(path)
        if before is None or _lookup(doc, key) is None:
            return False
        # _lookup found the value, so every table on the way down is a dict.
        tables: list[dict[str, Any]] = [doc]
        for part in key.parts()[:-1]:
            tables.append(tables[-1][part])
        del tables[-1][key.key]
        for parent, part in zip(reversed(tables[:-1]), reversed(key.parts()[:-1]), strict=True):
            if parent[part]:
                break
            del parent[part]
        _write(target, path, tomli_w.dumps(doc).encode("utf-8"))
        return True


def items(scope: Scope) -> list[tuple[str, object]]:
    """Every key set in SCOPE's file, dotted, with its value, sorted by key."""
    config = load(scope)
    found: list[tuple[str, object]] = [(f"spawn.{k}", v) for k, v in config.spawn.items()]
    for table, named in (("providers", config.providers), ("profiles", config.profiles),
                         ("hosts", config.hosts)):
        for name, values in named.items():
            found += [(f"{table}.{name}.{k}", v) for k, v in values.items()]
    return sorted(found, key=lambda kv: kv[0])


def flag_value(key: str, value: object) -> object:
    """A command-line flag's VALUE for spawn setting KEY, as [spawn] would hold it:
    strings converted and checked by the same table as the file; one line naming the
    flag otherwise."""
    setting = SPAWN_SETTINGS[key]
    converted: object = value
    if isinstance(value, str) and setting.kind not in (Kind.STRING, Kind.CHOICE):
        try:
            converted = _from_cli(setting, value)
        except ValueError:
            converted = None
    if converted is None or not _valid(setting, converted):
        raise UsageError(f"--{key.replace('_', '-')}: expected {_cli_expected(setting)}, "
                         f"got {_show(value)}")
    return converted
