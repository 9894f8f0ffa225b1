"""Starting sessions: spawn (a program, or with --after behind its dependencies),
spawn_agent (a provider's headless command) and resume (an ended agent's next turn)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from orch import faults, secrets
from orch.argv_template import placeholders
from orch.connection import NOT_RUN
from orch.errors import OrchError, SpawnFailed, UsageError
from orch.events import Kind
from orch.frozen import replace
from orch.ids import new_session_id
from orch.locate import resolve_cwd, resolve_program, session_path
from orch.scope import Scope
from orch.session import Record, Session, Status
from orch.spec import SessionSpec, SpawnOptions, validate
from orch.state import Sessions
from orch.units import unit_name
from orch.usecases.common import collect, find, lookup, view
from orch.usecases.launching import (
    NotSubmitted,
    launch,
    relaunch_secrets,
    settle_now,
    start_after,
)
from orch.usecases.transitions import tell

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from orch.config import Config
    from orch.providers import AgentRequest
    from orch.runtime import Runtime

# systemd.exec(5)'s exit codes for failures before the program runs.
EXEC_FAILURES = {200: "cannot change to its working directory", 203: "exec failed",
                 217: "its user does not exist", 226: "cannot set up its namespace"}


def parent_id() -> str | None:
    """The session this process runs in (ORCH_SESSION_ID, if a well-formed id)."""
    parent = os.environ.get("ORCH_SESSION_ID")
    if not parent:
        return None
    import uuid  # only here: it loads platform

    try:
        return str(uuid.UUID(parent))
    except ValueError:
        return None


def _keeps_its_state(rt: Runtime, provider: str, config: Config | None,
                     options: SpawnOptions, env: dict[str, str],
                     values: dict[str, str], work_dir: str) -> SpawnOptions:
    """OPTIONS with the agent's own state (its config, its conversations) writable in
    its sandbox: where the caller's environment moves it (ENV, or VALUES from its env
    files, which win: CODEX_HOME=..., GEMINI_CLI_HOME=...; a relative one, in WORK_DIR,
    where the agent runs), there; else in its home, named to it in ENV."""
    from orch import agents

    # Its env files' values over --env's, as the manager applies EnvironmentFile= over
    # Environment= (see orch.secrets).
    state = agents.state_dir(provider, rt.scope, config, {**env, **values}, work_dir)
    if state is None:
        return options
    directory, variable = state
    if variable:
        env[variable] = str(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return replace(options, writable=(*options.writable, str(directory)))


def spawn(rt: Runtime, argv: Sequence[str], *, name: str | None = None,
          description: str = "", tags: Iterable[str] = (), env: dict[str, str] | None = None,
          cwd: str | None = None, persistent: bool = False,
          options: SpawnOptions | None = None, env_files: Sequence[str] = (),
          secret_env: Sequence[str] = (), worktree: bool = False, provider: str | None = None,
          agent: dict[str, Any] | None = None, after: Sequence[str] = (),
          placement: str | None = None, message: bytes | None = None,
          queue: str | None = None, priority: int = 0, config: Config | None = None
          ) -> Session:
    """Start ARGV as a new session of the runtime's scope (orch.api.spawn says more).
    Its secrets (ENV_FILES, SECRET_ENV) are read once, before anything is recorded.
    MESSAGE: a conversation's first input (AGENT asks for an interactive one). QUEUE:
    start it when that queue has room (CONFIG: the configuration already read)."""
    scope = rt.scope
    store = rt.store
    options = options or SpawnOptions()
    if priority and queue is None:  # the command line says so in its own words first
        raise UsageError("priority orders a queue: give queue too")
    if provider is not None:  # a library caller's: one that nothing could read the output of
        from orch import agents

        agents.provider_spec(provider, scope, config)
    spec = SessionSpec(argv=list(argv), name=name, description=description,
                       tags=list(tags), env=dict(env or {}), cwd=cwd)
    validate(spec)
    work_dir = resolve_cwd(cwd)
    for directory in options.add_dirs:
        if not os.path.isdir(directory):
            raise UsageError(f"--add-dir {directory}: no such directory")
    env_files = [os.path.abspath(f) for f in env_files]
    values = secrets.gather(env_files, secret_env, os.environ)  # bad files refused now
    path = session_path(os.environ.get("PATH"))
    program = resolve_program(spec.argv[0], spec.env.get("PATH", path), work_dir)
    session_id = new_session_id()
    created = rt.now_iso()
    known = store.load() if after else {}
    dependencies = list(dict.fromkeys(find(ref, known).id for ref in after))
    if queue is not None:
        if config is None:
            from orch.config import load

            config = load(scope)
        config.queue_limits(queue)  # a queue the file does not define is refused now
    tree: tuple[str | None, str | None] = (None, None)
    if worktree:
        from orch import worktree as worktrees

        tree = worktrees.create(work_dir, store.directory / "worktrees",
                                f"{spec.label()}-{session_id[:8]}")
        # The same directory of its own checkout: a subdirectory stays one.
        work_dir = os.path.normpath(os.path.join(tree[0], os.path.relpath(
            os.path.realpath(work_dir), os.path.realpath(tree[1]))))
    if provider is not None and options.sandbox:  # where it runs: a relative home is there
        options = _keeps_its_state(rt, provider, config, options, spec.env, values, work_dir)
    record = Record(id=session_id, name=spec.label(),
                    unit=unit_name(spec.label(), session_id), scope=str(scope),
                    argv=spec.argv, cwd=work_dir, tags=spec.tags,
                    description=spec.description, env=spec.env, created_at=created,
                    parent_id=parent_id(), persistent=persistent, program=program, path=path,
                    requested_at=created, options=options.to_json(), env_files=env_files,
                    secret_env=list(secret_env), provider=provider, agent=dict(agent or {}),
                    worktree=tree[0], worktree_repo=tree[1], after=dependencies,
                    placement=placement,
                    provider_session_id=(agent or {}).get("provider_session_id"),
                    queue=queue, priority=priority)
    rt.manager_of(scope)  # no manager, no record: connect first
    # Recorded before the start, so a unit of ours never runs without a record. The
    # append is made durable while the manager starts the unit (launch), before
    # spawn returns: a power cut before then ends the unit too.
    store.update(lambda s: s.__setitem__(record.id, record), sync=bool(dependencies))
    faults.point("spawn.recorded")
    tell(rt, record, Kind.SPAWNED, Status.QUEUED if record.queued else Status.STARTING)
    if queue is not None:
        if dependencies:  # it joins its queue once they have all succeeded
            settle_now(rt, record)
            settled = store.load()[record.id]
            if settled.blocked is not None:  # one failed: it never runs
                from orch.systemd import GONE

                return view(settled, GONE)
        return _enqueue(rt, record, values, config)
    if dependencies:
        try:
            return start_after(rt, record, values, message)
        except BaseException:
            if store.load()[record.id].invocation_id is None:
                store.update(lambda s: s.pop(record.id, None))  # no unit: no session
            raise
    try:
        session, outcome = launch(rt, record, values, message)
    except NotSubmitted as failure:
        store.update(lambda s: s.pop(record.id, None))  # no unit: no session
        raise failure.error from None
    if outcome != "done" and not program_ran(session):
        raise SpawnFailed(f"cannot run {spec.argv[0]}: {start_failure(session, outcome)}",
                          hint=f"session {session.id} is recorded as {session.status}")
    return session


def _enqueue(rt: Runtime, record: Record, values: dict[str, str],
             config: Config | None) -> Session:
    """Put a recorded RECORD in its queue, and start what the queue can start now (it,
    if its turn has come). Its secrets wait in the runtime directory till it starts."""
    from orch.systemd import GONE
    from orch.usecases import queueing

    if values:
        secrets.write(Scope(record.scope), record.id, values)
    rt.store.sync()  # durable before it is told queued: a power cut must not lose it
    started = queueing.admit(rt, [str(record.queue)], config)
    mine = [s for s in started.sessions if s.id == record.id]
    if mine:
        session = mine[0]
        if session.status.ended and not program_ran(session):
            raise SpawnFailed(f"cannot run {record.argv[0]}: "
                              f"{start_failure(session, str(session.result))}",
                              hint=f"session {session.id} is recorded as {session.status}")
        return session
    current = rt.store.load()
    if current[record.id].blocked is not None:
        raise SpawnFailed(f"cannot run {record.argv[0]}: {current[record.id].blocked}")
    from orch.queues import in_line, placed

    session = placed(view(current[record.id], GONE), in_line(current, rt.now_iso()))
    where = f"#{session.position}" if session.position else "after its dependencies"
    where += f"; waiting for {session.waiting_for}" if session.waiting_for else ""
    tell(rt, current[record.id], Kind.QUEUED, session.status, f"queue {record.queue} {where}")
    return session


def spawn_agent(rt: Runtime, provider: str, request: AgentRequest, *,
                name: str | None = None, description: str = "", tags: Iterable[str] = (),
                env: dict[str, str] | None = None, cwd: str | None = None,
                persistent: bool = False, options: SpawnOptions | None = None,
                env_files: Sequence[str] = (), secret_env: Sequence[str] = (),
                worktree: bool = False, after: Sequence[str] = (),
                placement: str | None = None, config: Config | None = None,
                queue: str | None = None, priority: int = 0) -> Session:
    """Start an agent: PROVIDER's own headless command for REQUEST, as a session (the
    other arguments as for spawn). The agent binary is resolved on this PATH now.
    CONFIG: the configuration already read, where the provider may be defined."""
    from orch import agents

    scope = rt.scope
    if config is None:  # read once: each provider lookup below would read it again
        from orch.config import load

        config = load(scope)
    spec = agents.provider_spec(provider, scope, config)
    if request.provider_session_id is None:
        # An agent can be cut off before it ever ends (and says its conversation's id),
        # and some never say it (copilot): where the provider lets the caller choose the
        # id, it is chosen now and recorded, to resume the conversation by.
        template = spec.live_argv if request.interactive else spec.argv
        if template and "provider_session_id" in placeholders(template):
            import uuid

            request = replace(request, provider_session_id=str(uuid.uuid4()))
    argv = agents.fresh_argv(provider, request, scope, config)
    env = dict(env or {})
    options = options or SpawnOptions()
    if scope is Scope.SYSTEM:
        env.setdefault("HOME", str(Path.home()))  # system units get none; agents need one
    message = None
    if request.interactive:  # the prompt is the conversation's first message
        from orch import conversation

        message = conversation.user_message(spec.results, request.prompt or "")
    return spawn(rt, argv, name=name or provider, description=description, tags=tags,
                 env=env, cwd=cwd, persistent=persistent, options=options,
                 env_files=env_files, secret_env=secret_env, worktree=worktree,
                 provider=provider, agent=agents.request_to_json(request), after=after,
                 placement=placement, message=message, queue=queue, priority=priority,
                 config=config)


def resume(rt: Runtime, ref: str, prompt: str | None = None) -> Session:
    """A new invocation of an ended agent session that resumes the agent's own
    conversation (claude --resume ...), saying PROMPT."""
    from orch import agents
    from orch.usecases.unattended import cancel_wake, next_run

    record = collect(rt, lookup(rt, ref))
    manager = rt.manager_of(Scope(record.scope))
    status = view(record, manager.unit(record.unit)).status
    if not status.ended and not status.waiting_to_resume:
        unrun = status is Status.QUEUED or record.invocation_id is None  # (or its --after)
        raise OrchError(f"session {record.id[:8]} ({record.name}) is "
                        f"{'' if unrun else 'still '}{status}",
                        hint="it has not run yet" if unrun else
                        "`orch send` gives it its next message" if status is Status.IDLE
                        else None)
    if status.waiting_to_resume and not agents.can_resume(record):
        from orch.usecases.unattended import resume as run_again

        cancel_wake(rt, record)  # now, as its timer would have: from the start
        return run_again(rt, record, prompt)
    argv = agents.resume_argv(record, prompt)
    program = resolve_program(argv[0], record.path or session_path(os.environ.get("PATH")),
                              record.cwd)
    if status.waiting_to_resume:
        cancel_wake(rt, record)  # resumed now, not by its timer too

    def again(sessions: Sessions) -> Record:
        current = sessions[record.id]
        if current.invocation_id != record.invocation_id:
            raise OrchError(f"session {record.id[:8]} changed meanwhile; try again")
        sessions[record.id] = replace(next_run(current), argv=argv, program=program)
        return sessions[record.id]

    def told(fresh: Record) -> None:
        retried = record.wait_kind == "transient" and status.waiting_to_resume
        tell(rt, fresh, Kind.RETRIED if retried else Kind.RESUMED, Status.STARTING,
             record.waiting_for if status.waiting_to_resume else None)

    message = None
    if record.agent.get("interactive") and prompt:  # said as its first message
        from orch import conversation

        message = conversation.user_message(agents.output_format(record), prompt)
    values = relaunch_secrets(record)  # one missing refuses it before anything changes
    fresh = rt.store.update(again)
    told(fresh)
    manager.reset_failed(record.unit)
    try:
        session, _ = launch(rt, fresh, values, message=message)
    except NotSubmitted as failure:
        raise failure.error from None
    return session


def program_ran(session: Session) -> bool:
    """Whether the program itself ran: a start job also fails when a program that did run
    exits at once; only statuses NOT_RUN are systemd's own (it could not be run)."""
    if session.exit_signal is not None:
        return True
    return session.exit_code is not None and session.exit_code not in NOT_RUN


def start_failure(session: Session, outcome: str) -> str:
    """Why a start job that did not run the program failed, in a few words."""
    if session.exit_code is not None:
        reason = EXEC_FAILURES.get(session.exit_code, "it exited at once")
        return f"{reason} (exit status {session.exit_code})"
    if session.exit_signal:
        return f"killed by {session.exit_signal} while starting"
    return f"the start job ended {outcome!r}"
