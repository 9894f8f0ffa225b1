"""The configuration file: defaults for `orch spawn`, agent providers and named profiles.

One TOML file per scope: the caller's `$XDG_CONFIG_HOME/orch/config.toml` for the user
manager, `/etc/orch/config.toml` for the system manager; `ORCH_CONFIG` names another file
for both. A missing file is an empty configuration.

Every setting is described once: spawn's in orch.settings.SPAWN_SETTINGS (which the
command line shares), the providers' and hosts' here; reading the file, `orch config set`,
the error messages and the help all derive from those tables.
A file that breaks a rule stops the command with one line naming the file, the dotted key
and what was expected; it is never rewritten. Changes are written through orch.files, as the
state file is: a temp file in the same directory, fsynced, renamed over the old one.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from orch import files
from orch.errors import OrchError, PermissionDenied, UsageError
from orch.results import ResultFormat
from orch.scope import Scope
from orch.settings import NAME, SPAWN_SETTINGS, Kind, Setting, settings_table, show

if TYPE_CHECKING:
    from orch.queues import QueueLimits

CONFIG_FILE = "config.toml"
SYSTEM_CONFIG = Path("/etc/orch") / CONFIG_FILE
TABLES = ("spawn", "providers", "profiles", "hosts", "queues", "hooks")
# The tables of plain keys ([TABLE] KEY = ...).
PLAIN = ("spawn", "hooks")
# The tables of named tables ([NAME.X]), with the word an error calls one of them.
NAMED = ("profiles", "providers", "hosts", "queues")


class ConfigError(OrchError):
    """The configuration file cannot be used as it is; it is left untouched."""

    exit_code = 2


PROVIDER_SETTINGS: dict[str, Setting] = settings_table(
    Setting("binary", Kind.STRING, "Program that runs the agent."),
    Setting("argv", Kind.ARGV, "Arguments of a new run (an array item is a group of words)."),
    Setting("resume_argv", Kind.ARGV, "Arguments to resume an earlier run."),
    Setting("results", Kind.CHOICE, "Format of the agent's output.", choices=tuple(ResultFormat)),
)


HOST_SETTINGS: dict[str, Setting] = settings_table(
    Setting("address", Kind.STRING, "Where SSH reaches the host: [USER@]HOST[:PORT]."),
    Setting("labels", Kind.STRING_LIST, "Labels that `orch spawn --label` chooses hosts by.",
            pattern=NAME),
    Setting("orch", Kind.STRING, "The command that runs orch on the host (default: orch)."),
)


QUEUE_SETTINGS: dict[str, Setting] = settings_table(
    Setting("max_running", Kind.INT, "Most sessions of the queue running at once.",
            minimum=1),
    Setting("min_memory_available", Kind.SIZE,
            "Start none while less memory than this is free (the sessions' slice's "
            "MemoryAvailable=, no more than the kernel's MemAvailable): 2G."),
)


_HOOK = ("Run this command (a TOML array: the argv, no shell) as a unit of the session's "
         "manager when a session {}; ORCH_SESSION_ID, ORCH_NAME, ORCH_STATUS, ORCH_EVENT, "
         "ORCH_EXIT_CODE, ORCH_UNIT, ORCH_DETAIL and ORCH_RESULT_FILE tell which and how.")
DEFAULT_HOOK_LIMIT = "10min"  # a notifier that hangs (curl, no network) is ended
HOOK_SETTINGS: dict[str, Setting] = settings_table(
    Setting("on_start", Kind.STRING_LIST, _HOOK.format("starts (each invocation)")),
    Setting("on_end", Kind.STRING_LIST, _HOOK.format("ends, however it ended")),
    Setting("on_failed", Kind.STRING_LIST, _HOOK.format("ends failed")),
    Setting("on_idle", Kind.STRING_LIST, _HOOK.format("(a conversation) waits for a "
                                                      "message")),
    Setting("on_limited", Kind.STRING_LIST, _HOOK.format("waits for a usage limit's "
                                                         "reset")),
    Setting("time_limit", Kind.DURATION, "The longest each hook may run before its "
            f"manager ends it (default {DEFAULT_HOOK_LIMIT}).", minimum=1),
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
    rows += [(f"queues.NAME.{s.key}", f"{s.help} Expected: {s.expected()}.")
             for s in QUEUE_SETTINGS.values()]
    rows += [(f"hooks.{s.key}", f"{s.help} Expected: {s.expected()}.")
             for s in HOOK_SETTINGS.values()]
    return rows


# --- checking values --------------------------------------------------------------------

def _key_text(key: str) -> str:
    """KEY bare if it is a plain dotted key, else quoted: a TOML key can hold a newline."""
    return key if re.fullmatch(r"[A-Za-z0-9_.-]+", key) else show(key)


def _unknown_key(key: str, known: Mapping[str, object]) -> str:
    """The end of an "unknown key" message: a close match if there is one, else the list."""
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f"did you mean {close[0]}?"
    return "expected one of " + ", ".join(sorted(known))


def _check_table(where: str, table: object, settings: Mapping[str, Setting]) -> dict[str, object]:
    """TABLE checked against SETTINGS; ValueError with "dotted.key: reason" otherwise."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table, got {show(table)}")
    for key, value in table.items():
        setting = settings.get(key)
        if setting is None:
            raise ValueError(f"{where}.{_key_text(key)}: unknown setting; "
                             f"{_unknown_key(key, settings)}")
        if not setting.accepts(value):
            raise ValueError(f"{where}.{key}: expected {setting.expected()}, got {show(value)}")
    return dict(table)


def _check_named(where: str, tables: object,
                 settings: Mapping[str, Setting]) -> dict[str, dict[str, object]]:
    """[where.NAME] tables, each checked against SETTINGS."""
    if not isinstance(tables, dict):
        raise ValueError(f"{where}: expected a table, got {show(tables)}")
    checked: dict[str, dict[str, object]] = {}
    for name, table in tables.items():
        if not re.fullmatch(NAME, name):
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
    queues: dict[str, dict[str, object]] = field(default_factory=dict)
    hooks: dict[str, object] = field(default_factory=dict)

    def hook(self, key: str) -> list[str] | None:
        """The command of hook KEY (on_end...), if the file sets one."""
        value = self.hooks.get(key)
        return [str(word) for word in value] if isinstance(value, list) and value else None

    def hook_time_limit(self) -> float:
        """The seconds each hook may run: hooks.time_limit, or DEFAULT_HOOK_LIMIT."""
        from orch.settings import parse_duration_seconds

        value = self.hooks.get("time_limit", DEFAULT_HOOK_LIMIT)
        return parse_duration_seconds(value if isinstance(value, int | str)
                                      else DEFAULT_HOOK_LIMIT)

    def queue_limits(self, name: str) -> QueueLimits:
        """What [queues.NAME] allows; UsageError if the file defines no such queue."""
        from orch.queues import QueueLimits
        from orch.settings import parse_size_bytes

        table = self.queues.get(name)
        if table is None:
            known = ", ".join(sorted(self.queues)) or "none"
            raise UsageError(f"--queue {name}: no [queues.{name}] in {self.path} "
                             f"(known queues: {known})")
        running, memory = table.get("max_running"), table.get("min_memory_available")
        return QueueLimits(
            max_running=running if isinstance(running, int) else None,
            min_memory_available=parse_size_bytes(memory)
            if isinstance(memory, int | str) else None)

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
                      hosts=_check_hosts(doc.get("hosts", {})),
                      queues=_check_named("queues", doc.get("queues", {}), QUEUE_SETTINGS),
                      hooks=_check_table("hooks", doc.get("hooks", {}), HOOK_SETTINGS))
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
    return {"providers": PROVIDER_SETTINGS, "hosts": HOST_SETTINGS,
            "queues": QUEUE_SETTINGS, "hooks": HOOK_SETTINGS}.get(table, SPAWN_SETTINGS)


def _split(dotted: str, unknown_ok: bool = False) -> tuple[_Key, Setting | None]:
    """DOTTED as a key and its setting; UsageError "no such setting" unless it is one.

    With UNKNOWN_OK, an unknown last part is let through (setting None) so that `unset`
    can take away a key that makes the file invalid.
    """
    shape = ("settings are spawn.KEY, hooks.KEY, profiles.NAME.KEY, providers.NAME.KEY, "
             "hosts.NAME.KEY and queues.NAME.KEY")
    parts = dotted.split(".")
    if parts[0] in PLAIN and len(parts) == 2:
        found = _Key(parts[0], None, parts[1])
    elif parts[0] in NAMED and len(parts) == 3:
        found = _Key(parts[0], parts[1], parts[2])
        if not re.fullmatch(NAME, parts[1]):
            kind = parts[0].removesuffix("s")
            raise UsageError(f"no such setting: {_key_text(dotted)}; {kind} names are letters, "
                             "digits, _ and -")
    else:
        raise UsageError(f"no such setting: {_key_text(dotted)}; {shape}")
    settings = _settings_of(found.table)
    setting = settings.get(found.key)
    if setting is None and not (unknown_ok and re.fullmatch(NAME, found.key)):
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
    if key.table in PLAIN:
        return (config.spawn if key.table == "spawn" else config.hooks).get(key.key)
    tables = {"providers": config.providers, "hosts": config.hosts,
              "queues": config.queues}.get(key.table, config.profiles)
    return tables.get(key.name or "", {}).get(key.key)


def set_value(scope: Scope, dotted: str, raw: str) -> None:
    """Set DOTTED to RAW (a command-line string converted as the setting's kind asks) in
    SCOPE's file, keeping every other key. Nothing is written if RAW is not a valid value
    or the file is not valid as it stands."""
    key, setting = _split(dotted)
    assert setting is not None  # _split lets an unknown key through only when asked to
    path = config_path(scope)
    try:
        value = setting.from_text(raw)
    except ValueError:
        value = raw
        ok = False
    else:
        ok = setting.accepts(value)
    if not ok:
        raise UsageError(f"{dotted}: expected {setting.text_expected()}, got {show(value)} "
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
        if key.parts()[0] == "providers":  # its templates as a spawn will read them
            from orch.providers import check_table_value

            try:
                check_table_value(key.parts()[1], key.key, value, str(path))
            except UsageError as refused:
                raise UsageError(f"{refused.message} (nothing written)") from None
        _write(target, path, tomli_w.dumps(doc).encode("utf-8"))


def unset(scope: Scope, dotted: str) -> bool:
    """Take DOTTED out of SCOPE's file, and any table that leaves empty; False if it was
    not set. An unknown key in a known table may be taken out too, to mend a file; one
    that is not there is refused as no such setting (a typo must not read as done)."""
    key, _ = _split(dotted, unknown_ok=True)
    path = config_path(scope)
    target = _target(path)
    if not target.parent.is_dir():
        _split(dotted)
        return False
    with _locked(target.parent):
        before, doc = _read(path)
        if before is None or _lookup(doc, key) is None:
            _split(dotted)
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
    found += [(f"hooks.{k}", v) for k, v in config.hooks.items()]
    for table, named in (("providers", config.providers), ("profiles", config.profiles),
                         ("hosts", config.hosts), ("queues", config.queues)):
        for name, values in named.items():
            found += [(f"{table}.{name}.{k}", v) for k, v in values.items()]
    return sorted(found, key=lambda kv: kv[0])
