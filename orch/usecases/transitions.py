"""Telling of a session's transitions, once each, where orch makes them: its event
(orch.events, for `orch events`) and the command [hooks] sets for it, run as a
transient unit of the session's own manager. A hook that fails is the manager's to log
(its unit failed); it never changes the session, and nothing here ever raises for it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from orch import events
from orch.errors import OrchError, suppress
from orch.events import Event, Kind
from orch.scope import Scope
from orch.session import Record, Status, now_iso
from orch.timespan import usec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.config import Config
    from orch.dbus import Property
    from orch.runtime import Runtime


def tell(rt: Runtime, record: Record, kind: Kind, status: Status | str,
         detail: str | None = None) -> list[str]:
    """Record event KIND of RECORD (now in STATUS) and run the hooks it calls for; the
    problems met (a hook the manager would not start), for the caller to say."""
    return run_hooks(rt, record, note(rt.store.directory, record, kind, status, detail))


def tell_blocked(rt: Runtime, blocked: list[Record]) -> list[str]:
    """Tell that each of BLOCKED (--after) has ended without running, failed as its
    block says, once what would start it is gone (disarm). The problems met, as tell's."""
    problems: list[str] = []
    for record in blocked:
        try:
            disarm(rt, record)
        except OrchError as err:
            problems.append(f"session {record.id[:8]} ({record.name}): {err.message}")
        problems += tell(rt, record, Kind.ENDED, Status.FAILED, record.blocked)
    return problems


def disarm(rt: Runtime, record: Record) -> None:
    """Take away what would start RECORD, which will never run (canceled, blocked): its
    secrets, its marker, and its path unit with its unit, loaded and never started (one
    in a queue has neither yet). OrchError if the manager would not stop them."""
    from orch import secrets
    from orch.spec import after_marker, after_unit

    scope = Scope(record.scope)
    secrets.discard(scope, record.id)
    after_marker(scope, record.id).unlink(missing_ok=True)
    if record.queue is None:
        rt.manager_of(scope).stop_all([after_unit(record.unit), record.unit])


def tell_ended(rt: Runtime, record: Record, status: Status, detail: str | None = None
               ) -> list[str]:
    """Tell the end of RECORD that no exit hook tells (event and hooks, as STATUS with
    DETAIL), and settle the sessions waiting on it; the problems met, as tell's."""
    from orch.spec import after_dir

    return [*tell(rt, record, Kind.ENDED, status, detail),
            *release_dependents(rt, record.id, after_dir(Scope(record.scope)))]


def release_dependents(rt: Runtime, session_id: str, markers: Path,
                       lost: bool = False) -> list[str]:
    """Settle the sessions waiting on SESSION_ID, which has ended (or is LOST, recover
    found: gone, how unknown): block them if it failed (told: they end here, never
    having run), or write the marker in MARKERS whose path unit starts each one whose
    dependencies all succeeded; the problems met, as tell's."""
    from orch.dependencies import after_end, telling_blocked

    store = rt.store
    if not any(session_id in r.after for r in store.load(archived=False).values()):
        # A waiting session is never archived: none waits on this one. (One recorded
        # after this look judges its dependencies itself, once its path unit is armed.)
        return []
    # One in a queue is not released by a marker: its queue starts it (every caller
    # admits after this), once its dependencies have all succeeded (orch.queues.order).
    released, blocked = store.update(telling_blocked(lambda sessions: [
        i for i in after_end(sessions, session_id, lost) if sessions[i].queue is None]))
    problems = tell_blocked(rt, blocked)
    if released:
        markers.mkdir(mode=0o700, parents=True, exist_ok=True)
    for waiting_id in released:
        # Written and closed: the path unit's PathChanged= fires on the close.
        (markers / f"{waiting_id}.go").write_text(f"released by {session_id}\n")
    return problems


def note(state_dir: Path, record: Record, kind: Kind, status: Status | str,
         detail: str | None = None) -> Event:
    """Append event KIND of RECORD to the log; the event. Called under the state lock
    where the order of two writers' events matters (a start and a quick end)."""
    ended = kind is Kind.ENDED
    event = Event(now_iso(), record.id, record.name, str(kind), str(status),
                  record.exit_code if ended else None, record.result if ended else None,
                  detail)
    # The state file says what happened; the event log only tells of it.
    with suppress(OSError):
        events.append(state_dir, event)
    return event


def run_hooks(rt: Runtime, record: Record, event: Event) -> list[str]:
    """Run the [hooks] commands EVENT of RECORD calls for; the problems met."""
    keys = hook_keys(Kind(event.event), event.status)
    if not keys or not os.path.lexists(Scope(record.scope).config_path()):
        return []
    from orch.config import load

    try:
        config = load(Scope(record.scope))
    except OrchError as err:
        return [f"hooks not run: {err.message}"]
    return [problem for key in keys
            if (problem := _run(rt, config, key, record, event)) is not None]


def hook_keys(kind: Kind, status: str) -> list[str]:
    """The [hooks] keys event KIND of a session in STATUS runs."""
    if kind is Kind.STARTED:
        return ["on_start"]
    if kind is Kind.ENDED:
        return ["on_end", *(["on_failed"] if status in ("failed", "lost") else [])]
    if kind is Kind.LIMITED:
        return ["on_limited"]
    if kind is Kind.IDLE:
        return ["on_idle"]
    return []


def _run(rt: Runtime, config: Config, key: str, record: Record, event: Event) -> str | None:
    argv = config.hook(key)
    if argv is None:
        return None
    scope = Scope(record.scope)
    stamp = time.time_ns()
    result_file = _result_file(scope, record, stamp)
    unit = f"orch-hook-{key.removeprefix('on_')}-{record.id[:8]}-{stamp}.service"
    import shutil  # only where a hook runs: every spawn loads this module

    try:
        manager = rt.manager_of(scope)
        program = shutil.which(argv[0]) or argv[0]
        manager.wait_job(manager.submit_transient(
            unit, _properties(record, key, event, program, argv, result_file,
                              config.hook_time_limit())),
            f"the start of {unit}")
    except OrchError as err:
        result_file.unlink(missing_ok=True)
        return f"hook {key} of session {record.id[:8]} not run: {err.message}"
    return None


def _result_file(scope: Scope, record: Record, stamp: int) -> Path:
    """The session's final result, in a 0600 file of the runtime directory for the
    hook to read (its unit removes it when it ends)."""
    directory = scope.runtime_dir() / "orch" / "results"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{record.id}-{stamp}.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(record.final_result or "")
    return path


def _properties(record: Record, key: str, event: Event, program: str, argv: list[str],
                result_file: Path, limit_s: float) -> list[Property]:
    import shutil

    from orch.spec import literal_argv

    env = {"ORCH_SESSION_ID": record.id, "ORCH_NAME": record.name,
           "ORCH_STATUS": event.status, "ORCH_EVENT": event.event,
           "ORCH_EXIT_CODE": "" if event.exit_code is None else str(event.exit_code),
           "ORCH_UNIT": record.unit, "ORCH_RESULT_FILE": os.fspath(result_file),
           "ORCH_DETAIL": event.detail or "",  # why: "dependency x never ran", ...
           "ORCH_SCOPE": record.scope, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    remove = shutil.which("rm") or "/bin/rm"
    return [
        ("Description", "s", f"orch hook {key} of session {record.id} ({record.name})"),
        ("Type", "s", "exec"),
        ("ExecStart", "a(sasb)", [(program, literal_argv(argv), False)]),
        ("ExecStopPost", "a(sasb)", [(remove, [remove, "-f", os.fspath(result_file)],
                                      True)]),
        ("Environment", "as", [f"{k}={v}" for k, v in env.items()]),
        ("RuntimeMaxUSec", "t", usec(limit_s)),  # hooks.time_limit
        ("CollectMode", "s", "inactive-or-failed")]
