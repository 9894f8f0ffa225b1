"""ExecStopPost= of every session: record how its main process ended.

systemd runs this after the main process exits, with SERVICE_RESULT, EXIT_CODE and
EXIT_STATUS in the environment (systemd.exec(5)), whether or not any orch process is
running at that moment. Recording it here keeps the evidence after the unit is
garbage-collected, so an ended session is never mistaken for a lost one.

    python -I /path/to/orch/exithook.py STATE_DIR [MARKER_DIR]

An agent the API failed (a usage limit, an overload) is set to wait, with a timer
that resumes it (orch.usecases.unattended). A session's end may free a slot of a queue
(spawn --queue): the hook then starts what waits there. The timers run the hook too:

    python -I /path/to/orch/exithook.py --admit STATE_DIR     (a queue waited for memory)
    python -I /path/to/orch/exithook.py --wake STATE_DIR ID   (resume a waiting session)

A session systemd starts itself (--after) has its start recorded by the same file:

    python -I /path/to/orch/exithook.py --started STATE_DIR   (its ExecStartPost=)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if not __package__:  # run by path (python -I .../orch/exithook.py): find the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orch.errors import OrchError, StateError
from orch.frozen import replace
from orch.session import Ending, Record, ending_from_exit, now_iso
from orch.state import Sessions, StateStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from orch.events import Event
    from orch.runtime import Runtime
    from orch.usecases.unattended import Verdict


def ending_from_env(env: dict[str, str]) -> Ending:
    """The Ending that systemd's ExecStopPost= environment describes."""
    return ending_from_exit(env.get("EXIT_CODE", ""), env.get("EXIT_STATUS", ""),
                            env.get("SERVICE_RESULT") or "unknown", now_iso())


def record_exit(store: StateStore, session_id: str, invocation_id: str | None,
                ending: Ending, then: Callable[[Record], Record] | None = None,
                started_at: Callable[[Record], str | None] | None = None) -> Record | None:
    """Record ENDING on the session's current invocation, and what THEN makes of the
    record so ended, in the same change; the record so recorded (the change may have
    archived it already), or None if there is no record to end. STARTED_AT(record):
    when the run that ended started, asked only of one systemd started itself. A start
    told here (see below) runs its on_start hooks too, once the change is made."""
    started: list[tuple[Record, Event]] = []

    def change(sessions: Sessions) -> Record | None:
        record: Record | None = sessions.get(session_id)
        if record is None:
            return None
        restart = None
        if record.invocation_id not in (None, invocation_id):
            if record.ending() is None or invocation_id is None:
                return None  # an older invocation's late hook must not overwrite a newer one
            # systemd started the program again itself (Restart=): a new invocation of
            # the session, which this hook is the first to hear of (its start hook
            # could not record it).
            record = replace(_run_again(record, ending.ended_at or ""),
                             invocation_id=invocation_id,
                             started_at=started_at(record) if started_at else None)
            restart = f"restart {record.restarts}"
        if record.started_at is None or restart:
            # Ended before whoever started it confirmed the start (or started by systemd
            # alone: --after, Restart=, too soon for its start hook): its start is told
            # here, under the lock, before its end.
            from orch.events import Kind
            from orch.session import Status
            from orch.usecases.transitions import note

            started.append((record, note(store.directory, record, Kind.STARTED,
                                         Status.RUNNING, restart)))
        ended = record.with_ending(ending, invocation_id)
        sessions[session_id] = then(ended) if then is not None else ended
        return sessions[session_id]

    recorded = store.update(change)
    for record, event in started:
        from orch.usecases.transitions import run_hooks

        with _runtime(store) as rt:
            for problem in run_hooks(rt, record, event):
                print(f"orch: {problem}", file=sys.stderr)
    return recorded


def _run_again(record: Record, requested_at: str) -> Record:
    """RECORD, whose last run has ended, as systemd runs it again (Restart=, systemctl
    restart): a new invocation. A stop or kill asked for since the last run's end is
    this run's (after one, no restart comes)."""
    return replace(record.next_invocation(requested_at), intent=record.intent,
                   final_result=record.final_result if record.intent is not None else None)


def _started_at(store: StateStore, record: Record) -> str | None:
    """When RECORD's unit started the run that ended: the manager still holds it while
    this hook runs (for a run systemd started itself, Restart=, which no record has);
    None if the manager cannot say (the run is then recorded without its start)."""
    from orch.session import usec_to_iso

    try:
        with _runtime(store) as rt:
            return usec_to_iso(rt.manager.unit(record.unit).exec_main_start_usec)
    except OrchError:
        return None


def _runtime(store: StateStore) -> Runtime:
    from orch.runtime import Runtime
    from orch.scope import Scope

    return Runtime(Scope(os.environ.get("ORCH_SCOPE") or "user"), store)


def admit_waiting(store: StateStore) -> None:
    """Start what the queues can start now, if anyone waits in one (only then is the
    manager connected to: most sessions are in no queue)."""
    from orch.queues import queues_with_waiting

    if not queues_with_waiting(store.load(archived=False)):
        return
    from orch.usecases.queueing import admit

    with _runtime(store) as rt:
        problems = admit(rt).problems
    for problem in problems:
        print(f"orch: {problem}", file=sys.stderr)


def judge_agent(store: StateStore, session_id: str, invocation_id: str | None,
                ending: Ending) -> Verdict | None:
    """What the output of an agent's failed run says: whether the API failed it, and
    so whether it waits (orch.usecases.unattended). Read before the end is recorded, so
    that the session never reads `failed` while it is about to wait. None for any
    other session (only then are the journal and the manager read)."""
    from orch.frozen import replace

    record = store.load(archived=False).get(session_id)
    if record is None or not record.provider or record.intent is not None \
            or ending.exit_code in (None, 0):
        return None
    from orch.usecases.unattended import judge

    record = replace(record, invocation_id=record.invocation_id or invocation_id)
    with _runtime(store) as rt:
        return judge(rt, record, ending)


def wait_out(store: StateStore, session_id: str, verdict: Verdict) -> None:
    """Arm the timer of a session VERDICT set to wait, and say so in its journal."""
    from orch.usecases.unattended import arm

    record = store.load(archived=False).get(session_id)
    if record is None or record.resumes_at is None:
        return  # stopped meanwhile, or no wait
    with _runtime(store) as rt:
        arm(rt, record, verdict)
    from orch.render import format_timestamp, parse_time

    when = parse_time(record.resumes_at)  # as systemctl writes a time, for logs and top
    print(f"orch: {record.waiting_for}: resumes at "
          f"{format_timestamp(when) if when else record.resumes_at}", file=sys.stderr)


def collect_result(store: StateStore, record: Record) -> Record:
    """RECORD with its agent's result, usage and cost read from its output and recorded
    (orch.usecases.common.collect), as its run ends: for `ps`, `top` and the API at
    once, and for the hooks its end runs. RECORD itself for any other session, or if
    the journal cannot be read (whoever asks next reads it)."""
    if not record.provider or record.final_result is not None:
        return record
    from orch.usecases.common import collect

    try:
        with _runtime(store) as rt:
            return collect(rt, record)
    except OrchError as err:
        print(f"orch: could not read the agent's result: {err.message}", file=sys.stderr)
        return record


def tell_end(store: StateStore, record: Record) -> None:
    """Tell of the end just recorded in RECORD (orch.usecases.transitions): ended, or
    waiting for its timer (not for a run systemd starts again: runs_again). RECORD as
    recorded, not read back: the write that recorded it may have archived it
    (a snapshot moves ended records to the archive), and the end must be told all the
    same."""
    from orch.events import Kind
    from orch.session import Status, derive_status
    from orch.usecases.transitions import tell

    if record.resumes_at is not None:
        kind = Kind.LIMITED if record.wait_kind == "usage-limit" else Kind.RETRYING
        status = Status.LIMITED if kind is Kind.LIMITED else Status.RETRYING
        detail = record.waiting_for
    else:
        kind, status, detail = Kind.ENDED, derive_status(record, None, False), None
    with _runtime(store) as rt:
        problems = tell(rt, record, kind, status, detail)
    for problem in problems:
        print(f"orch: {problem}", file=sys.stderr)


def restarts_after(record: Record, now: float | None = None) -> bool:
    """Whether systemd starts RECORD's program again after the run just recorded in it
    (Restart=), as systemd decides: on-failure only after a run its result calls a
    failure (exit 0 and SIGHUP, SIGINT, SIGTERM or SIGPIPE are clean: "success"), and
    neither once the start limit is spent (the next start would be one too many within
    orch's interval; systemd then fails the unit, and runs no hook to tell of it)."""
    policy = record.options.get("restart", "no")
    if policy == "no" or (policy == "on-failure" and record.result == "success"):
        return False
    import time
    from datetime import datetime

    from orch.spec import START_LIMIT_BURST, START_LIMIT_INTERVAL_USEC

    since = (time.time() if now is None else now) - START_LIMIT_INTERVAL_USEC / 1e6

    def recent(stamp: object) -> bool:
        try:
            return isinstance(stamp, str) and datetime.fromisoformat(stamp).timestamp() > since
        except ValueError:  # a hand-edited stamp: not counted
            return False

    starts = [run.get("started_at") for run in record.history] + [record.started_at]
    return sum(map(recent, starts)) < START_LIMIT_BURST


def runs_again(store: StateStore, record: Record, ending: Ending) -> bool:
    """Whether systemd starts RECORD's program again after the run just recorded in it:
    a restart asked of its manager (systemctl restart: this hook then runs in a restart
    job), or its Restart= policy, unless a stop is asked (systemctl stop, a shutdown).
    The manager is asked for the unit's job only where a stop may be under way: a run
    ended by a signal, or one with Restart=."""
    if record.intent is not None:  # orch stops or kills it: no run comes after
        return False
    if not record.restarting and ending.exit_signal is None:
        return False
    try:
        with _runtime(store) as rt:
            job = rt.manager.job_type(record.unit)
    except OrchError:
        job = None  # as if none: the policy alone decides, as systemd's would
    if job in ("restart", "stop"):
        return job == "restart"
    return restarts_after(record)


def tell_idle(store: StateStore, session_id: str) -> None:
    """Tell a conversation waits for its next message (orch.convhold saw its turn end),
    unless one waits in its input already, or it is being stopped."""
    from orch.conversation import waiting
    from orch.events import Kind
    from orch.scope import Scope
    from orch.session import Status
    from orch.usecases.transitions import tell

    record = store.load(archived=False).get(session_id)
    if record is None or record.intent is not None \
            or waiting(Scope(record.scope), session_id):
        return
    with _runtime(store) as rt:
        problems = tell(rt, record, Kind.IDLE, Status.IDLE)
    for problem in problems:
        print(f"orch: {problem}", file=sys.stderr)


def _wake(store: StateStore, session_id: str) -> int:
    from orch.usecases.unattended import give_up, wake

    try:
        with _runtime(store) as rt:
            try:
                wake(rt, session_id)
            except OrchError as err:  # ended, as failed, with why: not waiting for ever
                give_up(rt, session_id, f"could not run it again: {err.message}")
                raise
    except OrchError as err:
        print(f"orch: could not resume session {session_id[:8]}: {err.message}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """Entry point; exits 0 even when nothing could be recorded, so the unit's own
    result is never changed by the hook."""
    if len(argv) == 2 and argv[0] == "--admit":
        return _admit_only(StateStore(Path(argv[1])))
    if len(argv) == 3 and argv[0] == "--wake":
        return _wake(StateStore(Path(argv[1])), argv[2])
    env = dict(os.environ)  # systemd's words for this run, as ExecStartPost= gets them
    if len(argv) == 2 and argv[0] == "--started" and env.get("ORCH_SESSION_ID"):
        pid = env.get("MAINPID", "")
        return record_start(StateStore(Path(argv[1])), env["ORCH_SESSION_ID"],
                            env.get("INVOCATION_ID"), int(pid) if pid.isdigit() else None)
    session_id = os.environ.get("ORCH_SESSION_ID")
    if len(argv) not in (1, 2) or not session_id:
        print("usage: exithook.py STATE_DIR [MARKER_DIR] (inside an orch session)",
              file=sys.stderr)
        return 2
    store = StateStore(Path(argv[0]))
    ending = ending_from_env(env)
    verdict = None
    again = False
    try:
        verdict = judge_agent(store, session_id, env.get("INVOCATION_ID"), ending)
    except OrchError as err:
        print(f"orch: could not tell whether the API failed the agent: {err.message}",
              file=sys.stderr)
    try:
        ended = record_exit(store, session_id, env.get("INVOCATION_ID"), ending,
                            verdict.apply if verdict is not None else None,
                            lambda record: _started_at(store, record))
        # A run systemd starts again is no end: not told, and its dependents and its
        # queue's slot wait for the session's end.
        again = ended is not None and runs_again(store, ended, ending)
        if ended is not None and not again:
            tell_end(store, collect_result(store, ended))
            if ended.restarting:  # its secrets, kept for its restarts till now
                from orch import secrets
                from orch.scope import Scope

                secrets.discard(Scope(ended.scope), ended.id)
        if len(argv) == 2 and not again:
            from orch.usecases.transitions import release_dependents

            with _runtime(store) as rt:
                for problem in release_dependents(rt, session_id, Path(argv[1])):
                    print(f"orch: {problem}", file=sys.stderr)
    except OSError as err:
        print(f"orch: could not release the sessions waiting on this one: {err}",
              file=sys.stderr)
    except StateError as err:
        print(f"orch: could not record the session's end: {err.message}", file=sys.stderr)
    if verdict is not None and verdict.resumes is not None:
        try:
            wait_out(store, session_id, verdict)
        except OrchError as err:
            print(f"orch: could not arm the timer that resumes the session: {err.message}",
                  file=sys.stderr)
    return 0 if again else _admit_only(store)


def record_start(store: StateStore, session_id: str, invocation_id: str | None,
                 main_pid: int | None) -> int:
    """ExecStartPost= of a session systemd starts itself (--after: its path unit; each
    run of a --restart session): record its start (invocation, MainPID, now), a new
    invocation if its last run has ended, tell it (event and on_start hooks), remove its
    secrets file (the manager has read it; with --restart it reads it again, and keeps
    it) and stop its path unit, which has done its work. Nothing if this start is known
    already."""
    from orch import secrets
    from orch.events import Kind
    from orch.scope import Scope
    from orch.session import Status
    from orch.spec import after_unit
    from orch.usecases.transitions import note, run_hooks

    told: list[Event] = []

    def change(sessions: Sessions) -> Record | None:
        record = sessions.get(session_id)
        if record is None or invocation_id is None:
            return None
        detail = None
        if record.invocation_id not in (None, invocation_id) and record.ending() is not None:
            record = _run_again(record, now_iso())  # systemd runs it again: Restart=
            detail = f"restart {record.restarts}"
        elif record.invocation_id is not None or record.ending() is not None:
            return None
        sessions[session_id] = replace(record, invocation_id=invocation_id,
                                       main_pid=main_pid, started_at=now_iso())
        told.append(note(store.directory, sessions[session_id], Kind.STARTED, Status.RUNNING,
                         detail))
        return sessions[session_id]

    try:
        started = store.update(change)
    except StateError as err:
        print(f"orch: could not record the session's start: {err.message}", file=sys.stderr)
        return 0
    if started is None:
        return 0
    if not started.restarting:
        secrets.discard(Scope(started.scope), started.id)
    try:
        with _runtime(store) as rt:
            for problem in run_hooks(rt, started, told[0]):
                print(f"orch: {problem}", file=sys.stderr)
            if started.after:
                rt.manager.stop(after_unit(started.unit))
    except OrchError as err:
        print(f"orch: {err.message}", file=sys.stderr)
    return 0


def _admit_only(store: StateStore) -> int:
    try:
        admit_waiting(store)
    except OrchError as err:
        print(f"orch: could not start the next queued session: {err.message}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
