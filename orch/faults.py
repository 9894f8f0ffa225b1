"""Crash points for the reliability tests: ORCH_CRASH_AT=POINT[:N] kills this process
with SIGKILL the Nth time (the first without N) it passes POINT, as kill -9 or an
out-of-memory kill would at that moment. Without the variable, which nothing but
tests/reliability sets, a point costs one comparison."""

from __future__ import annotations

import os

_TARGET = os.environ.get("ORCH_CRASH_AT") or None
_passes: dict[str, int] = {}

# Every point, so that a test can ask for each one and fail on a name that is not here.
POINTS = (
    "spawn.recorded",       # the record appended, the unit not yet asked for
    "launch.submitted",     # StartTransientUnit answered, the record not yet synced
    "launch.synced",        # the record durable, the start job not yet done
    "launch.started",       # the start job done, the unit not yet confirmed
    "launch.confirmed",     # the confirmation appended
    "recover.decided",      # recover's decisions written, no restart or adoption yet
    "recover.archived",     # a persistent session's next invocation recorded, not started
    "recover.adopting",     # before recording a unit of ours that has no record
    "queue.admitted",       # sessions let out of their queue, their units not yet asked for
    "reap.stopped",         # the running sessions' units stopped, their records still there
    "reap.reset",           # a session's failed unit reset, its record still there
    "state.snapshot",       # a new snapshot renamed into place, the log not yet reset
)


def point(name: str) -> None:
    """Die here if ORCH_CRASH_AT names NAME and this is the pass it counts to."""
    if _TARGET is None:
        return
    wanted, _, count = _TARGET.partition(":")
    if name != wanted:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(count or 1):
        import signal  # only here: every command passes points, tests alone die at one

        os.kill(os.getpid(), signal.SIGKILL)
