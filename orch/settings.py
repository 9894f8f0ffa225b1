"""Every setting of `orch spawn`, defined once: its flag, its [spawn] key, the values it
takes, its help, and the unit property it becomes.

The command line (its options, --help, completion, the man page), the configuration file
(checking, `orch config set`, `orch config --help`) and the typed request a spawn runs
from (orch.request) all derive from SPAWN_SETTINGS; adding a setting is one entry here
and its field in orch.request.SpawnRequest. Options of spawn that are no setting (--name,
--env, --profile, --after, ...) are not here: they have no config key.

Light at import, for every spawn loads it: no typer, tomllib or pystemd, and no re (a
value is matched against its pattern only when one is given).
"""

from __future__ import annotations

import math
from enum import StrEnum

from orch import jsontext, timespan
from orch.errors import UsageError
from orch.frozen import dataclass
from orch.spec import ENV_NAME, MAX_WAIT_S, TAG, TAG_SHAPE, Restart

# Not `from typing import ...`: typing alone costs every command some ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

NAME = r"[A-Za-z0-9_-]+"  # a provider, profile or host name
# Longest value quoted back in an error: a system prompt can be pages long.
_SHOW_MAX = 60
# TOML integers are 64-bit signed.
_INT64 = range(-2**63, 2**63)
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


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
    """One setting: its key in a table, the values it takes, and for a spawn setting the
    command line's option and the unit property it becomes.

    `choices` are the values of a CHOICE, and for an INT the words it also accepts (such
    as "infinity"); `minimum` and `maximum` bound an INT, and a DURATION in seconds (so
    it never is 0 or infinity); `pattern` is a regular expression
    a STRING, or every item of a STRING_LIST, must match in full. `flag` is spawn's option
    (None: the config file only), `metavar` what its help calls the value, and
    `unit_property` the systemd setting it becomes ("MemoryMax="), named in the help.
    `agent_only`: it means something to an agent alone, so a plain command refuses it
    as a flag (a [spawn] default for every session is left alone).
    """

    key: str
    kind: Kind
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    shape: str | None = None  # what `pattern` takes, in words, where its text would not do
    flag: str | None = None
    metavar: str | None = None
    unit_property: str | None = None
    agent_only: bool = False

    def expected(self) -> str:
        """What a valid value looks like, as the end of "expected ..."."""
        if self.kind is Kind.STRING:
            return self._one()
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
            if self.minimum is None and self.maximum is None:
                return timespan.EXPECTED
            if self.maximum is None:  # infinity too
                return (f"a duration of at least {_span(self.minimum or 0)}, "
                        + timespan.EXPECTED.removeprefix("a duration "))
            return (f"a duration from {_span(self.minimum or 0)} to "
                    f"{_span(self.maximum)}, {timespan.EXPECTED_FINITE}")
        if self.kind is Kind.SIZE:
            return "a size such as 300M, 2G or infinity"
        if self.kind is Kind.PERCENT:
            return PERCENT_EXPECTED
        if self.kind is Kind.CHOICE:
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        if self.kind is Kind.STRING_LIST:
            if self.pattern:
                return "a list of " + self._one().replace("a string", "strings", 1)
            return "a list of non-empty strings"
        return "a list whose items are strings or lists of strings"

    def text_expected(self) -> str:
        """expected(), for a value written on a command line (`orch config set`)."""
        if self.kind is Kind.BOOL:
            return "true or false (or yes/no, 1/0)"
        if self.kind is Kind.STRING_LIST:
            return (f"{self.expected()}, comma-separated (a,b) or as a TOML array "
                    "(['a', 'b'])")
        if self.kind is Kind.ARGV:
            return f"{self.expected()}, as a TOML array such as ['--print', ['--model', 'M']]"
        return self.expected()

    @property
    def option(self) -> str:
        """The option that sets it, as errors name it: its flag, else --KEY."""
        return self.flag or "--" + self.key.replace("_", "-")

    @property
    def flag_help(self) -> str:
        """The help of its flag: the help, saying when the flag may be given many times."""
        return f"{self.help} (repeatable)" if self.repeatable else self.help

    @property
    def repeatable(self) -> bool:
        """Whether the flag may be given many times, each time one item of the list."""
        return self.kind is Kind.STRING_LIST

    @property
    def cli_type(self) -> Literal["flag", "str"]:
        """How the command line reads a value: a flag takes none; every other value is a
        string that from_flag checks, as `config set` does (an int parser of the command
        line's own took "1_0", " 5" and "5.0", which the file refuses, and said so in
        other words)."""
        return "flag" if self.kind is Kind.BOOL else "str"

    def accepts(self, value: object) -> bool:
        """Whether VALUE, as TOML holds it, is one this setting takes."""
        kind = self.kind
        if kind is Kind.STRING:
            return isinstance(value, str) and self._matches(value)
        if kind is Kind.BOOL:
            return isinstance(value, bool)
        if kind is Kind.INT:
            if isinstance(value, str):
                return value in self.choices
            return (isinstance(value, int) and not isinstance(value, bool) and value in _INT64
                    and (self.minimum is None or value >= self.minimum)
                    and (self.maximum is None or value <= self.maximum))
        if kind is Kind.CHOICE:
            return isinstance(value, str) and value in self.choices
        if kind is Kind.STRING_LIST:
            return isinstance(value, list) and all(
                isinstance(item, str) and self._matches(item) for item in value)
        if kind is Kind.ARGV:
            return isinstance(value, list) and all(
                isinstance(item, str)
                or (isinstance(item, list) and all(isinstance(word, str) for word in item))
                for item in value)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return False
        try:
            if kind is Kind.DURATION:
                seconds = parse_duration_seconds(value)
                return (self.minimum is None or seconds >= self.minimum) \
                    and (self.maximum is None or seconds <= self.maximum)
            elif kind is Kind.SIZE:
                parse_size_bytes(value)
            elif isinstance(value, str):
                parse_percent(value)
            else:
                return False  # a percentage is a string: "50%", never 50
        except UsageError:
            return False
        return True

    def _one(self) -> str:
        """What one string of it must be, as the end of "expected ..."."""
        if self.shape:
            return f"a string of {self.shape}"
        return f"a string matching {self.pattern}" if self.pattern else "a non-empty string"

    def _matches(self, text: str) -> bool:
        """TEXT is a string this setting (or an item of its list) takes."""
        if not self.pattern:
            return text != ""
        import re

        return re.fullmatch(self.pattern, text) is not None

    def from_text(self, raw: str) -> object:
        """RAW, a command-line string, as the TOML value this setting stores; ValueError
        if it cannot be one (accepts() checks the value afterwards)."""
        kind = self.kind
        if kind is Kind.BOOL:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError(raw)
        if kind is Kind.INT:
            if raw in self.choices:
                return raw
            import re

            if not re.fullmatch(r"[+-]?\d+", raw):
                raise ValueError(raw)
            return int(raw)
        if kind in (Kind.DURATION, Kind.SIZE):
            import re

            # Whole seconds or bytes go in as TOML integers, anything else as written.
            return int(raw) if re.fullmatch(r"\d+", raw) else raw
        if kind is Kind.STRING_LIST:
            if raw.lstrip().startswith("["):
                return _toml_array(raw)
            return [item.strip() for item in raw.split(",")] if raw.strip() else []
        if kind is Kind.ARGV:
            return _toml_array(raw)
        return raw

    def from_flag(self, value: object) -> object:
        """The flag's VALUE (as the command line or a library caller gives it) as [spawn]
        would hold it: strings converted and checked as the file's values are; a
        UsageError naming the flag otherwise."""
        if self.repeatable and isinstance(value, (list, tuple)):
            for item in value:
                if not (isinstance(item, str) and self._matches(item)):
                    single = self._one()
                    raise UsageError(f"{self.option}: expected {single}, got {show(item)}")
            return list(value)
        converted: object = value
        if isinstance(value, str) and self.kind not in (Kind.STRING, Kind.CHOICE):
            try:
                converted = self.from_text(value)
            except ValueError:
                converted = None
        if converted is None or not self.accepts(converted):
            raise UsageError(f"{self.option}: expected {self.text_expected()}, "
                             f"got {show(value)}")
        return converted


def _toml_array(raw: str) -> object:
    """RAW read as a TOML array literal; ValueError if it is not one alone."""
    import tomllib  # only `orch config set` writes arrays as text

    try:
        doc = tomllib.loads(f"v = {raw}\n")
    except tomllib.TOMLDecodeError:
        raise ValueError(raw) from None
    # "[1]\nx = 2" parses too: only the one value may come out.
    if list(doc) != ["v"] or not isinstance(doc["v"], list):
        raise ValueError(raw)
    return doc["v"]


def show(value: object) -> str:
    """VALUE as it would appear in TOML, on one line and cut short if long."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        # Cut inside the quotes, so the value still reads as a string.
        cut = value if len(value) <= _SHOW_MAX else value[:_SHOW_MAX - 5] + "..."
        return jsontext.dumps(cut, ascii=False)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(item) for item in value) + "]"
    elif isinstance(value, dict):
        text = "a table"
    else:
        text = str(value)
    return text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX - 3] + "..."


def settings_table(*settings: Setting) -> dict[str, Setting]:
    """SETTINGS keyed by key, in the order given."""
    return {s.key: s for s in settings}


# In the order `orch spawn --help` lists them; secret_env, for the file only, last.
SPAWN_SETTINGS: dict[str, Setting] = settings_table(
    Setting("tags", Kind.STRING_LIST, "A tag to find the session by, as orch ps --tag does.",
            pattern=TAG, shape=TAG_SHAPE, flag="--tag", metavar="TAG"),
    Setting("env_files", Kind.STRING_LIST,
            "A file of KEY=VALUE lines handed to the program as secrets (nothing records "
            "them).", flag="--env-file", metavar="FILE"),
    Setting("cwd", Kind.STRING, "Working directory of the session (default: here).",
            flag="--cwd", metavar="DIR"),
    Setting("provider", Kind.STRING,
            "Run an agent: claude, codex, gemini, copilot, ollama, one added as "
            "[providers.NAME], or exec (a command).",
            pattern=NAME, flag="--provider", metavar="NAME"),
    Setting("model", Kind.STRING, "The agent's model.", flag="--model", metavar="MODEL",
            agent_only=True),
    Setting("system_prompt", Kind.STRING, "The agent's system prompt.",
            flag="--system-prompt", metavar="TEXT", agent_only=True),
    Setting("auto_approve", Kind.BOOL, "Let the agent act without asking for approval.",
            flag="--auto-approve", agent_only=True),
    Setting("tty", Kind.BOOL, "Run the program on a terminal that `orch attach` connects "
            "to (an interactive program: claude without -p, a shell).", flag="--tty"),
    Setting("interactive", Kind.BOOL, "Keep the agent up between turns, taking each next "
            "message from `orch send` (claude).", flag="--interactive", agent_only=True),
    Setting("add_dirs", Kind.STRING_LIST,
            "Another directory the agent may work in (writable in a sandbox).",
            flag="--add-dir", metavar="DIR"),
    Setting("max_turns", Kind.INT, "Stop the agent after this many turns.", minimum=1,
            flag="--max-turns", metavar="N", agent_only=True),
    Setting("timeout", Kind.DURATION,
            "Stop the session after this long (RuntimeMaxSec=), with result timeout: 30m, "
            "2h 30min; a bare number is seconds; 0 or infinity: never.",
            flag="--timeout", metavar="DURATION", unit_property="RuntimeMaxSec="),
    Setting("memory_max", Kind.SIZE, "Memory limit (MemoryMax=): 300M, 2G.",
            flag="--memory-max", metavar="SIZE", unit_property="MemoryMax="),
    Setting("cpu_quota", Kind.PERCENT, "CPU time limit, 100% being one CPU (CPUQuota=): "
            "50%, 200%.", flag="--cpu-quota", metavar="PERCENT", unit_property="CPUQuota="),
    Setting("tasks_max", Kind.INT, "Most processes and threads of the session (TasksMax=).",
            choices=("infinity",), minimum=1, flag="--tasks-max", metavar="N",
            unit_property="TasksMax="),
    Setting("nice", Kind.INT, "Scheduling priority (Nice=): -20 to 19.",
            minimum=-20, maximum=19, flag="--nice", metavar="N", unit_property="Nice="),
    Setting("restart", Kind.CHOICE, "When systemd starts the program again (Restart=): no, "
            "on-failure or always, with a bounded start limit.",
            choices=tuple(Restart), flag="--restart", metavar="POLICY",
            unit_property="Restart="),
    Setting("sandbox", Kind.BOOL, "Run in a sandbox: system and home read-only; the "
            "working directory and --add-dir writable.", flag="--sandbox"),
    Setting("worktree", Kind.BOOL, "Run in a git worktree of its own (kept until reaped).",
            flag="--worktree"),
    Setting("queue", Kind.STRING, "Start it when this queue ([queues.NAME]) has room; "
            "until then it is queued.", pattern=NAME, flag="--queue",
            metavar="NAME"),
    Setting("priority", Kind.INT, "Its place in its queue: higher starts first, then "
            "first come, first served.", minimum=-1000, maximum=1000, flag="--priority",
            metavar="N"),
    Setting("retries", Kind.INT, "Run an agent again, resuming its conversation, after "
            "this many transient API failures (overloaded, rate limited, unreachable).",
            minimum=0, maximum=100, flag="--retries", metavar="N", agent_only=True),
    Setting("retry_delay", Kind.DURATION, "The wait before the first retry, doubled at "
            "each next one up to 30 days (default 30s).", minimum=1, maximum=int(MAX_WAIT_S),
            flag="--retry-delay", metavar="DURATION", agent_only=True),
    Setting("limit_wait", Kind.DURATION, "The wait after a usage limit whose reset time "
            "the agent does not tell (default 1h).", minimum=1, maximum=int(MAX_WAIT_S),
            flag="--limit-wait", metavar="DURATION", agent_only=True),
    Setting("persistent", Kind.BOOL,
            "Start it again at boot (orch recover) if it was cut off; for a user, at boot "
            "only with lingering (loginctl enable-linger), else at login.",
            flag="--persistent"),
    Setting("secret_env", Kind.STRING_LIST,
            "Names of the caller's environment variables handed to the agent as secrets.",
            pattern=ENV_NAME),
)


def _span(seconds: int) -> str:
    """SECONDS as a time span reads it: 30d, 90s."""
    return f"{seconds // 86400}d" if seconds and not seconds % 86400 else f"{seconds}s"


def flag_value(key: str, value: object) -> object:
    """SPAWN_SETTINGS[KEY].from_flag(VALUE): a flag's value as [spawn] would hold it."""
    return SPAWN_SETTINGS[key].from_flag(value)


# --- value parsers ----------------------------------------------------------------------

_NUMBER = r"\d+(?:\.\d+)?"
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = rf"({_NUMBER})([KMGT]?)"  # compiled when first used
# A CPU quota: up to ten thousand CPUs' worth (systemd holds it in µs a second, a uint64).
MAX_PERCENT = 1_000_000
PERCENT_EXPECTED = f'a percentage such as "50%" or "200%" (1% to {MAX_PERCENT}%)'
# systemd keeps sizes and times in a uint64, the top value meaning infinity.
_UINT64_MAX = 2**64 - 1


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
        raise UsageError(f"{show(value)}: {expected}")
    if isinstance(value, int):
        size = value
    else:
        import re

        match = re.fullmatch(_SIZE, value)
        # A fraction of a byte means nothing: a decimal point needs a unit.
        if match is None or ("." in match[1] and not match[2]):
            raise UsageError(f"{show(value)}: {expected}")
        from fractions import Fraction  # exact: 1.1G is a whole number of bytes

        size = math.floor(Fraction(match[1]) * _SIZE_UNITS[match[2]])
    if not 0 < size < _UINT64_MAX:
        raise UsageError(f"{show(value)}: {expected} (more than 0 and less than 16E)")
    return size


def parse_percent(value: str) -> int:
    """50 from '50%': a whole number from 1 to MAX_PERCENT followed by '%'. UsageError
    otherwise."""
    if isinstance(value, str):
        import re

        match = re.fullmatch(r"(\d{1,12})%", value)
        if match is not None and 0 < int(match[1]) <= MAX_PERCENT:
            return int(match[1])
    raise UsageError(f"{show(value)}: expected {PERCENT_EXPECTED}")
