"""Where a session runs, and what: its working directory, its program and the PATH
its unit gets, found on this host as the session's shell would find them."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from orch import shellwords
from orch.errors import PermissionDenied, SpawnFailed, UsageError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def resolve_cwd(cwd: str | None) -> str:
    """The session's working directory, absolute and existing."""
    import stat

    try:
        path = os.path.abspath(cwd or os.getcwd())
    except OSError as err:  # the current directory was removed, or cannot be reached
        raise UsageError(f"the current directory cannot be read ({err.strerror}): "
                         "give --cwd DIR") from None
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except PermissionError:
        raise PermissionDenied(f"--cwd {cwd or path}: permission denied") from None
    except OSError:
        raise UsageError(f"--cwd {cwd or path}: no such directory") from None
    if not is_dir:
        raise UsageError(f"--cwd {cwd or path}: not a directory")
    if not os.access(path, os.X_OK):  # the program could not start there, nor its hook run
        raise PermissionDenied(f"--cwd {cwd or path}: permission denied")
    return path


def resolve_program(program: str, search_path: str, cwd: str) -> str:
    """PROGRAM as an absolute path to an executable file, found as a shell would."""
    shown = shellwords.quote(program)  # 'sleep 5' is one word that names no program
    if "/" in program:
        candidate = Path(cwd, program) if not os.path.isabs(program) else Path(program)
        if not candidate.exists():
            raise SpawnFailed(f"cannot run {shown}: no such file")
    else:
        found, unusable = _on_path(program, search_path, cwd)
        if found is None:
            raise SpawnFailed(f"cannot run {shown}: "
                              f"{'not executable' if unusable else 'not found on PATH'}")
        return os.path.normpath(found)
    if candidate.is_dir():
        raise SpawnFailed(f"cannot run {shown}: is a directory")
    if not os.access(candidate, os.X_OK):
        raise SpawnFailed(f"cannot run {shown}: not executable")
    return os.path.normpath(candidate.absolute())


def _on_path(program: str, search_path: str, cwd: str) -> tuple[str | None, bool]:
    """The first executable file named PROGRAM in SEARCH_PATH's directories, a relative
    or empty one taken in CWD as the session's shell would take it (shutil.which's order,
    without loading shutil: with its bz2 and lzma, 1 ms of every command's start); and
    whether a file of that name was found that is not executable."""
    seen, unusable = set(), False
    for directory in search_path.split(":"):
        if directory in seen:
            continue
        seen.add(directory)
        candidate = os.path.join(cwd, directory, program)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate, unusable
        unusable = unusable or os.path.isfile(candidate)
    return None, unusable


def orch_bin_dir() -> str | None:
    """The directory holding this very orch's `orch` command, if it has one."""
    return _bin_dir(sys.argv[0] if sys.argv else "", sys.executable)


@functools.cache  # every spawn asks; the answer stays while these do
def _bin_dir(argv0: str, executable: str) -> str | None:
    command = Path(argv0) if argv0 else None
    if command is not None and command.name == "orch" and command.is_file():
        return str(command.resolve().parent)
    beside = Path(executable).parent / "orch"
    return str(beside.parent) if beside.is_file() else None


def session_path(caller_path: str | None) -> str:
    """The unit's PATH: the caller's, with this orch's directory first, so that
    `orch kill self` inside a session reaches the same orch that started it."""
    parts = (caller_path or DEFAULT_PATH).split(":")
    own = orch_bin_dir()
    if own is not None:
        parts = [own, *[p for p in parts if p != own]]
    return ":".join(p for p in parts if p)
