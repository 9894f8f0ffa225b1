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
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from orch.errors import UsageError
from orch.scope import Scope
from orch.spec import read_text_arg

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines of an env file (blank lines and # comments skipped, an optional
    `export `, values optionally in single or double quotes); one line naming the file
    and line for anything else."""
    text = read_text_arg(path, "--env-file")
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _NAME.fullmatch(key):
            raise UsageError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if "\x00" in value:
            raise UsageError(f"{path}:{number}: {key} holds a NUL byte")
        values[key] = value
    return values


def from_environment(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's values of NAMES (variables the config marks secret)."""
    values = {}
    for name in names:
        if name not in environ:
            raise UsageError(f"secret variable {name} is not set in this environment")
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


def remove(path: Path | None) -> None:
    """Remove a secret file once the manager has read it."""
    if path is not None:
        path.unlink(missing_ok=True)


def discard(scope: Scope, session_id: str) -> None:
    """Remove a session's secret file if one is left (kept for --restart's restarts)."""
    (secrets_dir(scope) / f"{session_id}.env").unlink(missing_ok=True)
