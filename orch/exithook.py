"""ExecStopPost= of every session: record how its main process ended.

systemd runs this after the main process exits, with SERVICE_RESULT, EXIT_CODE and
EXIT_STATUS in the environment (systemd.exec(5)), whether or not any orch process is
running at that moment. Recording it here keeps the evidence after the unit is
garbage-collected, so an ended session is never mistaken for a lost one.

    python -I /path/to/orch/exithook.py STATE_DIR [MARKER_DIR]

A session's end may free a slot of a queue (spawn --queue): the hook then starts what
waits there. The same pass alone, for a queue that waited for memory:

    python -I /path/to/orch/exithook.py --admit STATE_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if not __package__:  # run by path (python -I .../orch/exithook.py): find the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orch.dependencies import after_end
from orch.errors import OrchError, StateError
from orch.frozen import replace
from orch.session import Ending, Record, ending_from_exit, now_iso
from orch.state import Sessions, StateStore


def ending_from_env(env: dict[str, str]) -> Ending:
    """The Ending that systemd's ExecStopPost= environment describes."""
    return ending_from_exit(env.get("EXIT_CODE", ""), env.get("EXIT_STATUS", ""),
                            env.get("SERVICE_RESULT") or "unknown", now_iso())


def record_exit(store: StateStore, session_id: str, invocation_id: str | None,
                ending: Ending) -> bool:
    """Record ENDING on the session's current invocation; False if there is no record."""

    def change(sessions: Sessions) -> bool:
        record: Record | None = sessions.get(session_id)
        if record is None:
            return False
        if record.invocation_id not in (None, invocation_id):
            if record.ending() is None or invocation_id is None:
                return False  # an older invocation's late hook must not overwrite a newer one
            # systemd started the program again itself (Restart=): a new invocation of
            # the session, which this hook is the first to hear of.
            record = replace(record.next_invocation(ending.ended_at or ""),
                                         invocation_id=invocation_id)
        sessions[session_id] = record.with_ending(ending, invocation_id)
        return True

    return store.update(change)


def release_dependents(store: StateStore, session_id: str, markers: Path) -> list[str]:
    """Settle the sessions waiting on this one (--after): block them if it failed, or
    write the marker whose path unit starts each one whose dependencies all succeeded."""
    if not any(session_id in r.after for r in store.load(archived=False).values()):
        # A waiting session is never archived: none waits on this one. (One recorded
        # after this look judges its dependencies itself, once its path unit is armed.)
        return []
    released = store.update(lambda sessions: after_end(sessions, session_id))
    if released:
        markers.mkdir(mode=0o700, parents=True, exist_ok=True)
    for waiting_id in released:
        # Written and closed: the path unit's PathChanged= fires on the close.
        (markers / f"{waiting_id}.go").write_text(f"released by {session_id}\n")
    return released


def admit_waiting(store: StateStore) -> None:
    """Start what the queues can start now, if anyone waits in one (only then is the
    manager connected to: most sessions are in no queue)."""
    from orch.queues import queues_with_waiting

    if not queues_with_waiting(store.load(archived=False)):
        return
    from orch.runtime import Runtime
    from orch.scope import Scope
    from orch.usecases.queueing import admit

    with Runtime(Scope(os.environ.get("ORCH_SCOPE") or "user"), store) as rt:
        problems = admit(rt).problems
    for problem in problems:
        print(f"orch: {problem}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """Entry point; exits 0 even when nothing could be recorded, so the unit's own
    result is never changed by the hook."""
    if len(argv) == 2 and argv[0] == "--admit":
        return _admit_only(StateStore(Path(argv[1])))
    session_id = os.environ.get("ORCH_SESSION_ID")
    if len(argv) not in (1, 2) or not session_id:
        print("usage: exithook.py STATE_DIR [MARKER_DIR] (inside an orch session)",
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    store = StateStore(Path(argv[0]))
    try:
        record_exit(store, session_id, env.get("INVOCATION_ID"), ending_from_env(env))
        if len(argv) == 2:
            release_dependents(store, session_id, Path(argv[1]))
    except OSError as err:
        print(f"orch: could not release the sessions waiting on this one: {err}",
              file=sys.stderr)
    except StateError as err:
        print(f"orch: could not record the session's end: {err.message}", file=sys.stderr)
    return _admit_only(store)


def _admit_only(store: StateStore) -> int:
    try:
        admit_waiting(store)
    except OrchError as err:
        print(f"orch: could not start the next queued session: {err.message}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
