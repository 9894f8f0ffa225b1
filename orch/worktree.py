"""A git worktree per session (`--worktree`): the agent works on its own checkout,
which orch keeps for inspection after the session ends and `orch reap` removes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from orch.errors import OrchError, UsageError


def _git(args: list[str], cwd: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        raise OrchError("--worktree needs git, which is not installed") from None
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()
        raise OrchError(f"git {args[0]} failed in {cwd}: {reason[-1] if reason else '?'}")
    return done.stdout.strip()


def create(cwd: str, root: Path, label: str) -> tuple[str, str]:
    """A new worktree of the repository at CWD, detached at its HEAD, under ROOT;
    (the worktree's path, the repository's top directory)."""
    try:
        repo = _git(["rev-parse", "--show-toplevel"], cwd)
    except OrchError:
        raise UsageError(f"--worktree: {cwd} is not inside a git repository") from None
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = root / label
    _git(["worktree", "add", "--detach", str(path), "HEAD"], repo)
    return str(path), repo


def remove(path: str, repo: str) -> None:
    """Remove a session's worktree (and git's record of it); gone already is fine."""
    if not Path(path).exists():
        if Path(repo).is_dir():
            _git(["worktree", "prune"], repo)
        return
    _git(["worktree", "remove", "--force", path], repo)
