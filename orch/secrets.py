"""Secrets: values that reach the agent's environment and nowhere else.

orch writes them to a file in the manager's runtime directory (a tmpfs: never on
disk), mode 0600 in a 0700 directory, and hands the manager only its path
(EnvironmentFile=). The manager reads it when it starts the program, and orch removes
it as soon as the start job is done. The values are never in the state file, the
unit's properties, the journal or `orch show`; only env file paths and variable names
are recorded, so a restart can read them again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from enum import Enum, auto
from pathlib import Path

from orch.errors import UsageError
from orch.scope import Scope
from orch.spec import RESERVED_ENV, is_env_name, read_text_arg


class _State(Enum):
    """Where systemd's env file parser is (parse_env_file_internal's states)."""

    PRE_KEY = auto()
    KEY = auto()
    PRE_VALUE = auto()
    VALUE = auto()
    VALUE_ESCAPE = auto()
    SINGLE_QUOTE_VALUE = auto()
    DOUBLE_QUOTE_VALUE = auto()
    DOUBLE_QUOTE_VALUE_ESCAPE = auto()
    COMMENT = auto()
    COMMENT_ESCAPE = auto()


_COMMENTS = "#;"
_WHITESPACE = " \t\n\r"
_NEWLINE = "\n\r"
_SHELL_NEED_ESCAPE = '"\\`$'
_QUOTED = (_State.SINGLE_QUOTE_VALUE, _State.DOUBLE_QUOTE_VALUE,
           _State.DOUBLE_QUOTE_VALUE_ESCAPE)


class _Refused(Exception):
    """A line orch does not take: LINE, and why."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line
        self.why = why


class _Parse:
    """What one pass over an env file found: each KEY=VALUE with the line it starts on,
    and the first comment line a trailing backslash continued (None if none)."""

    __slots__ = ("assignments", "continued_comment")

    def __init__(self) -> None:
        self.assignments: list[tuple[int, str, str]] = []
        self.continued_comment: int | None = None


def _append(chars: list[str], c: str, trailing_ws: int | None) -> int | None:
    """Append C to CHARS; where CHARS' trailing whitespace now begins (None if it ends in
    another character), so that it can be dropped at the end of the line."""
    if c not in _WHITESPACE:
        trailing_ws = None
    elif trailing_ws is None:
        trailing_ws = len(chars)
    chars.append(c)
    return trailing_ws


def _parse_env(text: str, comments_continue: bool) -> _Parse:
    """TEXT read as systemd's parse_env_file_internal() reads it, state for state
    (src/basic/env-file.c, v252). COMMENTS_CONTINUE: a comment line ending in a backslash
    takes the next line along, as systemd did before v254.

    What systemd skips without a word (a line with no '=', an invalid name) or takes
    as a likely mistake (a quote left open swallows the rest of the file) raises
    _Refused instead: a secret must not go missing, or absorb others, unnoticed."""
    found = _Parse()
    state = _State.PRE_KEY
    key: list[str] = []
    value: list[str] = []
    last_key_ws: int | None = None  # where the key's trailing whitespace begins
    last_value_ws: int | None = None  # likewise for an unquoted value
    line = key_line = quote_line = 1

    def push() -> None:
        name = "".join(key[:last_key_ws])
        if not is_env_name(name):
            raise _Refused(key_line, f"{name!r} is not a variable name (letters, digits and "
                           "_, not starting with a digit), so systemd would skip the line")
        found.assignments.append((key_line, name, "".join(value)))

    for c in text:
        if state is _State.PRE_KEY:
            if c in _COMMENTS:
                state = _State.COMMENT
            elif c not in _WHITESPACE:
                state = _State.KEY
                key, value, last_key_ws, key_line = [c], [], None, line
        elif state is _State.KEY:
            if c in _NEWLINE:
                raise _Refused(key_line, "expected KEY=VALUE (systemd would skip the line)")
            if c == "=":
                state = _State.PRE_VALUE
                last_value_ws = None
            else:
                last_key_ws = _append(key, c, last_key_ws)
        elif state is _State.PRE_VALUE:
            if c in _NEWLINE:
                state = _State.PRE_KEY
                push()
            elif c == "'":
                state, quote_line = _State.SINGLE_QUOTE_VALUE, line
            elif c == '"':
                state, quote_line = _State.DOUBLE_QUOTE_VALUE, line
            elif c == "\\":
                state = _State.VALUE_ESCAPE
            elif c not in _WHITESPACE:
                state = _State.VALUE
                value.append(c)
        elif state is _State.VALUE:
            if c in _NEWLINE:
                state = _State.PRE_KEY
                del value[len(value) if last_value_ws is None else last_value_ws:]
                push()
            elif c == "\\":
                state = _State.VALUE_ESCAPE
                last_value_ws = None
            else:
                last_value_ws = _append(value, c, last_value_ws)
        elif state is _State.VALUE_ESCAPE:
            state = _State.VALUE
            if c not in _NEWLINE:  # an escaped newline is a continuation: dropped
                value.append(c)
        elif state is _State.SINGLE_QUOTE_VALUE:
            if c == "'":
                state = _State.PRE_VALUE
            else:
                value.append(c)
        elif state is _State.DOUBLE_QUOTE_VALUE:
            if c == '"':
                state = _State.PRE_VALUE
            elif c == "\\":
                state = _State.DOUBLE_QUOTE_VALUE_ESCAPE
            else:
                value.append(c)
        elif state is _State.DOUBLE_QUOTE_VALUE_ESCAPE:
            state = _State.DOUBLE_QUOTE_VALUE
            if c in _SHELL_NEED_ESCAPE:
                value.append(c)
            elif c != "\n":  # other escapes keep their backslash, as a shell does
                value += ["\\", c]
        elif state is _State.COMMENT:
            if c == "\\":
                state = _State.COMMENT_ESCAPE
            elif c in _NEWLINE:
                state = _State.PRE_KEY
        else:  # COMMENT_ESCAPE
            if c in _NEWLINE and found.continued_comment is None:
                found.continued_comment = line
            state = (_State.PRE_KEY if c in _NEWLINE and not comments_continue
                     else _State.COMMENT)
        if c == "\n":
            line += 1

    if state in _QUOTED:
        raise _Refused(quote_line, "a quote opened here is never closed (systemd would take "
                       "the rest of the file as the value)")
    if state is _State.KEY:
        raise _Refused(key_line, "expected KEY=VALUE (systemd would skip the line)")
    if state in (_State.PRE_VALUE, _State.VALUE, _State.VALUE_ESCAPE):
        if state is _State.VALUE and last_value_ws is not None:
            del value[last_value_ws:]
        push()
    return found


def parse_env_text(text: str) -> dict[str, str]:
    """The variables a unit with EnvironmentFile= naming a file of TEXT gets, as systemd
    reads it (later assignments win); _Refused for what systemd would skip, guess at, or
    read differently from one version to another."""
    if "\x00" in text:
        raise _Refused(text.count("\n", 0, text.index("\x00")) + 1, "holds a NUL byte")
    found = _parse_env(text, comments_continue=True)
    if found.continued_comment is not None and \
            _parse_env(text, comments_continue=False).assignments != found.assignments:
        raise _Refused(found.continued_comment, "a comment ending in a backslash: systemd "
                       "before v254 reads the next line as comment too, later ones do not")
    return {name: value for _, name, value in found.assignments}


def parse_env_file(path: str) -> dict[str, str]:
    """The variables of an env file, exactly as systemd's EnvironmentFile= gives them to
    a program (systemd.exec(5)): KEY=VALUE lines, # and ; comments, values in single
    quotes (literal) or double quotes (with \\ escapes), backslash continuations,
    quoted values over several lines. One line naming the file and line for a line
    systemd would skip (no '=', an invalid name such as `export A`), for a quote never
    closed, and for a NUL byte."""
    # systemd reads \r as a newline, and the file again at each start: a regular one.
    text = read_text_arg(path, "--env-file", newline="", regular=True)
    try:
        values = parse_env_text(text)
    except _Refused as err:
        raise UsageError(f"{path}:{err.line}: {err.why}") from None
    for key in RESERVED_ENV:  # the manager reads the file after orch's own: it would win
        if key in values:
            raise UsageError(f"--env-file {path}: {key}: orch sets this variable itself")
    return values


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # os.environ holds undecodable bytes as lone surrogates
        return False
    return True


def from_environment(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's values of NAMES (variables the config marks secret)."""
    values = {}
    for name in names:
        if name not in environ:
            raise UsageError(f"secret variable {name} is not set in this environment")
        if not _utf8(environ[name]):
            # systemd refuses an environment file that is not UTF-8 (the unit would fail).
            raise UsageError(f"secret variable {name} is not UTF-8 text")
        values[name] = environ[name]
    return values


def gather(env_files: Iterable[str], secret_env: Iterable[str],
           environ: Mapping[str, str]) -> dict[str, str]:
    """Every secret value for a session: env files in order, then marked variables."""
    values: dict[str, str] = {}
    for path in env_files:
        values.update(parse_env_file(path))
    values.update(from_environment(secret_env, environ))
    return values


def _quoted(value: str) -> str:
    """VALUE in the double quotes of systemd's environment file syntax."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + escaped.replace("`", "\\`") + '"'


def secrets_dir(scope: Scope) -> Path:
    """Where secret files wait for the manager: the scope's runtime directory (tmpfs)."""
    return scope.runtime_dir() / "orch" / "secrets"


def write(scope: Scope, session_id: str, values: Mapping[str, str]) -> Path:
    """Write VALUES for the manager to read at start; the file's path."""
    directory = secrets_dir(scope)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / f"{session_id}.env"
    body = "".join(f"{k}={_quoted(v)}\n" for k, v in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)
    return path


def saved(scope: Scope, session_id: str) -> dict[str, str] | None:
    """The values a session's secret file holds (written at spawn for a session that
    starts later: a queued one), or None if there is none."""
    path = secrets_dir(scope) / f"{session_id}.env"
    return parse_env_file(str(path)) if path.exists() else None


def remove(path: Path | None) -> None:
    """Remove a secret file once the manager has read it."""
    if path is not None:
        path.unlink(missing_ok=True)


def discard(scope: Scope, session_id: str) -> None:
    """Remove a session's secret file if one is left (kept for --restart's restarts)."""
    (secrets_dir(scope) / f"{session_id}.env").unlink(missing_ok=True)
