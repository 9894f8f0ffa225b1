"""What to run: a session's spec, checked, and the transient unit properties it becomes.

No D-Bus here. Where its directory and program are on this host: orch.locate. The
checks import re only for a value that needs a pattern (a tag, an --env name): a plain
spawn loads none.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
from enum import StrEnum
from pathlib import Path

from orch.dbus import Property
from orch.errors import UsageError
from orch.frozen import dataclass, field, shape
from orch.scope import PATH_VARIABLES, Scope, paths_passed_on
from orch.timespan import usec
from orch.units import syslog_identifier

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every command some ms
    from collections.abc import Sequence
    from typing import Any

RESERVED_ENV = ("ORCH_SESSION_ID", "ORCH_UNIT", "ORCH_SCOPE")  # --env may not set these
# Every variable orch itself puts in a unit's environment (properties()): what recover
# does not take for the user's own when it adopts a unit.
ORCH_SET_ENV = (*RESERVED_ENV, *PATH_VARIABLES, "PATH")
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"  # a variable systemd passes on
MAX_NAME = 128
MAX_TAG = 64
# A tag, as a flag, the config file and the library give one (a comma would split it).
TAG = rf"[^\x00-\x1f\x7f,]{{1,{MAX_TAG}}}"
TAG_SHAPE = f"1 to {MAX_TAG} characters, with no commas or control characters"
# Linux's MAX_ARG_STRLEN (32 pages) less the NUL: the longest single argument or
# environment entry execve passes. Longer, the program could never start.
MAX_ARG_BYTES = 32 * 4096 - 1
TEXT_FILE_MAX = 4 << 20  # a message, a result or an env file read from a file
# C0 controls and DEL: checked for, and replaced, on every spawn, where re is not loaded.
_CONTROL = frozenset(map(chr, (*range(0x20), 0x7f)))
_CONTROL_TO_SPACE = dict.fromkeys(map(ord, _CONTROL), " ")


# A bounded start limit for --restart: at most this many starts in the interval, then
# the unit fails for good rather than looping.
RESTART_DELAY_USEC = 1_000_000
# The first retry's delay after a transient API failure (doubled at each next one), and
# the wait after a usage limit whose reset the agent does not tell.
DEFAULT_RETRY_DELAY_S = 30.0
DEFAULT_LIMIT_WAIT_S = 3600.0
# The longest a session waits to run again, its retries' doubling included: a wait
# beyond any plan, and a clock far from the year 9999.
MAX_WAIT_S = 30 * 86400.0
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_USEC = 600_000_000


class Restart(StrEnum):
    """When systemd starts a session's program again after it exits: the record's
    vocabulary, and the values of the setting --restart (orch.settings)."""

    NO = "no"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


def _named(key: str) -> str:
    """The unit property spawn setting KEY becomes, as its definition names it (for the
    settings whose D-Bus property is named as the unit file's, "MemoryMax=")."""
    from orch.settings import SPAWN_SETTINGS  # the definitions: a listing needs none

    named = SPAWN_SETTINGS[key].unit_property
    assert named is not None, key
    return named.removesuffix("=")


@dataclass(frozen=True)
class SpawnOptions:
    """How systemd runs a session: limits, restart policy, sandbox. Kept in the record,
    so a restart or resume runs the session as it was first run. Each field is the spawn
    setting of its name (orch.settings; timeout_sec is timeout's), checked and in units."""

    timeout_sec: float | None = None
    memory_max: int | None = None  # bytes
    cpu_quota: int | None = None  # percent of one CPU
    tasks_max: int | None = None
    nice: int | None = None
    restart: Restart = Restart.NO
    sandbox: bool = False
    add_dirs: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()  # more paths the sandbox leaves writable (agent state)
    tty: bool = False  # on a pseudo-terminal held in the unit (orch.ttyhold; orch attach)
    # What orch does when the API fails the agent (orch.usecases.unattended), no unit's.
    retries: int = 0
    retry_delay_sec: float | None = None  # None: DEFAULT_RETRY_DELAY_S
    limit_wait_sec: float | None = None  # None: DEFAULT_LIMIT_WAIT_S

    def to_json(self) -> dict[str, Any]:
        """As JSON data: only what differs from the defaults."""
        data: dict[str, Any] = {}
        for name in shape(type(self)).names:  # not asdict(): its deep copies cost more
            value = getattr(self, name)
            if value != getattr(SpawnOptions, name, None) and value not in ((), None):
                data[name] = list(value) if isinstance(value, tuple) else str(value) \
                    if isinstance(value, Restart) else value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpawnOptions:
        """From to_json's data; ValueError on a field this orch does not know."""
        known = set(shape(cls).names)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown spawn option {sorted(unknown)[0]!r}")
        values = dict(data)
        if "restart" in values:
            values["restart"] = Restart(values["restart"])
        for name in ("add_dirs", "writable"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def properties(self, scope: Scope, cwd: str, also: Sequence[str] = ()) -> list[Property]:
        """The unit properties these options become; ALSO: more paths a sandbox leaves
        writable (the session's, not the agent's)."""
        props: list[Property] = []
        if self.timeout_sec:
            # RuntimeMaxSec=: the manager stops the unit when it runs longer (Result=timeout).
            # D-Bus carries times in microseconds, hence the other name.
            props.append(("RuntimeMaxUSec", "t", usec(self.timeout_sec)))
        if self.memory_max is not None:
            props.append((_named("memory_max"), "t", self.memory_max))
        if self.cpu_quota is not None:
            # CPUQuota=, which D-Bus carries as microseconds of CPU time per second.
            props.append(("CPUQuotaPerSecUSec", "t", self.cpu_quota * 10_000))
        if self.tasks_max is not None:
            props.append((_named("tasks_max"), "t", self.tasks_max))
        if self.nice is not None:
            props.append((_named("nice"), "i", self.nice))
        if self.tty:
            # As a terminal's hang-up would: a shell ignores the stop's SIGTERM, not this.
            props.append(("SendSIGHUP", "b", True))
        if self.restart is not Restart.NO:
            props += [(_named("restart"), "s", str(self.restart)),
                      ("RestartUSec", "t", RESTART_DELAY_USEC),
                      ("StartLimitBurst", "u", START_LIMIT_BURST),
                      ("StartLimitIntervalUSec", "t", START_LIMIT_INTERVAL_USEC)]
        if self.sandbox:
            writable = [cwd, *self.add_dirs, *self.writable, *also]
            # A private /tmp and /var/tmp would hide a working directory kept there: then
            # the shared ones stay writable (else the agent's own scratch files fail).
            shared_tmp = any(_under_tmp(path) for path in writable)
            props += [("ProtectSystem", "s", "strict"), ("ProtectHome", "s", "read-only"),
                      ("ReadWritePaths", "as", [*writable, *(_TMP if shared_tmp else ())]),
                      ("NoNewPrivileges", "b", True),
                      # The exit hook must still write the record outside the sandbox.
                      ("PermissionsStartOnly", "b", True)]
            if not shared_tmp:
                props.append(("PrivateTmp", "b", True))
            if scope is Scope.USER:
                # A user manager can set up these namespaces only inside a user namespace.
                props.append(("PrivateUsers", "b", True))
        return props


_TMP = ("/tmp", "/var/tmp")


def _under_tmp(path: str) -> bool:
    return any(path == top or path.startswith(top + "/") for top in _TMP)


@dataclass(frozen=True)
class SessionSpec:
    """Everything a caller chooses about a session."""

    argv: list[str]
    name: str | None = None
    description: str = ""
    tags: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def label(self) -> str:
        """The readable part of the unit name: the name, else the program's base name."""
        return self.name or os.path.basename(self.argv[0]) or "session"


def _fits_execve(text: str, what: str) -> None:
    """Refuse an argument or environment entry longer than execve passes (a long prompt
    belongs in a file the agent reads)."""
    size = len(text.encode("utf-8"))
    if size > MAX_ARG_BYTES:
        raise UsageError(f"{what} is {size} bytes; Linux passes at most {MAX_ARG_BYTES} "
                         "in one argument or environment entry")


def _no_nul(text: str, what: str) -> None:
    """Refuse what D-Bus cannot carry: a NUL byte, or bytes that are not UTF-8 (Python
    hands those over as lone surrogates)."""
    if "\x00" in text:
        raise UsageError(f"{what} contains a NUL byte, which systemd cannot carry")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{what} is not valid UTF-8, which systemd cannot carry") from None


def check_tag(tag: str) -> None:
    """Refuse, with one line, TAG if it is none (TAG's pattern): a spawn's, or one a
    listing filters by."""
    import re

    if not re.fullmatch(TAG, tag):
        raise UsageError(f"--tag {tag!r}: expected a string of {TAG_SHAPE}")


def is_env_name(name: str) -> bool:
    """Whether NAME is an environment variable name (ENV_NAME)."""
    import re

    return re.fullmatch(ENV_NAME, name) is not None


def _has_control(text: str) -> bool:
    return not _CONTROL.isdisjoint(text)


def validate(spec: SessionSpec) -> None:
    """Refuse, with one line, what systemd or the state file could not carry verbatim."""
    if not spec.argv or not spec.argv[0]:
        raise UsageError("no command given: orch spawn [OPTIONS] -- CMD [ARG...]")
    for index, arg in enumerate(spec.argv):
        _no_nul(arg, f"argument {index}")
        _fits_execve(arg, f"argument {index}")
    if spec.name is not None:
        _no_nul(spec.name, "--name")
    for tag in spec.tags:
        _no_nul(tag, "--tag")
    if spec.cwd is not None:
        _no_nul(spec.cwd, "--cwd")
    if spec.name is not None and (
            not spec.name.strip() or len(spec.name) > MAX_NAME or _has_control(spec.name)):
        raise UsageError(f"--name must be 1 to {MAX_NAME} characters, not all blank, "
                         "with no control characters")
    if spec.name == "self":  # what a session calls itself: the name could never be named
        raise UsageError("--name self: self names the calling session; choose another")
    for tag in spec.tags:
        check_tag(tag)
    if _has_control(spec.description):  # a line feed would forge show's next line
        raise UsageError("--description: one line, with no control characters")
    for key, value in spec.env.items():
        _no_nul(key, f"--env {key!r}")
        if not is_env_name(key):
            raise UsageError(f"--env {key!r}: not a valid environment variable name")
        if key in RESERVED_ENV:
            raise UsageError(f"--env {key}: orch sets this variable itself")
        _no_nul(value, f"--env {key}")
        _fits_execve(f"{key}={value}", f"--env {key}")


def read_text_arg(path: str, option: str, newline: str | None = None, *,
                  regular: bool = False) -> str:
    """The UTF-8 text of a file the caller named with OPTION; one line if it cannot be.
    NEWLINE as open() takes it: "" keeps a lone \\r as it is. REGULAR: refuse what is
    not a regular file (a FIFO would wait for a writer); anything else is read up to
    TEXT_FILE_MAX, so that /dev/zero cannot fill the memory."""
    try:
        # O_NONBLOCK: opening a FIFO does not wait for a writer before it can be refused.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_NONBLOCK if regular else 0))
        with open(fd, "rb") as f:
            if regular and not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UsageError(f"{option} {path}: not a regular file")
            data = f.read(TEXT_FILE_MAX + 1)
    except OSError as err:
        raise UsageError(f"{option} {path}: {err.strerror}") from None
    if len(data) > TEXT_FILE_MAX:
        raise UsageError(f"{option} {path}: larger than {TEXT_FILE_MAX >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path}: not UTF-8 text") from None
    if newline is None:  # as open()'s universal newlines
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def parse_env(assignments: list[str]) -> dict[str, str]:
    """K=V strings into a dict; one line naming the first that is malformed."""
    env: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def after_dir(scope: Scope) -> Path:
    """Where dependency hooks drop the marker that starts a waiting dependent."""
    return scope.runtime_dir() / "orch" / "after"


def after_marker(scope: Scope, session_id: str) -> Path:
    """The marker that starts the waiting dependent SESSION_ID of SCOPE."""
    return after_dir(scope) / f"{session_id}.go"


def after_unit(unit: str) -> str:
    """The path unit that starts UNIT once its dependencies have succeeded: named like
    it, as systemd-run does, since a path unit starts its namesake by default (systemd
    252 cannot set Unit= on a transient path unit)."""
    return unit.removesuffix(".service") + ".path"


def after_properties(session_id: str, marker: Path) -> list[Property]:
    """A path unit that starts its namesake service when MARKER is written (inotify)."""
    return [("Description", "s", f"orch session {session_id}: waiting for its dependencies"),
            ("Paths", "a(ss)", [("PathChanged", str(marker))])]


def wake_unit(subject: str, stamp: str) -> str:
    """The timer that wakes SUBJECT later: a queue that waits for memory ("queue-NAME"),
    or a session an API failure holds (its id). Its service is named like it. STAMP
    makes the name new each time, as the last one may still be loaded while its service
    arms the next ("*": a pattern for them all). Not a session's unit name
    (orch.units.is_orch_unit): nothing adopts it."""
    return f"orch-wake-{subject}-{stamp}.timer"


def wake_properties(what: str, delay_s: float, hook_args: list[str], scope: Scope,
                    jitter_s: float = 0.0) -> tuple[list[Property], list[Property]]:
    """A timer firing once, DELAY_S from now (and up to JITTER_S later), gone once
    elapsed; and its one-shot service, which runs the exit hook with HOOK_ARGS
    (orch.exithook's --admit or --wake). WHAT says what it is for."""
    argv = [sys.executable, "-I", _exit_hook_path(), *hook_args]
    env = [f"ORCH_SCOPE={scope}", *(f"{k}={v}" for k, v in paths_passed_on().items())]
    timer: list[Property] = [
        ("Description", "s", f"orch: {what}"),
        ("TimersMonotonic", "a(st)", [("OnActiveSec", max(1, usec(delay_s)))]),
        ("RandomizedDelayUSec", "t", usec(jitter_s)),
        # Not the default minute's slack: a retry 1s later is meant 1s later.
        ("AccuracyUSec", "t", 1_000_000),
        ("RemainAfterElapse", "b", False)]
    service: list[Property] = [
        ("Description", "s", f"orch: {what}"),
        ("Type", "s", "oneshot"),
        ("ExecStart", "a(sasb)", [(argv[0], literal_argv(argv), False)]),
        ("Environment", "as", env),
        ("CollectMode", "s", "inactive-or-failed")]
    return timer, service


def exit_hook_argv(state_dir: Path, markers: Path | None = None) -> list[str]:
    """The ExecStopPost= command recording the session's end (see orch.exithook).

    Plain words only: systemd 252 re-reads a transient unit's command after a
    daemon-reload from a file it writes lossily (';' and '$' come back altered). -I keeps
    the agent's PYTHONPATH and user site out; the hook finds its package from its path.
    """
    return [sys.executable, "-I", _exit_hook_path(), str(state_dir),
            *([str(markers)] if markers else [])]


def start_guard(cwd: str) -> Property:
    """The ExecStartPre= of a session systemd starts itself (--after, Restart=): its
    start fails, recorded by its exit hook, rather than its program run elsewhere, if
    its working directory is gone (WorkingDirectory= does not fail: see properties)."""
    argv = ["/usr/bin/test", "-d", cwd]
    return ("ExecStartPre", "a(sasb)", [(argv[0], literal_argv(argv), False)])


def start_hook(state_dir: Path) -> Property:
    """The ExecStartPost= of a session systemd starts itself (--after: its path unit;
    Restart=), which no spawn waits for: its start recorded and told as it starts
    (orch.exithook's --started). A failure of it fails nothing ('-')."""
    argv = [sys.executable, "-I", _exit_hook_path(), "--started", str(state_dir)]
    return ("ExecStartPost", "a(sasb)", [(argv[0], literal_argv(argv), True)])


@functools.cache
def _exit_hook_path() -> str:
    return str(Path(__file__).resolve().parent / "exithook.py")


@functools.cache
def _tty_holder_path() -> str:
    return _package_file("ttyhold.py")


def _package_file(name: str) -> str:
    return str(Path(__file__).resolve().parent / name)


def tty_socket(scope: Scope, session_id: str) -> Path:
    """Where `orch attach` reaches the terminal of session SESSION_ID of SCOPE: in a
    directory of its own, which a sandbox leaves writable (and no other session's)."""
    return scope.runtime_dir() / "orch" / "tty" / session_id / "socket"


def literal_argv(argv: list[str]) -> list[str]:
    """ARGV as ExecStart= must carry it to reach the program verbatim: systemd expands
    $VAR and ${VAR} in command arguments when it executes them, and "$$" is its literal
    dollar. (ExecStartEx's no-env-expand flag would do, but systemd 252 writes it into
    the transient unit file under a key its own parser rejects, so the first
    daemon-reload strips the unit of its command.)"""
    return [arg.replace("$", "$$") for arg in argv]


def description(session_id: str, spec: SessionSpec) -> str:
    """The unit's Description=: carries the session id, so systemd alone can name it."""
    from orch import shellwords  # a spawn's alone

    summary = spec.description or shellwords.join(spec.argv)
    summary = summary.translate(_CONTROL_TO_SPACE)
    if len(summary) > 200:
        summary = summary[:199] + "…"
    return f"orch session {session_id}: {summary}"


# What `ps`, `show` and `top` read of a session's cgroup: the manager realises the
# controllers for it (where the host has them; IO only on the unified hierarchy).
ACCOUNTING: list[Property] = [(f"{what}Accounting", "b", True)
                              for what in ("Memory", "CPU", "Tasks", "IO")]


def properties(spec: SessionSpec, *, session_id: str, unit: str, scope: Scope,
               program: str, cwd: str, path: str, state_dir: Path,
               options: SpawnOptions | None = None,
               secrets_file: Path | None = None, conversation: bool = False,
               git_dir: str | None = None) -> list[Property]:
    """The transient service's properties: argv as a list (no shell), Type=exec so a
    program that cannot be executed fails the start job, the exit hook, the options,
    and the file the manager reads the secrets from when it starts the program. A
    CONVERSATION's agent runs behind its relay (orch.convhold), which tells its turns'
    ends. GIT_DIR: the repository of the session's worktree, which a sandbox leaves
    writable."""
    env = {"PATH": path, **spec.env,
           "ORCH_SESSION_ID": str(session_id), "ORCH_UNIT": unit, "ORCH_SCOPE": str(scope)}
    # What the exit hook reads: the same state, and the same configuration (a queue's
    # limits) as the spawn did.
    for variable, value in paths_passed_on().items():
        env.setdefault(variable, value)
    hook = exit_hook_argv(state_dir, after_dir(scope))
    start = (program, spec.argv)
    # A sandbox leaves writable, beside the session's own directories: the state, for an
    # `orch kill self` or a spawn inside it; a worktree's repository, to commit in it; a
    # terminal's socket directory (made before the start), for its holder to listen in.
    writable = [str(state_dir), *([git_dir] if git_dir else [])]
    if options is not None and options.tty:  # the holder runs the program on a terminal
        start = (sys.executable, [sys.executable, "-I", _tty_holder_path(),
                                  str(tty_socket(scope, session_id)), program, *spec.argv])
        writable.append(str(tty_socket(scope, session_id).parent))
    elif conversation:
        start = (sys.executable, [sys.executable, "-I", _package_file("convhold.py"),
                                  str(state_dir), program, *spec.argv])
    return [
        ("Description", "s", description(session_id, spec)),
        ("Type", "s", "exec"),
        ("ExecStart", "a(sasb)", [(start[0], literal_argv(start[1]), False)]),
        ("ExecStopPost", "a(sasb)", [(hook[0], literal_argv(hook), True)]),
        # Missing is no failure ('-'): the exit hook runs in it too, and must record the
        # end of a session whose directory was removed under it. The program never
        # starts without it: a spawn checks it, and start_guard a start no spawn makes.
        ("WorkingDirectory", "s", f"-{cwd}"),
        ("Environment", "as", [f"{k}={v}" for k, v in env.items()]),
        ("SyslogIdentifier", "s", syslog_identifier(unit)),
        # The exit hook keeps how it ended; the manager need not keep failed units.
        ("CollectMode", "s", "inactive-or-failed"),
        *ACCOUNTING,
        *(options or SpawnOptions()).properties(scope, cwd, writable),
        # Optional ('-'): every command of the unit reads it when it runs, the exit hook
        # too, long after orch removed it; only the program needs what it held.
        *([("EnvironmentFiles", "a(sb)", [(str(secrets_file), True)])] if secrets_file else []),
    ]
