"""`orch serve`'s HTTP API and dashboard: what the CLI offers that makes sense
remotely, as JSON (the same session objects as `--json`), Server-Sent Events for logs
and state changes, and the schema at /openapi.json, which FastAPI derives from these
functions. Each request runs the library's use cases as the server's user, with the
CLI's checks and one-line errors (as {"error": ...} with a 4xx). Access is decided
before a request gets here (orch.web.access).
"""

from __future__ import annotations

import asyncio
import signal
import threading
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Body, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from orch import __version__, api, sse
from orch.errors import (
    Ambiguous,
    ManagerTimeout,
    ManagerUnreachable,
    NotFound,
    OrchError,
    PermissionDenied,
    SpawnFailed,
    UsageError,
)
from orch.scope import Scope
from orch.session import Session
from orch.settings import SPAWN_SETTINGS, Kind

# How often a follower asks whether its session has ended, and sends a comment to learn
# whether its client is still there.
CHECK_S = 1.0
ACTION_TIMEOUT_S = 120.0  # another host's stop waits for the session to end
KEEPALIVE_S = 15.0
LogFormatName = Literal["transcript", "short", "cat", "json"]

class HostUnanswered(OrchError):
    """A host of the fleet did not answer, or its orch refused (502)."""


_STATUS = ((HostUnanswered, 502), (NotFound, 404), (UsageError, 400), (Ambiguous, 400),
           (PermissionDenied, 403), (ManagerUnreachable, 503), (ManagerTimeout, 503),
           (SpawnFailed, 422))


class Error(BaseModel):
    """Every refusal: one line saying why."""

    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error} for code in (400, 401, 403, 404, 422, 502, 503)}

# Output as text: whole, or as Server-Sent Events.
_TEXT: dict[str, Any] = {"description": "The output", "content": {
    "text/plain": {"schema": {"type": "string"}},
    "text/event-stream": {"schema": {"type": "string"}}}}

_JSON_TYPES: dict[Kind, Any] = {
    Kind.BOOL: bool, Kind.INT: int | str, Kind.STRING_LIST: list[str],
    Kind.DURATION: int | str, Kind.SIZE: int | str}

# The spawn body: the command or prompt, spawn's own options, and every spawn setting
# under its [spawn] key, with the values the configuration file takes (orch.settings).
if TYPE_CHECKING:
    SpawnBody = BaseModel
else:
    SpawnBody = create_model(
        "SpawnBody",
        __config__=ConfigDict(extra="forbid"),
        argv=(list[str] | None, Field(None, description="The command to run (no shell).")),
        prompt=(str | None, Field(None, description="With an agent provider: its prompt.")),
        name=(str | None, Field(None, description="The session's name.")),
        description=(str, Field("", description="A description.")),
        env=(list[str], Field([], description="KEY=VALUE variables for the program.")),
        profile=(str | None, Field(None, description="A [profiles.NAME] of the config.")),
        after=(list[str], Field([], description="Sessions to wait for.")),
        **{key: (_JSON_TYPES.get(setting.kind, str) | None,
                 Field(None, description=setting.help))
           for key, setting in SPAWN_SETTINGS.items()},
    )


# What --signal takes, as the schema says it: a signal's name (TERM or SIGTERM) or number.
if TYPE_CHECKING:
    SignalName = str
else:
    SignalName = Literal[tuple(sorted({form for sig in signal.Signals for form in (
        sig.name, sig.name.removeprefix("SIG"))}))]
SIGNAL_NUMBERS = Annotated[int, Field(ge=1, lt=signal.NSIG)]


class KillBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    result: str | None = Field(None, description="The final result to record.")
    signal: SignalName | SIGNAL_NUMBERS = Field(
        "TERM", description="A signal's name or number.")


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, description="The message.")


def create_app(scope: Scope) -> FastAPI:
    """The API and dashboard over SCOPE's sessions, as the user running it."""
    app = FastAPI(title="orch", version=__version__, description=__doc__,
                  responses=_ERRORS)

    @app.exception_handler(OrchError)
    async def orch_error(request: Request, err: OrchError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(err, kind)), 409)
        return JSONResponse({"error": err.message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "bad request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = " ".join(f"{where}: {first.get('msg', 'invalid')}".split())
        return JSONResponse({"error": message}, status_code=400)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return resources.files("orch.web").joinpath("dashboard.html").read_text()

    @app.get("/api/hosts", summary="The [hosts.NAME] of the configuration: what host= "
             "takes")
    def list_hosts() -> list[str]:
        from orch import config

        return sorted(config.load(scope).hosts)

    @app.get("/api/sessions", summary="Every session, newest first (as `orch ps --json`)")
    def list_sessions(running: bool = False,
                      tag: Annotated[str | None, Query(min_length=1)] = None,
                      host: Host = None) -> list[dict[str, Any]]:
        if host:
            listed: list[dict[str, Any]] = _on_host(
                scope, host, ["ps", "--json", *(["--running"] if running else []),
                              *(["--tag", tag] if tag else [])])
            return listed
        return [s.to_json() for s in api.list_sessions(scope, running=running, tag=tag)]

    @app.post("/api/sessions", status_code=201,
              summary="Spawn a session (as `orch spawn`): argv, or an agent's prompt")
    def spawn(body: Annotated[SpawnBody, Body()], host: Host = None) -> dict[str, Any]:
        values = body.model_dump(exclude_unset=True)
        if host:
            return _session_on_host(scope, host, _spawn_words(values))
        session: Session = _spawn(scope, values)
        return session.to_json()

    @app.get("/api/sessions/{ref}", summary="One session (as `orch show --json`)")
    def show(ref: str, host: Host = None) -> dict[str, Any]:
        if host:
            return _session_on_host(scope, host, ["show", "--json", ref])
        return api.show(ref, scope).to_json()

    @app.post("/api/sessions/{ref}/stop", summary="Stop a session and wait for its end")
    def stop(ref: str, host: Host = None) -> dict[str, Any]:
        if host:
            return _session_on_host(scope, host, ["stop", "--json", ref])
        return api.stop(ref, scope).to_json()

    @app.post("/api/sessions/{ref}/kill", summary="Record a result, then signal it")
    def kill(ref: str, body: Annotated[KillBody | None, Body()] = None,
             host: Host = None) -> dict[str, Any]:
        body = body or KillBody(result=None, signal="TERM")
        if host:
            return _session_on_host(scope, host, [
                "kill", "--json", "--signal", str(body.signal), ref,
                *([body.result] if body.result is not None else [])])
        return api.kill(ref, body.result, scope, signum=api.parse_signal(str(body.signal))
                        ).to_json()

    @app.post("/api/sessions/{ref}/send", summary="A conversation's next message (as "
              "`orch send`); an ended agent session is resumed with it")
    def send(ref: str, body: Annotated[SendBody, Body()], host: Host = None
             ) -> dict[str, Any]:
        return _send(ref, body.message, host)

    @app.post("/api/sessions/{ref}/interrupt", summary="Stop a conversation's current "
              "turn (as `orch send --interrupt`)")
    def interrupt(ref: str, host: Host = None) -> dict[str, Any]:
        return _send(ref, None, host)

    def _send(ref: str, message: str | None, host: str | None) -> dict[str, Any]:
        if host:
            session = _session_on_host(scope, host, ["send", "--json", ref, *(
                ["--interrupt"] if message is None else ["--", message])])
            return {"how": session.pop("sent", "sent"), "session": session}  # send --json's
        sent = api.send(ref, message, scope, interrupt=message is None)
        return {"how": sent.how, "session": sent.session.to_json()}

    @app.get("/api/sessions/{ref}/logs", summary="A session's output (as `orch logs`); "
             "follow=true: Server-Sent Events until it ends, resumable with Last-Event-ID",
             responses={200: _TEXT})
    def logs(ref: str, lines: Annotated[int | None, Query(ge=0)] = None,
             format: LogFormatName | None = None, follow: bool = False,
             last_event_id: Annotated[str | None, Header()] = None, host: Host = None
             ) -> Any:
        if host:
            resumed = follow and bool(last_event_id)  # a cursor: what came after it
            words = ["logs", *(["-f", "--sse"] if follow else []), "--no-pager",
                     *(["-n", str(lines)] if lines is not None and not resumed else []),
                     *(["--after-cursor", str(last_event_id)] if resumed else []),
                     *(["-o", format] if format else []), ref]
            if follow:  # an unknown host is not found before the stream starts
                return StreamingResponse(_follow_on_host(host, _fleet_host(scope, host),
                                                         words),
                                         media_type="text/event-stream",
                                         headers={"cache-control": "no-store"})
            return PlainTextResponse(_on_host(scope, host, words, as_json=False))
        record = api.find_record(ref, scope)
        if follow:
            return StreamingResponse(_follow_logs(record, lines, format, last_event_id),
                                     media_type="text/event-stream",
                                     headers={"cache-control": "no-store"})
        from orch.journal import LogFormat, default_format, read_logs

        shown = default_format(record) if format is None else LogFormat(format)
        return PlainTextResponse(read_logs(record, lines=lines, output=shown))

    @app.get("/api/sessions/{ref}/transcript", responses={200: _TEXT},
             summary="An agent session's transcript (as `orch logs -o transcript`)")
    def transcript(ref: str, lines: Annotated[int | None, Query(ge=0)] = None) -> Any:
        return logs(ref, lines, "transcript", False, None, None)

    @app.get("/api/events", summary="State changes as Server-Sent Events (as `orch events "
             "-f --json`), from now on, or after Last-Event-ID", responses={200: _TEXT})
    def events(last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
        return StreamingResponse(_follow_events(scope, last_event_id),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    return app


Host = Annotated[str | None, Query(description="A [hosts.NAME] of the configuration: "
                                   "act there, through ssh (GET /api/hosts)",
                                   pattern=r"^[A-Za-z0-9_-]+$")]


def _on_host(scope: Scope, name: str, args: list[str], as_json: bool = True) -> Any:
    """`orch ARGS` on host NAME (as `orch --host NAME ARGS`), its JSON answer."""
    import json

    from orch import ssh

    host = _fleet_host(scope, name)
    try:
        answer = ssh.capture(host.address, [host.orch, *args], ACTION_TIMEOUT_S)
    except ssh.Unanswered as err:
        raise HostUnanswered(f"host {name}: {err.reason}") from None
    return json.loads(answer) if as_json else answer


def _fleet_host(scope: Scope, name: str) -> Any:
    """Host NAME of SCOPE's configuration; NotFound if it has none of that name."""
    from orch import config, hosts

    fleet = hosts.fleet(config.load(scope).hosts)
    if name not in fleet:
        raise NotFound(f"no host {name} in the configuration ([hosts.{name}])")
    return fleet[name]


def _session_on_host(scope: Scope, name: str, args: list[str]) -> dict[str, Any]:
    """A session object, as host NAME's `orch ARGS` (with --json) gives it."""
    answer = _on_host(scope, name, args)
    if not isinstance(answer, dict):
        raise HostUnanswered(f"host {name}: its answer is not a session")
    return answer


def _spawn_words(values: dict[str, Any]) -> list[str]:
    """`orch spawn --json`'s words for VALUES, for another host's orch to check and run."""
    from orch.commandline import spawn_words

    command = values.pop("argv", None) or [values.pop("prompt", "")]
    values.pop("prompt", None)
    words = spawn_words(values, command)
    return ["spawn", "--json", *words]


def _spawn(scope: Scope, values: dict[str, Any]) -> Session:
    """The spawn VALUES ask for, checked as `orch spawn` checks its flags."""
    from orch import request
    from orch.spec import parse_env

    argv, prompt = values.pop("argv", None), values.pop("prompt", None)
    if (argv is None) == (prompt is None):
        raise UsageError("give argv (a command) or prompt (with an agent provider), not both")
    settings = {key: values.pop(key) for key in list(values) if key in SPAWN_SETTINGS}
    profile = values.get("profile")
    loaded, asked = request.for_spawn(scope, profile, settings)
    if prompt is not None and asked.agent is None:
        raise UsageError("prompt needs an agent provider (provider: claude, codex, ...)")
    if argv is not None and not argv:
        raise UsageError("argv is empty: give the command to run")
    return api.spawn_requested(argv if argv is not None else [prompt], asked,
                               name=values.get("name"),
                               description=values.get("description", ""),
                               env=parse_env(values.get("env", [])), scope=scope,
                               after=values.get("after", []), config=loaded)


# --- Server-Sent Events ------------------------------------------------------------------

async def _from_thread(work: Any, stop: threading.Event) -> Any:
    """Items WORK(put) puts, as they come, until it returns; STOP is set once the
    consumer goes (the client left), and WORK should end soon after."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("item", item))

    def run() -> None:
        try:
            work(put)
        except OrchError as err:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", err.message))
        except OSError as err:  # the journal or the state directory could not be read
            loop.call_soon_threadsafe(queue.put_nowait, ("error", str(err)))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

    threading.Thread(target=run, daemon=True, name="orch-web-follow").start()
    try:
        while True:
            try:
                kind, item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ("keepalive", None)
                continue
            yield (kind, item)
            if kind == "end":
                return
    finally:
        stop.set()


async def _follow_logs(record: Any, lines: int | None, format: str | None,
                       after: str | None) -> Any:
    from orch import journal

    stop = threading.Event()
    end = journal.SessionEnd()
    scope = Scope(record.scope)
    current: list[str | None] = [None]

    def work(put: Any) -> None:
        watcher = threading.Thread(target=_watch_end, args=(record.id, scope, end, stop),
                                   daemon=True, name="orch-web-end")
        watcher.start()
        journal.follow_logs(record, lambda text: put((current[0], text)), end, lines=lines,
                            output=None if format is None else journal.LogFormat(format),
                            # as `orch logs -f`: a restart's invocation, once it shows up
                            refresh=lambda: journal.invocation_starts(
                                api.find_record(record.id, scope)),
                            after=after, mark=lambda cursor: current.__setitem__(0, cursor))

    async for kind, item in _from_thread(work, stop):
        if kind == "item":
            cursor, text = item
            yield sse.event(text.removesuffix("\n"), cursor)
        elif kind == "error":
            yield sse.event(item, kind="error")
        elif kind == "end":
            yield sse.event("{}", kind="end")
        else:
            yield b": keepalive\n\n"


async def _follow_on_host(name: str, host: Any, args: list[str]) -> Any:
    """`orch ARGS` (logs -f --sse) on host NAME: the events that host's orch writes,
    passed on line by line as they come (their ids its journal's cursors), then ours:
    an error if one came, and the end."""
    from orch import ssh

    stop = threading.Event()

    def work(put: Any) -> None:
        try:
            # logs -f exits as wait: 1 is a session that ended unsuccessfully.
            ssh.stream(host.address, [host.orch, *args], put, stop.is_set, done=(0, 1))
        except ssh.Unanswered as err:
            raise HostUnanswered(f"host {name}: {err.reason}") from None

    async for kind, item in _from_thread(work, stop):
        if kind == "item":
            yield (item + "\n").encode()
        elif kind == "keepalive":
            yield b": keepalive\n"  # a comment line: no blank line to end an event early
        else:  # after a blank line, which ends what an interrupted stream left unfinished
            yield b"\n" + sse.event(item if kind == "error" else "{}", kind=kind)


def _watch_end(session_id: str, scope: Scope, end: Any, stop: threading.Event) -> None:
    """Set END once the session has ended (with time for its last lines if it was seen
    running), or at once when STOP is set (the client left)."""
    from orch.usecases.common import RESULT_GRACE

    seen_running = False
    while not stop.is_set():
        try:
            outcome = api.wait([session_id], scope, timeout=CHECK_S)
        except OrchError:
            break
        if outcome.sessions[0].status.ended:
            break
        seen_running = True
        if not outcome.timed_out:  # an idle conversation: wait returns at once
            stop.wait(CHECK_S)
    end.set(RESULT_GRACE if seen_running and not stop.is_set() else 0.0)


async def _follow_events(scope: Scope, last_event_id: str | None) -> Any:
    from orch import events
    from orch.state import StateStore

    directory = scope.state_dir()
    StateStore(directory).prepare()  # its events file may not be there yet
    start = events.Position.parse(last_event_id or "") or events.end(directory)
    stop = threading.Event()
    offset: list[events.Position] = [start]

    def work(put: Any) -> None:
        events.follow(directory, start, lambda event: put((offset[0], event)),
                      until=stop.is_set, every=CHECK_S,
                      offsets=lambda at: offset.__setitem__(0, at))

    import json

    async for kind, item in _from_thread(work, stop):
        if kind == "item":
            at, event = item
            yield sse.event(json.dumps(event.to_json()), str(at))
        elif kind == "keepalive":
            yield b": keepalive\n\n"
        elif kind == "error":
            yield sse.event(item, kind="error")
