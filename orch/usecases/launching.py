"""Starting a record's unit: at once (launch), or behind its dependencies (--after:
start_after arms a path unit that starts it when they have all succeeded). Spawn,
resume and recover's restarts all start units through here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orch import dependencies, faults, secrets
from orch.connection import PROGRAM_EXITED
from orch.dbus import Property
from orch.errors import ManagerTimeout, SpawnFailed
from orch.events import Event, Kind
from orch.files import OpenFor
from orch.frozen import replace
from orch.locate import resolve_program, session_path
from orch.scope import Scope
from orch.session import Record, Session, Status, usec_to_iso
from orch.spec import (
    Restart,
    SessionSpec,
    SpawnOptions,
    after_marker,
    after_properties,
    after_unit,
    properties,
    start_guard,
    start_hook,
    tty_socket,
)
from orch.state import Sessions
from orch.usecases.common import view
from orch.usecases.transitions import note, run_hooks, tell_blocked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.runtime import ManagerPort, Runtime

Secrets = Mapping[str, str]


class NotSubmitted(Exception):
    """The manager refused to create the unit: nothing runs."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def relaunch_secrets(record: Record) -> Secrets:
    """RECORD's secrets for a new run that a command asks for (resume, send, recover):
    its env files read again, its secret variables from this environment."""
    return secrets.gather(record.env_files, record.secret_env, os.environ)


def unit_properties(rt: Runtime, record: Record, options: SpawnOptions,
                    values: Secrets | None = None, *, started_by_manager: bool = False
                    ) -> tuple[list[Property], Path | None]:
    """RECORD's unit properties (OPTIONS: its own, decoded), and the secrets file they
    point at (if any). VALUES are its secrets if the caller has read them already.
    STARTED_BY_MANAGER: its first start is the manager's (a path unit's), not a spawn's."""
    scope = Scope(record.scope)
    spec = SessionSpec(argv=record.argv, name=record.name, description=record.description,
                       tags=record.tags, env=record.env, cwd=record.cwd)
    path = record.path or session_path(os.environ.get("PATH"))
    program = record.program or resolve_program(record.argv[0], record.env.get("PATH", path),
                                                record.cwd)
    if values is None:
        values = relaunch_secrets(record)
    secret_file = secrets.write(scope, record.id, values) if values else None
    if options.tty:  # the holder's socket directory: a sandbox cannot make it
        tty_socket(scope, record.id).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    props = properties(spec, session_id=record.id, unit=record.unit, scope=scope,
                       program=program, cwd=record.cwd, path=path, state_dir=rt.store.directory,
                       options=options, secrets_file=secret_file,
                       conversation=bool(record.agent.get("interactive")),
                       git_dir=os.path.join(record.worktree_repo, ".git")
                       if record.worktree_repo else None)
    if started_by_manager or options.restart is not Restart.NO:
        # A start no spawn makes (a path unit's, a Restart='s) checks its directory, and
        # is recorded and told as it happens, by the start hook.
        props += [start_guard(record.cwd), start_hook(rt.store.directory)]
    return props, secret_file


def _listening(record: Record, props: list[Property], message: bytes | None) -> OpenFor:
    """For a conversation, its input, opened with MESSAGE in it to be read first, in
    PROPS for the manager while the block creates the unit: the manager holds its own
    descriptor after that. Nothing for any other session."""
    def open_fd() -> int:
        if not record.agent.get("interactive"):
            return -1
        from orch import conversation

        return conversation.open_input(Scope(record.scope), record.id, quiet=not message)

    def prepare(fd: int) -> None:
        if message:  # an empty pipe of PIPE_BYTES takes a whole message
            os.write(fd, message)
        props.append(("StandardInputFileDescriptor", "h", fd))

    return OpenFor(open_fd, prepare)


def launch(rt: Runtime, record: Record, values: Secrets | None = None,
           message: bytes | None = None) -> tuple[Session, str]:
    """Start RECORD's current invocation as its transient unit and record what the
    manager says of it; the session and the start job's result. VALUES as for
    unit_properties; MESSAGE, a conversation's first input. NotSubmitted if the manager
    created no unit."""
    manager = rt.manager_of(Scope(record.scope))
    store = rt.store
    if not os.path.isdir(record.cwd):  # removed since it was spawned (queued, resumed)
        raise NotSubmitted(SpawnFailed(f"cannot run {record.argv[0]}: its working directory "
                                       f"{record.cwd} no longer exists"))
    options = SpawnOptions.from_json(record.options)
    props, secret_file = unit_properties(rt, record, options, values)
    try:
        try:
            with _listening(record, props, message):
                job = manager.submit_transient(record.unit, props)
        except ManagerTimeout as err:
            # No answer is not a refusal: the manager may create the unit yet, and its
            # exit hook then records how it went. The record stays for that.
            raise ManagerTimeout(err.message, hint=f"session {record.id} stays recorded: "
                                 f"`orch show {record.id[:8]}` tells whether it "
                                 "started") from None
        except BaseException as err:
            raise NotSubmitted(err) from err
        faults.point("launch.submitted")
        # The record's append (update(sync=False)) is made durable while the manager
        # runs the start job, whose end queues on the connection meanwhile: the
        # fdatasync costs only what it outlasts the job.
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
    if outcome == PROGRAM_EXITED:  # it ran: its start job would have ended 'done' at its exec
        outcome = "done"

    started: list[Event] = []

    def confirm(sessions: Sessions) -> Record:
        current = sessions.get(record.id)
        if current is None:  # reaped meanwhile: nothing left to confirm
            return record
        if unit_now.loaded and unit_now.invocation_id and \
                current.invocation_id in (None, unit_now.invocation_id):
            if outcome == "done" and current.started_at is None and current.result is None:
                # Told here, under the lock, unless its exit hook ran first and told it.
                started.append(note(store.directory, current, Kind.STARTED, Status.RUNNING))
            current = replace(
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
    for event in started:
        run_hooks(rt, confirmed, event)
    return view(confirmed, unit_now, pid_known=True), outcome


def _judge(manager: ManagerPort, sessions: Sessions, record: Record) -> dict[str, bool | None]:
    """Each dependency of RECORD: ended well (True), otherwise (False), or not yet."""
    judged: dict[str, bool | None] = {}
    for dep in record.after:
        other = sessions.get(dep)
        if other is None:
            judged[dep] = False
            continue
        status = view(other, manager.unit(other.unit)).status
        judged[dep] = status.succeeded if status.ended else None
    return judged


def settle_now(rt: Runtime, record: Record) -> list[str]:
    """Judge the dependencies of RECORD, a new dependent, as they are now (the manager
    tells of those not yet ended in their records) and settle it: blocked (and told) if
    one failed; the ids released, it if they all succeeded."""
    manager = rt.manager_of(Scope(record.scope))
    judged = _judge(manager, rt.store.load(), record)
    released, blocked = rt.store.update(dependencies.telling_blocked(
        lambda s: dependencies.settle(s, record.id, judged)))
    tell_blocked(rt, blocked)  # it (and none other: nothing waits on it yet)
    return released


def start_after(rt: Runtime, record: Record, values: Secrets | None = None,
                message: bytes | None = None) -> Session:
    """Start a dependent now, never, or once its dependencies have all succeeded.
    VALUES as for unit_properties, MESSAGE as for launch."""
    manager = rt.manager_of(Scope(record.scope))
    store = rt.store
    released = settle_now(rt, record)
    current = store.load()[record.id]
    if current.blocked is None and not released:
        _arm(rt, manager, current, values, message)
        # A dependency may have ended while the path unit was being set up: its hook saw
        # no armed unit, so judge again; settle writes nothing twice.
        released = settle_now(rt, current)
    current = store.load()[record.id]
    if released:
        marker = after_marker(Scope(record.scope), record.id)
        if manager.unit(after_unit(record.unit)).loaded:
            marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            marker.write_text("released at spawn\n")
        else:
            session, _ = launch(rt, current, values, message)
            return session
    return view(store.load()[record.id], manager.unit(record.unit))


def _arm(rt: Runtime, manager: ManagerPort, record: Record, values: Secrets | None,
         message: bytes | None) -> None:
    """Create RECORD's unit, not started, behind a path unit that starts it when its
    marker is written (by the last of its dependencies' exit hooks)."""
    props, secret_file = unit_properties(rt, record, SpawnOptions.from_json(record.options),
                                         values, started_by_manager=True)
    marker = after_marker(Scope(record.scope), record.id)
    # The path unit watches the directory for the marker (MakeDirectory= would make the
    # marker itself a directory).
    marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    path_unit = after_unit(record.unit)
    try:
        with _listening(record, props, message):
            job = manager.submit_transient(
                path_unit, after_properties(record.id, marker),
                aux=[(record.unit, props)])
        manager.wait_job(job, f"the start of {path_unit}")
    except BaseException:
        secrets.remove(secret_file)
        raise

