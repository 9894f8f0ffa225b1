"""orch's library API: every operation the CLI offers, as typed functions.

Data flows one way: a call builds a spec, the systemd adapter carries it to the
manager, and the state store keeps the record; queries read both and compose a view.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orch import dependencies, faults, secrets
from orch.dbus import Property
from orch.errors import NotFound, OrchError, SpawnFailed, UsageError
from orch.ids import new_session_id
from orch.resolve import resolve
from orch.scope import Scope
from orch.session import (
    Intent,
    Record,
    Session,
    Status,
    UnitView,
    derive_status,
    now_iso,
    usec_to_iso,
)
from orch.spec import (
    Restart,
    SessionSpec,
    SpawnOptions,
    after_dir,
    after_properties,
    after_unit,
    properties,
    read_text_arg,
    resolve_cwd,
    resolve_program,
    session_path,
    validate,
)
from orch.state import Sessions, StateStore
from orch.systemd import GONE, Manager
from orch.units import is_orch_unit, unit_name

# Agents, config, the journal, psutil and recovery load where they are used: a plain
# spawn or ps must not pay for them (each command is a fresh process).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from orch.journal import LogFormat
    from orch.providers import AgentRequest
    from orch.recovery import Decision, Outcome

SELF = "self"


def current_scope(user: bool = False, system: bool = False) -> Scope:
    """The scope for a command: --user/--system, else the session's own scope when
    called from inside one (ORCH_SCOPE), else the caller's default."""
    return Scope.for_command(user, system)


_STORES: dict[Path, StateStore] = {}


def store_for(scope: Scope) -> StateStore:
    """The state store of SCOPE for the calling user: one per directory and process, so
    what it knows of the file it last read or wrote serves the next call."""
    directory = scope.state_dir()
    store = _STORES.get(directory)
    if store is None:
        store = _STORES[directory] = StateStore(directory)
    return store


def _parent_id() -> str | None:
    parent = os.environ.get("ORCH_SESSION_ID")
    if not parent:
        return None
    import uuid  # only here: it loads platform

    try:
        return str(uuid.UUID(parent))
    except ValueError:
        return None


def _view(record: Record, unit: UnitView, pid_known: bool = False) -> Session:
    """RECORD joined with UNIT. Its MainPID's start time is checked against the
    manager's stamp (psutil), unless PID_KNOWN: the view was read as the manager
    finished the start job that executed it, or it is the record's own (_as_recorded)."""
    alive = unit.loaded and unit.main_pid > 0
    if alive and not pid_known:
        from orch.procs import main_alive

        alive = main_alive(unit)
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
          cwd: str | None = None, scope: Scope | None = None,
          persistent: bool = False, options: SpawnOptions | None = None,
          env_files: Sequence[str] = (), secret_env: Sequence[str] = (),
          worktree: bool = False, provider: str | None = None,
          agent: dict[str, Any] | None = None, after: Sequence[str] = (),
          placement: str | None = None) -> Session:
    """Start ARGV as a new session: a transient service of SCOPE's manager.

    The argv reaches the program verbatim (no shell). Raises SpawnFailed, with one line
    naming the program, if it cannot be found or executed; no session then claims to run.
    A PERSISTENT session is started again by `recover` (at boot) when its invocation
    ended under it: a power cut or a shutdown. OPTIONS set limits, restarts and the
    sandbox; ENV_FILES and SECRET_ENV (names of this environment's variables) give the
    program secrets that nothing records; WORKTREE runs it in a git worktree of its own.
    PLACEMENT records why this host was chosen to run it (orch spawn --host auto).
    """
    scope = scope or current_scope()
    options = options or SpawnOptions()
    spec = SessionSpec(argv=list(argv), name=name, description=description,
                       tags=list(tags), env=dict(env or {}), cwd=cwd)
    validate(spec)
    work_dir = resolve_cwd(cwd)
    for directory in options.add_dirs:
        if not os.path.isdir(directory):
            raise UsageError(f"--add-dir {directory}: no such directory")
    env_files = [os.path.abspath(f) for f in env_files]
    secrets.gather(env_files, secret_env, os.environ)  # refuse bad files before starting
    path = session_path(os.environ.get("PATH"))
    program = resolve_program(spec.argv[0], spec.env.get("PATH", path), work_dir)
    session_id = new_session_id()
    created = now_iso()
    store = store_for(scope)
    known = store.load() if after else {}
    dependencies = list(dict.fromkeys(_find(ref, known).id for ref in after))
    tree: tuple[str | None, str | None] = (None, None)
    if worktree:
        from orch import worktree as worktrees

        tree = worktrees.create(work_dir, store.directory / "worktrees",
                                f"{spec.label()}-{session_id[:8]}")
        work_dir = tree[0] or work_dir
    record = Record(id=session_id, name=spec.label(),
                    unit=unit_name(spec.label(), session_id), scope=str(scope),
                    argv=spec.argv, cwd=work_dir, tags=spec.tags,
                    description=spec.description, env=spec.env, created_at=created,
                    parent_id=_parent_id(), persistent=persistent, program=program, path=path,
                    requested_at=created, options=options.to_json(), env_files=env_files,
                    secret_env=list(secret_env), provider=provider, agent=dict(agent or {}),
                    worktree=tree[0], worktree_repo=tree[1], after=dependencies,
                    placement=placement)
    with Manager(scope) as manager:
        # Recorded before the start, so a unit of ours never runs without a record. The
        # append is made durable while the manager starts the unit (_launch), before
        # spawn returns: a power cut before then ends the unit too.
        store.update(lambda s: s.__setitem__(record.id, record), sync=bool(dependencies))
        faults.point("spawn.recorded")
        if dependencies:
            try:
                return _start_after(manager, store, record)
            except BaseException:
                if store.load()[record.id].invocation_id is None:
                    store.update(lambda s: s.pop(record.id, None))  # no unit: no session
                raise
        try:
            session, outcome = _launch(manager, store, record)
        except _NotSubmitted as failure:
            store.update(lambda s: s.pop(record.id, None))  # no unit: no session
            raise failure.error from None
    if outcome != "done" and not _program_ran(session):
        raise SpawnFailed(f"cannot run {spec.argv[0]}: {_start_failure(session, outcome)}",
                          hint=f"session {session.id} is recorded as {session.status}")
    return session


def spawn_agent(provider: str, request: AgentRequest, *, name: str | None = None,
                scope: Scope | None = None, **spawn_args: Any) -> Session:
    """Start an agent: PROVIDER's own headless command for REQUEST, as a session (the
    other arguments as for spawn). The agent binary is resolved on this PATH now."""
    from orch import agents

    scope = scope or current_scope()
    argv = agents.fresh_argv(provider, request, scope)
    env = dict(spawn_args.pop("env", None) or {})
    options = spawn_args.pop("options", None) or SpawnOptions()
    if scope is Scope.SYSTEM:
        env.setdefault("HOME", str(Path.home()))  # system units get none; agents need one
    state = agents.state_dir(provider, scope)
    if state is not None and options.sandbox:
        # The agent must keep its own state (config, conversations) even in a sandbox.
        directory, variable = state
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        options = dataclasses.replace(options, writable=(*options.writable, str(directory)))
        if variable:
            env.setdefault(variable, str(directory))
    return spawn(argv, name=name or provider, scope=scope, provider=provider,
                 agent=agents.request_to_json(request), env=env, options=options, **spawn_args)


def _text(settings: Mapping[str, object], key: str) -> str | None:
    value = settings.get(key)
    return value if isinstance(value, str) and value else None


def _texts(settings: Mapping[str, object], key: str) -> list[str]:
    value = settings.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def spawn_from_settings(command: Sequence[str], settings: Mapping[str, object], *,
                        name: str | None = None, description: str = "",
                        env: dict[str, str] | None = None,
                        scope: Scope | None = None, after: Sequence[str] = (),
                        placement: str | None = None) -> Session:
    """Spawn as the CLI does: COMMAND with spawn SETTINGS (the [spawn] keys of the
    config, checked; flags over profile over [spawn]). With a provider other than exec,
    COMMAND is one prompt for that agent."""
    options = options_from_settings(settings)
    common: dict[str, Any] = {
        "description": description, "tags": _texts(settings, "tags"), "env": env,
        "cwd": _text(settings, "cwd"), "scope": scope,
        "persistent": bool(settings.get("persistent")), "options": options,
        "env_files": _texts(settings, "env_files"),
        "secret_env": _texts(settings, "secret_env"),
        "worktree": bool(settings.get("worktree")), "after": list(after),
        "placement": placement}
    provider = _text(settings, "provider")
    if provider is None or provider == "exec":
        return spawn(command, name=name, **common)
    if len(command) != 1:
        raise UsageError(f"--provider {provider} takes one PROMPT argument (quote it), "
                         f"got {len(command)}")
    from orch.providers import AgentRequest

    turns = settings.get("max_turns")
    request = AgentRequest(prompt=command[0], model=_text(settings, "model"),
                           system_prompt=_text(settings, "system_prompt"),
                           auto_approve=bool(settings.get("auto_approve")),
                           add_dirs=options.add_dirs,
                           max_turns=turns if isinstance(turns, int) else None)
    return spawn_agent(provider, request, name=name, **common)


def resume(ref: str, prompt: str | None = None, scope: Scope | None = None) -> Session:
    """A new invocation of an ended agent session that resumes the agent's own
    conversation (claude --resume ...), saying PROMPT."""
    from orch import agents

    record, store = _lookup(ref, scope or current_scope())
    record = _collect(record, store)
    with Manager(Scope(record.scope)) as manager:
        if not _view(record, manager.unit(record.unit)).status.ended:
            raise OrchError(f"session {record.id[:8]} ({record.name}) is still running")
        argv = agents.resume_argv(record, prompt)
        program = resolve_program(argv[0], record.path or session_path(os.environ.get("PATH")),
                                  record.cwd)

        def next_run(sessions: Sessions) -> Record:
            current = sessions[record.id]
            if current.invocation_id != record.invocation_id:
                raise OrchError(f"session {record.id[:8]} changed meanwhile; try again")
            sessions[record.id] = dataclasses.replace(
                current.next_invocation(now_iso()), argv=argv, program=program)
            return sessions[record.id]

        fresh = store.update(next_run)
        manager.reset_failed(record.unit)
        try:
            session, _ = _launch(manager, store, fresh)
        except _NotSubmitted as failure:
            raise failure.error from None
    return session


def result(ref: str, scope: Scope | None = None) -> Session:
    """The session, with what its agent's output says of the run (final text, provider
    session id, usage) read from the journal and recorded."""
    record, store = _lookup(ref, scope or current_scope())
    with Manager(Scope(record.scope)) as manager:
        session = _view(record, manager.unit(record.unit))
    if session.status.ended:
        record = _collect(record, store)
        session = dataclasses.replace(session, **_agent_fields(record))
    return session


def _agent_fields(record: Record) -> dict[str, Any]:
    return {"final_result": record.final_result,
            "provider_session_id": record.provider_session_id,
            "usage": record.usage, "cost_usd": record.cost_usd}


# journald writes a line some milliseconds after the program wrote it: how long to give
# an ended session's last lines to arrive before reading its result from them.
RESULT_GRACE = 3.0


def _collect(record: Record, store: StateStore) -> Record:
    """Read an ended agent session's result from its output once, and record it."""
    if not record.provider or record.final_result is not None or record.invocation_id is None:
        return record
    from orch import agents
    from orch.journal import output_lines

    def complete(lines: list[str]) -> bool:
        found = agents.read_result(record, lines)
        return found.final_result is not None or found.is_error

    # Only a session that ended just now may still have lines on their way to the
    # journal: those are read on after the rest, which is read once.
    grace = RESULT_GRACE if _ended_recently(record) else 0.0
    found = agents.read_result(record, output_lines(record, complete=complete, grace=grace))

    def change(sessions: Sessions) -> Record:
        current = sessions.get(record.id)
        if current is None or current.invocation_id != record.invocation_id:
            return record
        sessions[record.id] = agents.with_result(current, found)
        return sessions[record.id]

    return store.update(change)


def _judge(manager: Manager, store: StateStore, record: Record) -> dict[str, bool | None]:
    """Each dependency of RECORD: ended well (True), otherwise (False), or not yet."""
    sessions = store.load()
    judged: dict[str, bool | None] = {}
    for dep in record.after:
        other = sessions.get(dep)
        if other is None:
            judged[dep] = False
            continue
        status = _view(other, manager.unit(other.unit)).status
        judged[dep] = status.succeeded if status.ended else None
    return judged


def _start_after(manager: Manager, store: StateStore, record: Record) -> Session:
    """Start a dependent now, never, or once its dependencies have all succeeded."""
    def settled(judged: dict[str, bool | None]) -> list[str]:
        return store.update(lambda s: dependencies.settle(s, record.id, judged))

    released = settled(_judge(manager, store, record))
    current = store.load()[record.id]
    if current.blocked is None and not released:
        _arm(manager, store, current)
        # A dependency may have ended while the path unit was being set up: its hook saw
        # no armed unit, so judge again; settle writes nothing twice.
        released = settled(_judge(manager, store, current))
    current = store.load()[record.id]
    if released:
        marker = after_dir(Scope(record.scope)) / f"{record.id}.go"
        if manager.unit(after_unit(record.unit)).loaded:
            marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            marker.write_text("released at spawn\n")
        else:
            session, _ = _launch(manager, store, current)
            return session
    return _view(store.load()[record.id], manager.unit(record.unit))


def _arm(manager: Manager, store: StateStore, record: Record) -> None:
    """Create RECORD's unit, not started, behind a path unit that starts it when its
    marker is written (by the last of its dependencies' exit hooks)."""
    props, secret_file = _unit_properties(store, record, SpawnOptions.from_json(record.options))
    marker = after_dir(Scope(record.scope)) / f"{record.id}.go"
    # The path unit watches the directory for the marker (MakeDirectory= would make the
    # marker itself a directory).
    marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    path_unit = after_unit(record.unit)
    try:
        job = manager.submit_transient(
            path_unit, after_properties(record.id, marker),
            aux=[(record.unit, props)])
        manager.wait_job(job, f"the start of {path_unit}")
    except BaseException:
        secrets.remove(secret_file)
        raise


def _ended_recently(record: Record) -> bool:
    if record.ended_at is None:
        return True  # ended by the unit's word, not yet by the hook's: just now
    try:
        ended = datetime.fromisoformat(record.ended_at)
    except ValueError:
        return False
    return (datetime.now(UTC) - ended).total_seconds() < RESULT_GRACE * 3


class _NotSubmitted(Exception):
    """The manager refused to create the unit: nothing runs."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _unit_properties(store: StateStore, record: Record, options: SpawnOptions
                     ) -> tuple[list[Property], Path | None]:
    """RECORD's unit properties (OPTIONS: its own, decoded), and the secrets file they
    point at (if any)."""
    scope = Scope(record.scope)
    spec = SessionSpec(argv=record.argv, name=record.name, description=record.description,
                       tags=record.tags, env=record.env, cwd=record.cwd)
    path = record.path or session_path(os.environ.get("PATH"))
    program = record.program or resolve_program(record.argv[0], record.env.get("PATH", path),
                                                record.cwd)
    values = secrets.gather(record.env_files, record.secret_env, os.environ)
    secret_file = secrets.write(scope, record.id, values) if values else None
    props = properties(spec, session_id=record.id, unit=record.unit, scope=scope,
                       program=program, cwd=record.cwd, path=path, state_dir=store.directory,
                       options=options, secrets_file=secret_file)
    return props, secret_file


def _launch(manager: Manager, store: StateStore, record: Record) -> tuple[Session, str]:
    """Start RECORD's current invocation as its transient unit and record what the
    manager says of it; the session and the start job's result."""
    options = SpawnOptions.from_json(record.options)
    props, secret_file = _unit_properties(store, record, options)
    try:
        try:
            job = manager.submit_transient(record.unit, props)
        except BaseException as err:
            raise _NotSubmitted(err) from err
        faults.point("launch.submitted")
        store.sync()
        faults.point("launch.synced")
        outcome = manager.wait_job(job, f"the start of {record.unit}")
    finally:
        # The manager read the file when it started the program. With --restart it reads
        # it again at each start: the file then lives (in tmpfs) until the session ends.
        if options.restart is Restart.NO:
            secrets.remove(secret_file)
    unit_now = manager.started(record.unit)
    faults.point("launch.started")

    def confirm(sessions: Sessions) -> Record:
        current = sessions.get(record.id)
        if current is None:  # reaped meanwhile: nothing left to confirm
            return record
        if unit_now.loaded and unit_now.invocation_id and \
                current.invocation_id in (None, unit_now.invocation_id):
            current = dataclasses.replace(
                current, invocation_id=unit_now.invocation_id,
                main_pid=unit_now.main_pid or current.main_pid,
                started_at=usec_to_iso(unit_now.exec_main_start_usec) or current.started_at)
            sessions[record.id] = current
        return current

    # What the manager says of the unit, kept for `ps` and `recover`: visible to every
    # reader at once, durable with the next synced change. A power cut before then
    # leaves the record as a spawn that did not confirm its unit, which recover treats
    # as an invocation that ended under it.
    confirmed = store.update(confirm, sync=False)
    faults.point("launch.confirmed")
    return _view(confirmed, unit_now, pid_known=True), outcome


# systemd.exec(5)'s exit codes for failures before the program runs.
_EXEC_FAILURES = {200: "cannot change to its working directory", 203: "exec failed",
                  217: "its user does not exist", 226: "cannot set up its namespace"}


def options_from_settings(settings: Mapping[str, object]) -> SpawnOptions:
    """SpawnOptions from spawn settings as [spawn] holds them (already checked)."""
    timeout = settings.get("timeout")
    memory = settings.get("memory_max")
    quota = settings.get("cpu_quota")
    tasks = settings.get("tasks_max")
    nice = settings.get("nice")
    dirs = settings.get("add_dirs")
    timeout_sec = memory_max = cpu_quota = None
    if timeout is not None or memory is not None or quota is not None:
        # The config machinery loads only for the settings that need its parsers.
        from orch.config import parse_duration_seconds, parse_percent, parse_size_bytes

        if isinstance(timeout, int | str):
            seconds = parse_duration_seconds(timeout)
            # 0 and infinity both mean no limit.
            timeout_sec = seconds if 0 < seconds < float("inf") else None
        memory_max = parse_size_bytes(memory) if isinstance(memory, int | str) else None
        cpu_quota = parse_percent(quota) if isinstance(quota, str) else None
    return SpawnOptions(
        timeout_sec=timeout_sec, memory_max=memory_max, cpu_quota=cpu_quota,
        tasks_max=tasks if isinstance(tasks, int) else None,
        nice=nice if isinstance(nice, int) else None,
        restart=Restart(str(settings.get("restart") or "no")),
        sandbox=bool(settings.get("sandbox")),
        add_dirs=tuple(os.path.abspath(d) for d in dirs if isinstance(d, str))
        if isinstance(dirs, list) else (),
    )


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
    """Every session of SCOPE, newest first, with live status from one listing pass:
    a session running as recorded costs no call of its own (see _as_recorded)."""
    scope = scope or current_scope()
    records = store_for(scope).load()
    chosen = [r for r in records.values() if tag is None or tag in r.tags]
    sessions = []
    with Manager(scope) as manager:  # connects even with no records: no manager, no answer
        listed = manager.loaded() if chosen else {}
        for record in chosen:
            entry = listed.get(record.unit)
            if entry is None:
                sessions.append(_view(record, GONE))
                continue
            path, states = entry
            recorded = _as_recorded(record, states)
            if recorded is not None:
                sessions.append(_view(record, recorded, pid_known=True))
            else:
                sessions.append(_view(record, manager.view(path, record.unit, states)))
    if running:
        sessions = [s for s in sessions if not s.status.ended]
    return sorted(sessions, key=lambda s: (s.created_at, s.id), reverse=True)


def _as_recorded(record: Record, states: tuple[str, str, str, int]) -> UnitView | None:
    """The unit as RECORD describes it, when the listing's STATES (load, active, sub,
    job) show it running as recorded; None when its properties must be read.

    The record names the invocation, MainPID and start that its spawn (or recover) read
    from the manager, and every end of an invocation runs the exit hook, which records
    it. So a record with no ending, whose unit is loaded, active and running with no job
    queued, describes the invocation that runs now: its MainPID is alive (the manager
    reaps its own children before it reports them gone, so the PID cannot have been
    reused meanwhile). A restarted unit (Restart=, `systemctl restart`) has an ending
    recorded by the hook that ran in between, and is read in full.
    """
    if states != ("loaded", "active", "running", 0):
        return None
    if record.invocation_id is None or not record.main_pid or record.intent is not None \
            or record.ending() is not None:
        return None
    return UnitView(loaded=True, active_state="active", sub_state="running",
                    invocation_id=record.invocation_id, main_pid=record.main_pid,
                    exec_main_start_usec=0, exec_main_start_mono_usec=0, exec_main_code=0,
                    exec_main_status=0, result="")


def _lookup(ref: str, scope: Scope) -> tuple[Record, StateStore]:
    store = store_for(scope)
    return _find(ref, store.load()), store


def find_record(ref: str, scope: Scope | None = None) -> Record:
    """The record REF names, without asking the manager anything."""
    return _lookup(ref, scope or current_scope())[0]


def show(ref: str, scope: Scope | None = None) -> Session:
    """The session REF names (id, id prefix, name, unit name, or `self`); for an ended
    agent session, with its result read from its output."""
    return result(ref, scope)


def logs_command(ref: str, scope: Scope | None = None, *, lines: int | None = None,
                 follow: bool = False, since: str | None = None,
                 output: LogFormat | str = "short") -> list[str]:
    """The journalctl command line that shows the session's output (OUTPUT: a
    LogFormat or its name)."""
    from orch.journal import LogFormat, logs_argv

    record, _ = _lookup(ref, scope or current_scope())
    return logs_argv(record, lines=lines, follow=follow, since=since,
                     output=LogFormat(output))


def logs(ref: str, scope: Scope | None = None, *, lines: int | None = None,
         since: str | None = None, output: LogFormat | str = "cat") -> str:
    """The session's output so far, from the journal (OUTPUT: a LogFormat or its name)."""
    from orch.journal import LogFormat, read_logs

    record, _ = _lookup(ref, scope or current_scope())
    return read_logs(record, lines=lines, since=since, output=LogFormat(output))


def follow_logs(ref: str, write: Callable[[str], object], scope: Scope | None = None, *,
                lines: int | None = None, since: str | None = None,
                output: LogFormat | str = "short") -> WaitOutcome:
    """WRITE the session's output (or its last LINES lines), then its new lines as they
    come, until it has ended and its last lines are in; how it ended, as `wait` saw it.
    The end is watched through the manager's signals (wait), the output through the
    journal; a session that has already ended is written whole at once."""
    import threading

    from orch import journal

    scope = scope or current_scope()
    record, store = _lookup(ref, scope)
    end = journal.SessionEnd()
    outcomes: list[WaitOutcome] = []
    failures: list[BaseException] = []

    def watch() -> None:
        try:
            outcomes.append(wait([record.id], scope))
            latest = store.load().get(record.id, record)
            end.set(RESULT_GRACE if _ended_recently(latest) else 0.0)
        except BaseException as error:  # raised again in the caller's thread, below
            failures.append(error)
            end.set(0.0)

    def invocations() -> list[tuple[str, int]]:
        return journal.invocation_starts(store.load().get(record.id, record))

    watcher = threading.Thread(target=watch, name="orch-logs-end", daemon=True)
    watcher.start()
    journal.follow_logs(record, write, end, lines=lines, since=since,
                        output=journal.LogFormat(output), refresh=invocations)
    watcher.join()
    if failures:
        raise failures[0]
    return outcomes[0]


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
    units = [records[i].unit for i in _with_dependencies(wanted, records)]
    latest: list[Session] = []

    with Manager(scope) as manager:
        def current(session_id: str, now: Sessions) -> Session:
            record = now.get(session_id, records[session_id])
            unit = manager.unit(record.unit)
            session = _view(record, unit)
            if session.status.ended and record.provider:
                # The agent's own verdict (claude's is_error) can turn an exit 0 to failed.
                session = _view(_collect(record, store), unit)
            return session

        def done() -> bool:
            nonlocal latest
            now = store.load()
            latest = [current(i, now) for i in wanted]
            ended = sum(1 for s in latest if s.status.ended)
            return ended > 0 if any_ else ended == len(latest)

        finished = manager.wait_until(units, done, timeout)
    return WaitOutcome(latest, timed_out=not finished)


def _with_dependencies(session_ids: list[str], records: Sessions) -> list[str]:
    """SESSION_IDS and every session they wait on (--after), transitively. A session
    blocked by a failed dependency never changes its own unit: the exit hook of the
    dependency records the block, and the dependency's unit ending after its hook is
    the signal that tells `wait` to look."""
    found = list(session_ids)
    for session_id in found:  # grows as it goes
        record = records.get(session_id)
        found += [d for d in (record.after if record else ()) if d in records and d not in found]
    return found


def _mark_all(store: StateStore, session_ids: Sequence[str], intent: Intent) -> None:
    """_mark() for each of SESSION_IDS that is still recorded, in one change."""
    def change(sessions: Sessions) -> None:
        for session_id in session_ids:
            record = sessions.get(session_id)
            if record is not None and record.ending() is None:
                sessions[session_id] = dataclasses.replace(record, intent=intent)

    store.update(change)


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
    return read_text_arg(path, "--file").removesuffix("\n")



@dataclass(frozen=True)
class RecoverReport:
    """What `recover` found and did: each session's outcome, and the sessions as now."""

    outcomes: dict[str, Outcome]
    sessions: list[Session]
    errors: list[str]

    @property
    def counts(self) -> dict[str, int]:
        """How many sessions had each outcome."""
        from orch.recovery import counts

        return counts(self.outcomes.values())


def recover(scope: Scope | None = None) -> RecoverReport:
    """Reconcile every record of SCOPE with its manager: refresh the running, record how
    the ended ended (from the exit hook, the unit, or the journal), call the rest lost,
    start persistent sessions again, and adopt units of ours that have no record.

    Idempotent, and safe beside concurrent spawns and reaps: every write re-checks the
    record under the state lock.
    """
    from orch.journal import exit_evidence
    from orch.procs import main_alive
    from orch.recovery import Outcome, decide

    scope = scope or current_scope()
    store = store_for(scope)
    records = store.load()
    outcomes: dict[str, Outcome] = {}
    errors: list[str] = []
    with Manager(scope) as manager:
        loaded = manager.loaded()
        views = {r.id: _unit_from(manager, loaded, r.unit) for r in records.values()}
        needs_journal = [r for r in records.values()
                         if r.ending() is None and r.invocation_id is not None
                         and views[r.id].invocation_id != r.invocation_id]
        journal = exit_evidence((r.unit for r in needs_journal), str(scope)) \
            if needs_journal else {}
        decisions = {}
        for record in records.values():
            view = views[record.id]
            alive = view.loaded and view.main_pid > 0 and main_alive(view)
            evidence = journal.get(record.invocation_id or "")
            decisions[record.id] = decide(record, view, alive, evidence)
        written = store.update(lambda s: _apply(s, records, decisions))
        faults.point("recover.decided")
        for session_id, decision in decisions.items():
            outcomes[session_id] = decision.outcome
            if decision.outcome in (Outcome.ENDED, Outcome.ALREADY_ENDED, Outcome.LOST):
                secrets.discard(scope, session_id)
            if decision.restart and session_id in written:
                outcomes[session_id] = _restart(manager, store, session_id, errors)
        for session_id in _adopt(manager, store, loaded, set(records), str(scope)):
            outcomes[session_id] = Outcome.ADOPTED
        for record in store.load().values():
            if dependencies.waiting(record) and after_unit(record.unit) not in loaded:
                # A reboot took its path unit: judge its dependencies again, and wait anew.
                _start_after(manager, store, record)
                views.pop(record.id, None)
        final = store.load()
        # Only the units recover started (or found new) changed since it read them.
        for session_id, outcome in outcomes.items():
            if outcome in (Outcome.RESTARTED, Outcome.ADOPTED) or session_id not in views:
                views[session_id] = manager.unit(final[session_id].unit) \
                    if session_id in final else GONE
        sessions = [_view(final[i], views[i]) for i in outcomes if i in final]
    return RecoverReport(outcomes, sessions, errors)


def _unit_from(manager: Manager, loaded: dict[str, tuple[bytes, tuple[str, str, str, int]]],
               unit: str) -> UnitView:
    if unit not in loaded:
        return GONE
    path, states = loaded[unit]
    return manager.view(path, unit, states)


def _apply(sessions: Sessions, seen: Sessions, decisions: dict[str, Decision]) -> set[str]:
    """Write each decision whose record is unchanged since it was read; their ids."""
    applied = set()
    for session_id, decision in decisions.items():
        if sessions.get(session_id) != seen[session_id]:
            continue  # changed by a concurrent spawn, hook or reap: its next run decides
        sessions[session_id] = decision.record
        applied.add(session_id)
    return applied


def _restart(manager: Manager, store: StateStore, session_id: str,
             errors: list[str]) -> Outcome:
    """Start a persistent session again: a new invocation of the same session."""
    from orch import agents
    from orch.recovery import Outcome

    def archive(sessions: Sessions) -> Record | None:
        record = sessions.get(session_id)
        if record is None:
            return None
        if record.invocation_id is None and record.ending() is None:
            # Its start was never confirmed (a crash mid-spawn): nothing ran to archive.
            sessions[session_id] = dataclasses.replace(record, requested_at=now_iso())
        else:
            sessions[session_id] = record.next_invocation(now_iso())
        return sessions[session_id]

    record = store.update(archive)
    if record is None:
        return Outcome.STARTING
    faults.point("recover.archived")
    if agents.can_resume(record):
        # The agent picks up its own conversation rather than starting over.
        argv = agents.resume_argv(record, None)
        record = store.update(lambda s: _set_argv(s, session_id, argv)) or record
    manager.reset_failed(record.unit)
    try:
        _launch(manager, store, record)
    except _NotSubmitted as failure:
        errors.append(f"cannot restart {record.id[:8]} ({record.name}): {failure.error}")
        return Outcome.LOST
    return Outcome.RESTARTED


def _set_argv(sessions: Sessions, session_id: str, argv: list[str]) -> Record | None:
    record = sessions.get(session_id)
    if record is None:
        return None
    sessions[session_id] = dataclasses.replace(record, argv=argv, program=None)
    return sessions[session_id]


def _adopt(manager: Manager, store: StateStore,
           loaded: dict[str, tuple[bytes, tuple[str, str, str, int]]], known: set[str],
           scope: str) -> list[str]:
    """Record units of ours that have no record (a lost state file, a crash mid-spawn)."""
    from orch.recovery import record_from_unit

    known_units = {r.unit for r in store.load().values()}
    found: list[Record] = []
    for unit, (path, states) in loaded.items():
        if unit in known_units or not is_orch_unit(unit):
            continue
        record = record_from_unit(manager.facts(unit, path, states), scope,
                                  str(store.directory))
        if record is not None and record.id not in known:
            found.append(record)

    def insert(sessions: Sessions) -> list[str]:
        added = []
        for record in found:
            if record.id not in sessions and all(r.unit != record.unit
                                                 for r in sessions.values()):
                sessions[record.id] = record
                added.append(record.id)
        return added

    if not found:
        return []
    faults.point("recover.adopting")
    return store.update(insert)


DEFAULT_REAP_AGE = 7 * 24 * 3600.0


def reap(scope: Scope | None = None, *, older_than: float = DEFAULT_REAP_AGE,
         everything: bool = False, dry_run: bool = False) -> list[Session]:
    """Remove ended sessions that ended more than OLDER_THAN seconds ago (0: all ended
    ones) and reset their failed units; with EVERYTHING, stop running sessions first and
    remove them too. A running session is never removed otherwise, nor one whose spawn
    is still in flight. The reaped sessions."""
    from orch import worktree as worktrees

    if older_than < 0:
        raise UsageError("--older-than must be 0 or more")
    scope = scope or current_scope()
    store = store_for(scope)
    sessions = list_sessions(scope)
    now = datetime.now(UTC)
    chosen = [s for s in sessions
              if (s.status.ended and _age(s, now) >= older_than)
              or (everything and not s.status.ended and not _in_flight(s))]
    if dry_run or not chosen:
        return chosen
    with Manager(scope) as manager:
        running = [s for s in chosen if not s.status.ended]
        if running:
            _mark_all(store, [s.id for s in running], Intent.STOP)
            manager.stop_all([s.unit for s in running])
            faults.point("reap.stopped")
        for session in chosen:
            manager.reset_failed(session.unit)
            faults.point("reap.reset")
            secrets.discard(scope, session.id)
            if session.after:
                manager.stop(after_unit(session.unit))
                (after_dir(scope) / f"{session.id}.go").unlink(missing_ok=True)
    records = store.load()
    for session in chosen:
        record = records.get(session.id)
        if record is not None and record.worktree and record.worktree_repo:
            worktrees.remove(record.worktree, record.worktree_repo)
    gone = {s.id: s.invocation_id for s in chosen}

    def remove(records: Sessions) -> None:
        for session_id, invocation_id in gone.items():
            record = records.get(session_id)
            # A session restarted since it was chosen is not the one that was chosen.
            if record is not None and record.invocation_id in (invocation_id, None):
                del records[session_id]

    store.update(remove)
    return chosen


def _in_flight(session: Session) -> bool:
    """A spawn that has not started its unit yet: reap leaves it, as recover does, since
    removing its record now would leave the unit it is about to start without one."""
    return session.status is Status.STARTING and session.invocation_id is None \
        and not session.after


def _age(session: Session, now: datetime) -> float:
    """Seconds since the session ended (since it was last heard of, if lost)."""
    stamp = session.ended_at or session.started_at or session.created_at
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return float("inf")
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (now - then).total_seconds()
