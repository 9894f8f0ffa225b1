"""orch's library API: every operation the CLI offers, as typed functions.

Each function builds the runtime of its scope (orch.runtime: the state store, a manager
connection opened when first needed, the clock) and runs its use case (orch.usecases),
where the logic lives. Data flows one way: a call builds a spec, the systemd adapter
carries it to the manager, and the state store keeps the record; queries read both and
compose a view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from orch.errors import UsageError
from orch.runtime import Runtime
from orch.runtime import store_for as store_for
from orch.scope import Scope
from orch.session import Record, Session

# Each use case, and agents, config, the journal, psutil and recovery, load where they
# are used: a spawn must not pay for the listing's modules nor ps for the spawn's (each
# command is a fresh process).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from orch.config import Config
    from orch.events import Event
    from orch.journal import LogFormat
    from orch.providers import AgentRequest
    from orch.request import SpawnRequest
    from orch.results import AgentResult
    from orch.spec import SpawnOptions
    from orch.transcript import Style
    from orch.usecases.converse import Sent
    from orch.usecases.query import WaitOutcome as WaitOutcome
    from orch.usecases.recover import RecoverReport as RecoverReport


def current_scope(user: bool = False, system: bool = False) -> Scope:
    """The scope for a command: --user/--system, else the session's own scope when
    called from inside one (ORCH_SCOPE), else the caller's default."""
    return Scope.for_command(user, system)


def _runtime(scope: Scope | str | None) -> Runtime:
    if scope is None:
        return Runtime(current_scope())
    try:
        return Runtime(Scope(scope))
    except ValueError:
        raise UsageError(f"scope {scope!r}: expected {Scope.USER.value!r} or "
                         f"{Scope.SYSTEM.value!r}") from None


# A library caller's arguments, checked where a type checker cannot: what the command
# line could never give (a string where a list goes, a number where a string does).

def _strings(value: object, what: str) -> list[str]:
    """VALUE, a list (or other sequence) of strings, as a list; else UsageError."""
    items = None if isinstance(value, str) or not isinstance(value, Iterable) else list(value)
    if items is None:
        raise UsageError(f"{what}: expected a list of strings, not {_kind(value)}")
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{what}: expected a list of strings, not one holding "
                             f"{_kind(item)}")
    return items


def _optional_text(value: object, what: str) -> None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{what}: expected a string, not {_kind(value)}")


def _seconds(value: object, what: str, *, infinity: bool = True) -> None:
    """VALUE, if given, is a number of seconds: 0 or more (and finite, unless INFINITY)."""
    import math

    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or math.isnan(value) or value < 0
                              or (math.isinf(value) and not infinity)):
        raise UsageError(f"{what}: expected a number of seconds, 0 or more, "
                         f"got {value!r}"[:200])


def _kind(value: object) -> str:
    return repr(value)[:60] if isinstance(value, str) else type(value).__name__


def spawn(argv: Sequence[str], *, name: str | None = None, description: str = "",
          tags: Iterable[str] = (), env: dict[str, str] | None = None,
          cwd: str | None = None, scope: Scope | None = None,
          persistent: bool = False, options: SpawnOptions | None = None,
          env_files: Sequence[str] = (), secret_env: Sequence[str] = (),
          worktree: bool = False, provider: str | None = None,
          agent: dict[str, Any] | None = None, after: Sequence[str] = (),
          placement: str | None = None, queue: str | None = None, priority: int = 0,
          config: Config | None = None) -> Session:
    """Start ARGV as a new session: a transient service of SCOPE's manager.

    The argv reaches the program verbatim (no shell). Raises SpawnFailed, with one line
    naming the program, if it cannot be found or executed; no session then claims to run.
    A PERSISTENT session is started again by `recover` (at boot) when its invocation
    ended under it: a power cut or a shutdown. OPTIONS set limits, restarts and the
    sandbox; ENV_FILES and SECRET_ENV (names of this environment's variables) give the
    program secrets that nothing records; WORKTREE runs it in a git worktree of its own.
    PLACEMENT records why this host was chosen to run it (orch spawn --host auto).
    QUEUE: start it only when that queue ([queues.NAME] of CONFIG, read if not given)
    has room, PRIORITY deciding its place; until then its status is `queued`.
    """
    from orch.usecases import spawn as spawning

    argv, tags = _strings(argv, "argv"), _strings(tags, "tags")
    env_files, secret_env = _strings(env_files, "env_files"), _strings(secret_env, "secret_env")
    after = _strings(after, "after")
    for text, what in ((name, "name"), (description, "description"), (cwd, "cwd"),
                       (provider, "provider"), (queue, "queue")):
        _optional_text(text, what)
    if env is not None and not (isinstance(env, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise UsageError(f"env: expected a dict of strings to strings, not {_kind(env)}")
    with _runtime(scope) as rt:
        return spawning.spawn(rt, argv, name=name, description=description, tags=tags,
                              env=env, cwd=cwd, persistent=persistent, options=options,
                              env_files=env_files, secret_env=secret_env, worktree=worktree,
                              provider=provider, agent=agent, after=after,
                              placement=placement, queue=queue, priority=priority,
                              config=config)


def spawn_agent(provider: str, request: AgentRequest, *, name: str | None = None,
                scope: Scope | None = None, **spawn_args: Any) -> Session:
    """Start an agent: PROVIDER's own headless command for REQUEST, as a session (the
    other arguments as for spawn). The agent binary is resolved on this PATH now."""
    from orch.usecases import spawn as spawning

    with _runtime(scope) as rt:
        return spawning.spawn_agent(rt, provider, request, name=name, **spawn_args)


def spawn_requested(command: Sequence[str], request: SpawnRequest, *,
                    name: str | None = None, description: str = "",
                    env: dict[str, str] | None = None, scope: Scope | None = None,
                    after: Sequence[str] = (), placement: str | None = None,
                    config: Config | None = None) -> Session:
    """Spawn as the CLI does: COMMAND with the typed REQUEST its settings make (flags
    over profile over [spawn], orch.request). With an agent provider, COMMAND is one
    prompt for that agent. CONFIG is the configuration the request was read from, so
    that the agent's provider is found without reading it again."""
    common: dict[str, Any] = {
        "description": description, "tags": request.tags, "env": env, "cwd": request.cwd,
        "persistent": request.persistent, "options": request.options(),
        "env_files": request.env_files, "secret_env": request.secret_env,
        "worktree": request.worktree, "after": list(after), "placement": placement,
        "queue": request.queue, "priority": request.priority, "config": config}
    if request.agent is None:
        return spawn(command, name=name, scope=scope, **common)
    prompt = request.agent_prompt(list(command))
    return spawn_agent(request.agent, request.agent_request(prompt), name=name, scope=scope,
                       **common)


def resume(ref: str, prompt: str | None = None, scope: Scope | None = None) -> Session:
    """A new invocation of an ended agent session that resumes the agent's own
    conversation (claude --resume ...), saying PROMPT."""
    from orch.usecases import spawn as spawning

    with _runtime(scope) as rt:
        return spawning.resume(rt, ref, prompt)


def send(ref: str, message: str | None, scope: Scope | None = None, *,
         interrupt: bool = False) -> Sent:
    """Hand MESSAGE to the agent of session REF: a running conversation (spawned
    --interactive) takes it as its next message (during a turn, claude reads it at the
    turn's next step); an ended agent session is resumed with it, as a new invocation.
    INTERRUPT (and no message) stops a conversation's current turn instead."""
    from orch.usecases import converse

    with _runtime(scope) as rt:
        return converse.send(rt, ref, message, interrupt=interrupt)


def terminal(ref: str, scope: Scope | None = None) -> tuple[Session, Path]:
    """Session REF (spawned with --tty) and the socket its terminal is reached at;
    UsageError for a session without a terminal, OrchError for one that has ended."""
    from orch.usecases import converse

    with _runtime(scope) as rt:
        return converse.terminal(rt, ref)


def turn_results(ref: str, scope: Scope | None = None) -> list[AgentResult]:
    """What each turn of agent session REF said, oldest first: a conversation's turns
    and a resumed agent's runs, every invocation's, from the journal."""
    from orch.usecases import query

    with _runtime(scope) as rt:
        return query.turn_results(rt, ref)


def result(ref: str, scope: Scope | None = None) -> Session:
    """The session, with what its agent's output says of the run (final text, provider
    session id, usage) read from the journal and recorded."""
    from orch.usecases import query

    with _runtime(scope) as rt:
        return query.result(rt, ref)


def list_sessions(scope: Scope | None = None, *, running: bool = False,
                  tag: str | Sequence[str] | None = None) -> list[Session]:
    """Every session of SCOPE, newest first, with live status from one listing pass:
    a session running as recorded costs no call of its own. TAG: only those with that
    tag, or with every one of those tags."""
    return list(each_session(scope, running=running, tag=tag))


def each_session(scope: Scope | None = None, *, running: bool = False,
                 tag: str | Sequence[str] | None = None) -> Iterator[Session]:
    """list_sessions' sessions, each made as it is asked for (see query.each_session);
    the arguments are checked at once, the connection closed once all are read."""
    from orch.usecases import query

    tags = (tag,) if isinstance(tag, str) else tuple(_strings(tag or (), "tag"))
    if tags:  # none could have a bad one: a typo, not an empty listing
        from orch.spec import check_tag  # not for a listing of every session

        for one in tags:
            check_tag(one)
    rt = _runtime(scope)

    def sessions() -> Iterator[Session]:
        with rt:
            yield from query.each_session(rt, running=running, tags=tags)
    return sessions()


def find_record(ref: str, scope: Scope | None = None) -> Record:
    """The record REF names, without asking the manager anything."""
    from orch.usecases import query

    with _runtime(scope) as rt:
        return query.find_record(rt, ref)


def unenforced_limits(controllers: list[str], scope: Scope | None = None) -> list[str]:
    """Those of CONTROLLERS ("memory", "pids", "cpu") that cannot limit the scope's
    sessions here: a limit on them (MemoryMax=, TasksMax=, CPUQuota=) does nothing."""
    from orch.usecases.measure import unenforced

    with _runtime(scope) as rt:
        return unenforced(rt, controllers)


def show(ref: str, scope: Scope | None = None) -> Session:
    """The session REF names (id, id prefix, name, unit name, or `self`); for an ended
    agent session, with its result read from its output."""
    return result(ref, scope)


def logs_command(ref: str, scope: Scope | None = None, *, lines: int | None = None,
                 follow: bool = False, since: str | None = None,
                 output: LogFormat | str | None = None) -> list[str]:
    """The journalctl command line that shows the session's output (OUTPUT: a
    LogFormat or its name; None: the session's default)."""
    from orch.usecases import query

    with _runtime(scope) as rt:
        return query.logs_command(rt, ref, lines=lines, follow=follow, since=since,
                                  output=output)


def logs(ref: str, scope: Scope | None = None, *, lines: int | None = None,
         since: str | None = None, output: LogFormat | str = "cat") -> str:
    """The session's output so far, from the journal (OUTPUT: a LogFormat or its name)."""
    from orch.usecases import query

    with _runtime(scope) as rt:
        return query.logs(rt, ref, lines=lines, since=since, output=output)


def follow_logs(ref: str, write: Callable[[str], object], scope: Scope | None = None, *,
                lines: int | None = None, since: str | None = None,
                output: LogFormat | str | None = None, style: Style | None = None,
                after: str | None = None,
                mark: Callable[[str | None], None] | None = None) -> WaitOutcome:
    """WRITE the session's output (its last LINES lines, or what came AFTER a journal
    cursor) in OUTPUT format (None: the session's default, an agent's transcript
    decorated in STYLE), then its new lines as they come, until it has ended and its
    last lines are in; how it ended, as `wait` saw it. MARK hears each line's cursor
    before it is written. The end is watched through the manager's signals (wait), the
    output through the journal; a session that has already ended is written whole."""
    from orch.usecases import query

    with _runtime(scope) as rt:
        return query.follow_logs(rt, ref, write, lines=lines, since=since, output=output,
                                 style=style, after=after, mark=mark)


def wait(refs: Sequence[str], scope: Scope | None = None, *, any_: bool = False,
         timeout: float | None = None) -> WaitOutcome:
    """Block until every session in REFS has ended (or the first, with ANY_), driven by
    the manager's signals. Unknown references raise NotFound before any waiting."""
    from orch.usecases import query

    refs = _strings(refs, "refs")
    _seconds(timeout, "timeout")
    with _runtime(scope) as rt:
        return query.wait(rt, refs, any_=any_, timeout=timeout)


def events(refs: Sequence[str] = (), scope: Scope | None = None, *,
           since: str | None = None, follow: Callable[[Event], object] | None = None
           ) -> list[Event]:
    """The state changes of the sessions REFS name (all if none), oldest first, at or
    after SINCE (an ISO 8601 UTC time). With FOLLOW, then call it with each new one as it
    comes (of those sessions), blocking until interrupted."""
    from orch import events as log
    from orch.usecases import query

    with _runtime(scope) as rt:
        found, end, chosen = query.events(rt, refs, since)
        directory = rt.store.directory
    if follow is not None:
        for event in found:
            follow(event)

        def mine(event: Event) -> None:
            if chosen is None or event.session_id in chosen:
                follow(event)

        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        log.follow(directory, end, mine)
    return found


def stop(ref: str, scope: Scope | None = None) -> Session:
    """Stop the session through systemd (SIGTERM, then SIGKILL after the unit's stop
    timeout) and wait for it to end; its status becomes `stopped`."""
    from orch.usecases import control

    with _runtime(scope) as rt:
        return control.stop(rt, ref)


def parse_signal(value: str) -> int:
    """A signal number from '15', 'TERM' or 'SIGTERM'."""
    from orch.usecases import control

    return control.parse_signal(value)


def kill(ref: str, result: str | None = None, scope: Scope | None = None, *,
         signum: int | None = None) -> Session:
    """Record RESULT as the session's final result, then signal all its processes with
    SIGNUM (None: SIGTERM).

    The result is written first: if that write fails, nothing is signalled. The
    session's status becomes `killed`.
    """
    from orch.usecases import control

    with _runtime(scope) as rt:
        import signal

        return control.kill(rt, ref, result,
                            signum=signal.SIGTERM if signum is None else signum)


def read_result_file(path: str) -> str:
    """The text of a --file result (one trailing newline dropped)."""
    from orch.usecases import control

    return control.read_result_file(path)


def recover(scope: Scope | None = None) -> RecoverReport:
    """Reconcile every record of SCOPE with its manager: refresh the running, record how
    the ended ended (from the exit hook, the unit, or the journal), call the rest lost,
    start persistent sessions again, and adopt units of ours that have no record.

    Idempotent, and safe beside concurrent spawns and reaps: every write re-checks the
    record under the state lock.
    """
    from orch.usecases import recover as recovering

    with _runtime(scope) as rt:
        return recovering.recover(rt)


def reap(scope: Scope | None = None, *, older_than: float | None = None,
         everything: bool = False, dry_run: bool = False) -> list[Session]:
    """Remove ended sessions that ended more than OLDER_THAN seconds ago (0: all ended
    ones; None: DEFAULT_REAP_AGE, a week) and reset their failed units; with EVERYTHING,
    stop running sessions first and remove them too. A running session is never removed
    otherwise, nor one whose spawn is still in flight. The reaped sessions."""
    from orch.usecases import reap as reaping

    _seconds(older_than, "older_than", infinity=False)
    with _runtime(scope) as rt:
        age = reaping.DEFAULT_REAP_AGE if older_than is None else older_than
        return reaping.reap(rt, older_than=age, everything=everything,
                            dry_run=dry_run)



# Names the library has long exported, from the use-case modules that own them: each
# loads when first asked for, so that no command pays for a use case it does not run.
_EXPORTS = {"RESULT_GRACE": ("common", "RESULT_GRACE"), "SELF": ("common", "SELF"),
            "WaitOutcome": ("query", "WaitOutcome"),
            "DEFAULT_REAP_AGE": ("reap", "DEFAULT_REAP_AGE"),
            "RecoverReport": ("recover", "RecoverReport"),
            "_parent_id": ("spawn", "parent_id"),
            "_with_dependencies": ("query", "with_dependencies")}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module, attribute = _EXPORTS[name]
        return getattr(importlib.import_module(f"orch.usecases.{module}"), attribute)
    raise AttributeError(f"module 'orch.api' has no attribute {name!r}")
