"""orch's library API: every operation the CLI offers, as typed functions.

Data flows one way: a call builds a spec, the systemd adapter carries it to the
manager, and the state store keeps the record; queries read both and compose a view.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orch.errors import NotFound, OrchError, SpawnFailed, UsageError
from orch.journal import LogFormat, logs_argv, read_logs
from orch.procs import main_alive
from orch.resolve import resolve
from orch.scope import Scope
from orch.session import (
    Intent,
    Record,
    Session,
    UnitView,
    derive_status,
    now_iso,
    usec_to_iso,
)
from orch.spec import (
    SessionSpec,
    properties,
    resolve_cwd,
    resolve_program,
    session_path,
    validate,
)
from orch.state import Sessions, StateStore
from orch.systemd import Manager
from orch.units import unit_name

SELF = "self"


def current_scope(user: bool = False, system: bool = False) -> Scope:
    """The scope for a command: --user/--system, else the session's own scope when
    called from inside one (ORCH_SCOPE), else the caller's default."""
    if user or system:
        return Scope.choose(user, system)
    inside = os.environ.get("ORCH_SCOPE")
    if inside in (Scope.USER, Scope.SYSTEM):
        return Scope(inside)
    return Scope.default()


def store_for(scope: Scope) -> StateStore:
    """The state store of SCOPE for the calling user."""
    return StateStore(scope.state_dir())


def _parent_id() -> str | None:
    parent = os.environ.get("ORCH_SESSION_ID")
    try:
        return str(uuid.UUID(parent)) if parent else None
    except ValueError:
        return None


def _view(record: Record, unit: UnitView) -> Session:
    alive = unit.loaded and unit.main_pid > 0 and main_alive(unit)
    return Session.of(record, derive_status(record, unit, alive), unit)


def _find(ref: str, records: Sessions) -> Record:
    if ref == SELF:
        own = os.environ.get("ORCH_SESSION_ID")
        if not own:
            raise NotFound("`self` names a session only inside one (ORCH_SESSION_ID is unset)")
        ref = own
    return resolve(ref, records.values())


def spawn(argv: Sequence[str], *, name: str | None = None, description: str = "",
          tags: Iterable[str] = (), env: dict[str, str] | None = None,
          cwd: str | None = None, scope: Scope | None = None) -> Session:
    """Start ARGV as a new session: a transient service of SCOPE's manager.

    The argv reaches the program verbatim (no shell). Raises SpawnFailed, with one line
    naming the program, if it cannot be found or executed; no session then claims to run.
    """
    scope = scope or current_scope()
    spec = SessionSpec(argv=list(argv), name=name, description=description,
                       tags=list(tags), env=dict(env or {}), cwd=cwd)
    validate(spec)
    work_dir = resolve_cwd(cwd)
    path = session_path(os.environ.get("PATH"))
    program = resolve_program(spec.argv[0], spec.env.get("PATH", path), work_dir)
    session_id = uuid.uuid4()
    unit = unit_name(spec.label(), session_id)
    store = store_for(scope)
    record = Record(id=str(session_id), name=spec.label(), unit=unit, scope=str(scope),
                    argv=spec.argv, cwd=work_dir, tags=spec.tags,
                    description=spec.description, env=spec.env, created_at=now_iso(),
                    parent_id=_parent_id())
    props = properties(spec, session_id=session_id, unit=unit, scope=scope, program=program,
                       cwd=work_dir, path=path, state_dir=store.directory)
    with Manager(scope) as manager:
        # Recorded before the start, so a unit of ours never runs without a record.
        store.update(lambda s: s.__setitem__(record.id, record))
        try:
            job = manager.submit_transient(unit, props)
        except BaseException:
            store.update(lambda s: s.pop(record.id, None))  # no unit: no session
            raise
        outcome = manager.wait_job(job, f"the start of {unit}")
        unit_now = manager.unit(unit)

    def confirm(sessions: Sessions) -> Record:
        current = sessions[record.id]
        if unit_now.loaded and unit_now.invocation_id and \
                current.invocation_id in (None, unit_now.invocation_id):
            current = dataclasses.replace(
                current, invocation_id=unit_now.invocation_id,
                main_pid=unit_now.main_pid or current.main_pid,
                started_at=usec_to_iso(unit_now.exec_main_start_usec) or current.started_at)
            sessions[record.id] = current
        return current

    confirmed = store.update(confirm)
    session = _view(confirmed, unit_now)
    if outcome != "done" and not _program_ran(session):
        raise SpawnFailed(f"cannot run {spec.argv[0]}: {_start_failure(session, outcome)}",
                          hint=f"session {session.id} is recorded as {session.status}")
    return session


# systemd.exec(5)'s exit codes for failures before the program runs.
_EXEC_FAILURES = {200: "cannot change to its working directory", 203: "exec failed",
                  217: "its user does not exist", 226: "cannot set up its namespace"}


def _program_ran(session: Session) -> bool:
    """Whether the program itself ran: a start job also fails when a program that did run
    exits at once; only statuses 200-243 are systemd's own (it could not be run)."""
    if session.exit_signal is not None:
        return True
    return session.exit_code is not None and not 200 <= session.exit_code <= 243


def _start_failure(session: Session, outcome: str) -> str:
    if session.exit_code is not None:
        reason = _EXEC_FAILURES.get(session.exit_code, "it exited at once")
        return f"{reason} (exit status {session.exit_code})"
    if session.exit_signal:
        return f"killed by {session.exit_signal} while starting"
    return f"the start job ended {outcome!r}"


def list_sessions(scope: Scope | None = None, *, running: bool = False,
                  tag: str | None = None) -> list[Session]:
    """Every session of SCOPE, newest first, with live status from one listing pass."""
    scope = scope or current_scope()
    records = store_for(scope).load()
    chosen = [r for r in records.values() if tag is None or tag in r.tags]
    with Manager(scope) as manager:  # connects even with no records: no manager, no answer
        units = manager.units(r.unit for r in chosen) if chosen else {}
    sessions = [_view(r, units[r.unit]) for r in chosen]
    if running:
        sessions = [s for s in sessions if not s.status.ended]
    return sorted(sessions, key=lambda s: (s.created_at, s.id), reverse=True)


def _lookup(ref: str, scope: Scope) -> tuple[Record, StateStore]:
    store = store_for(scope)
    return _find(ref, store.load()), store


def show(ref: str, scope: Scope | None = None) -> Session:
    """The session REF names (id, id prefix, name, unit name, or `self`)."""
    record, _ = _lookup(ref, scope or current_scope())
    with Manager(Scope(record.scope)) as manager:
        return _view(record, manager.unit(record.unit))


def logs_command(ref: str, scope: Scope | None = None, *, lines: int | None = None,
                 follow: bool = False, since: str | None = None,
                 output: LogFormat = LogFormat.SHORT) -> list[str]:
    """The journalctl command line that shows the session's output."""
    record, _ = _lookup(ref, scope or current_scope())
    return logs_argv(record, lines=lines, follow=follow, since=since, output=output)


def logs(ref: str, scope: Scope | None = None, *, lines: int | None = None,
         since: str | None = None, output: LogFormat = LogFormat.CAT) -> str:
    """The session's output so far, from the journal."""
    record, _ = _lookup(ref, scope or current_scope())
    return read_logs(record, lines=lines, since=since, output=output)


@dataclass(frozen=True)
class WaitOutcome:
    """What `wait` saw: every awaited session's last status, and whether time ran out."""

    sessions: list[Session]
    timed_out: bool

    @property
    def succeeded(self) -> bool:
        """True if every session that ended, ended successfully (and some did)."""
        ended = [s for s in self.sessions if s.status.ended]
        return bool(ended) and all(s.status.succeeded for s in ended)


def wait(refs: Sequence[str], scope: Scope | None = None, *, any_: bool = False,
         timeout: float | None = None) -> WaitOutcome:
    """Block until every session in REFS has ended (or the first, with ANY_), driven by
    the manager's signals. Unknown references raise NotFound before any waiting."""
    if not refs:
        raise UsageError("wait needs at least one session")
    if timeout is not None and timeout < 0:
        raise UsageError("--timeout must be 0 or more seconds")
    scope = scope or current_scope()
    store = store_for(scope)
    records = store.load()
    wanted = list(dict.fromkeys(_find(ref, records).id for ref in refs))
    units = [records[i].unit for i in wanted]
    latest: list[Session] = []

    with Manager(scope) as manager:
        def done() -> bool:
            nonlocal latest
            now = store.load()
            latest = [_view(now.get(i, records[i]), manager.unit(records[i].unit))
                      for i in wanted]
            ended = sum(1 for s in latest if s.status.ended)
            return ended > 0 if any_ else ended == len(latest)

        finished = manager.wait_until(units, done, timeout)
    return WaitOutcome(latest, timed_out=not finished)


def _mark(store: StateStore, session_id: str, intent: Intent,
          final_result: str | None = None) -> Record:
    def change(sessions: Sessions) -> Record:
        record = sessions[session_id]
        if record.ending() is None:
            record = dataclasses.replace(
                record, intent=intent,
                final_result=final_result if final_result is not None else record.final_result)
            sessions[session_id] = record
        return record

    return store.update(change)


def stop(ref: str, scope: Scope | None = None) -> Session:
    """Stop the session through systemd (SIGTERM, then SIGKILL after the unit's stop
    timeout) and wait for it to end; its status becomes `stopped`."""
    record, store = _lookup(ref, scope or current_scope())
    with Manager(Scope(record.scope)) as manager:
        before = _view(record, manager.unit(record.unit))
        if before.status.ended:
            return before
        _mark(store, record.id, Intent.STOP)
        try:
            manager.stop(record.unit)
        except OrchError:
            _clear_intent(store, record.id, Intent.STOP)
            raise
        return _view(store.load()[record.id], manager.unit(record.unit))


def _clear_intent(store: StateStore, session_id: str, intent: Intent) -> None:
    def change(sessions: Sessions) -> None:
        record = sessions.get(session_id)
        if record is not None and record.intent is intent and record.ending() is None:
            sessions[session_id] = dataclasses.replace(record, intent=None)

    store.update(change)


def parse_signal(value: str) -> int:
    """A signal number from '15', 'TERM' or 'SIGTERM'."""
    text = value.strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        try:
            return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
        except KeyError:
            pass
    raise UsageError(f"--signal {value!r}: not a signal name or number")


def kill(ref: str, result: str | None = None, scope: Scope | None = None, *,
         signum: int = signal.SIGTERM) -> Session:
    """Record RESULT as the session's final result, then signal all its processes.

    The result is written first: if that write fails, nothing is signalled. The
    session's status becomes `killed`.
    """
    is_self = ref == SELF
    record, store = _lookup(ref, scope or current_scope())
    with Manager(Scope(record.scope)) as manager:
        before = _view(record, manager.unit(record.unit))
        if before.status.ended:
            raise OrchError(f"session {record.id[:8]} ({record.name}) has already ended: "
                            f"{before.status}")
        _mark(store, record.id, Intent.KILL, result)
        if is_self and signum not in (signal.SIGKILL, signal.SIGSTOP):
            # We are one of the processes about to be signalled: outlive it to report.
            signal.signal(signum, signal.SIG_IGN)
        manager.kill(record.unit, signum)
        return _view(store.load()[record.id], manager.unit(record.unit))


def read_result_file(path: str) -> str:
    """The text of a --file result (one trailing newline dropped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"--file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--file {path}: not UTF-8 text") from None
    return text.removesuffix("\n")

