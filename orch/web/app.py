"""`orch serve`'s HTTP API and dashboard: what the CLI offers that makes sense
remotely, as JSON (the same session objects as `--json`), Server-Sent Events for logs
and state changes, and the schema at /openapi.json, which FastAPI derives from these
functions. Each request runs the library's use cases as the server's user, with the
CLI's checks and one-line errors (as {"error": ...} with a 4xx). Access is decided
before a request gets here (orch.web.access).
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from orch import __version__, api, jsontext
from orch.errors import (
    Ambiguous,
    ManagerTimeout,
    ManagerUnreachable,
    NotFound,
    OrchError,
    PermissionDenied,
    SpawnFailed,
    StateError,
    UsageError,
)
from orch.journal_entries import CURSOR_PATTERN
from orch.scope import Scope
from orch.session import Session
from orch.settings import SPAWN_SETTINGS, Kind
from orch.spec import TAG
from orch.web.access import BodyLimit
from orch.web.streams import EventStream, follow_events, follow_logs, follow_on_host

ACTION_TIMEOUT_S = 120.0  # another host's stop waits for the session to end
LogFormatName = Literal["transcript", "short", "cat", "json"]
NonEmpty = Annotated[str, Field(min_length=1)]
Tag = Annotated[str, Field(pattern=f"^{TAG}$")]  # as spawn's --tag and ps --tag take one
# A spawn's warnings (as `orch spawn` says them on stderr), a header each.
WARNING_HEADER = "X-Orch-Warning"

# What follows a session's reference in the routes below /api/sessions/REF.
_ACTIONS = ("stop", "kill", "send", "interrupt", "logs", "transcript")


class _SessionRef(Convertor[str]):
    """A session's reference in a path: a name may hold "/" (fix/login, as %2F), but not
    end in /ACTION there, so /api/sessions/x/logs is x's logs (a session named "x/logs"
    is reached by its id), and a GET of /api/sessions/x/stop is refused as the wrong
    method, not taken as a session "x/stop"."""

    regex = f"(?:[^/]|/(?!(?:{'|'.join(_ACTIONS)})$))+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("ref", _SessionRef())


class HostUnanswered(OrchError):
    """A host of the fleet did not answer, or its orch refused (502)."""


_STATUS = ((HostUnanswered, 502), (NotFound, 404), (UsageError, 400), (Ambiguous, 400),
           (PermissionDenied, 403), (ManagerUnreachable, 503), (ManagerTimeout, 503),
           (SpawnFailed, 422))


class Error(BaseModel):
    """Every refusal: one line saying why."""

    error: str


# 409: what the session's state does not allow (it has ended), or what failed
# (journalctl); 413: a body over orch.web.access.MAX_BODY.
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": "Refused: why, in one line", "content": {"application/json": {
        "schema": Error.model_json_schema()}}}
    for code in (400, 401, 403, 404, 409, 413, 422, 502, 503)}

# Output followed: Server-Sent Events.
_FOLLOWED: dict[str, Any] = {"description": "The output, or with follow=true its events",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}}


def _not_true_or_false(value: object) -> object:
    """VALUE, unless it is JSON's true or false, which pydantic would take as 1 and 0 for
    a number, where the command line takes neither."""
    if isinstance(value, bool):
        raise PydanticCustomError("number", "expected a number or a string, not true or false")
    return value


# A number, or the words that stand for one (2G, 1h, infinity, TERM). An on/off setting
# takes true or false alone, as the configuration file does (not "yes", "on" or 1).
NumberOrWord = Annotated[int | str, BeforeValidator(_not_true_or_false)]

# A header a client may leave out, never null: the schema says a string (else a client
# reading it could send "null").
Cursor = Annotated[str | None, Header(pattern=CURSOR_PATTERN),
                   WithJsonSchema({"type": "string", "pattern": CURSOR_PATTERN})]
# Where an event stream resumes: a position in the events log, as its ids give one.
POSITION_PATTERN = r"^[0-9]+-[0-9]+$"
Position = Annotated[str | None, Header(pattern=POSITION_PATTERN),
                     WithJsonSchema({"type": "string", "pattern": POSITION_PATTERN})]


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route's dependant (FastAPI's) reads, its dependencies' too."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


def _known_query(request: Request) -> None:
    """Refuse a query parameter the route does not take (a typo such as ?runing=true
    would list every session): 400, naming it. ?token= is the server's own."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not getattr(route, "include_in_schema", True):
        return  # the dashboard's page: what its address carries is the browser's
    known = _query_names(dependant)
    unknown = sorted(set(request.query_params) - known - {"token"})
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise UsageError(f"{unknown[0][:60]}: no such query parameter here (it takes: {takes})")

_JSON_TYPES: dict[Kind, Any] = {
    Kind.BOOL: StrictBool, Kind.INT: NumberOrWord, Kind.STRING_LIST: list[str],
    Kind.DURATION: NumberOrWord, Kind.SIZE: NumberOrWord}

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


# What the schema says a signal is: a number, or a name as the signals' own are written,
# with or without SIG, in capitals or not. `--signal` takes a little more (TeRm, " 15 "),
# and refuses the rest as the route checks it (_signal): the schema claims no more.
_SIGNAL_NAMES = sorted({form for sig in signal.Signals
                        for name in (sig.name, sig.name.removeprefix("SIG"))
                        for form in (name, name.lower())})
SignalGiven = Annotated[NumberOrWord, WithJsonSchema({"anyOf": [
    {"type": "integer", "minimum": 1, "maximum": signal.NSIG - 1},
    {"type": "string", "enum": _SIGNAL_NAMES}]})]


class KillBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    result: str | None = Field(None, description="The final result to record.")
    signal: SignalGiven = Field("TERM", description="A signal's name (TERM, SIGTERM, term) "
                                f"or number (1 to {signal.NSIG - 1}), as `orch kill "
                                "--signal` takes it.")


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, description="The message.")


def _refusal(status: int, message: str, headers: Mapping[str, str] | None = None
             ) -> JSONResponse:
    """Every error's answer: STATUS and one line of JSON saying why."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status,
                        headers=headers)


def _allowed(app: FastAPI, request: Request) -> str:
    """Every method some route takes at REQUEST's path (its Allow header)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def create_app(scope: Scope) -> FastAPI:
    """The API and dashboard over SCOPE's sessions, as the user running it."""
    # No /docs or /redoc: their pages load scripts from a CDN, which would run on this
    # origin with its cookie. The schema is at /openapi.json.
    app = FastAPI(title="orch", version=__version__, description=__doc__,
                  responses=_ERRORS, docs_url=None, redoc_url=None,
                  dependencies=[Depends(_known_query)])
    app.add_middleware(BodyLimit)

    @app.exception_handler(OrchError)
    async def orch_error(request: Request, err: OrchError) -> JSONResponse:
        return _refusal(next((code for kind, code in _STATUS if isinstance(err, kind)), 409),
                        err.message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "bad request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _refusal(400, f"{where}: {first.get('msg', 'invalid')}")

    # The framework's own: an unknown route, a method a route does not take, a body that
    # cannot be read.
    @app.exception_handler(HTTPException)
    async def refused(request: Request, err: HTTPException) -> JSONResponse:
        headers = err.headers
        if err.status_code == 405:  # the framework names only the first route's methods
            headers = {**(headers or {}), "Allow": _allowed(app, request)}
        return _refusal(err.status_code, str(err.detail), headers)

    @app.exception_handler(Exception)  # a bug: its trace goes to the log all the same
    async def failed(request: Request, err: Exception) -> JSONResponse:
        return _refusal(500, "internal error (the server's log has its trace)")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> str:
        return resources.files("orch.web").joinpath("dashboard.html").read_text()

    @app.get("/api/hosts", summary="The [hosts.NAME] of the configuration: what host= "
             "takes")
    def list_hosts() -> list[str]:
        from orch import config

        return sorted(config.load(scope).hosts)

    @app.get("/api/providers", summary="What a spawn's provider takes: the built-in "
             "providers and the configuration's [providers.NAME]")
    def list_providers() -> list[str]:
        from orch import config
        from orch.providers import BUILTIN

        return sorted({*BUILTIN, *config.load(scope).providers})

    @app.get("/api/sessions", summary="Every session, newest first (as `orch ps --json`)")
    def list_sessions(running: bool = False,
                      tag: Annotated[list[Tag] | None, Query()] = None,
                      host: Host = None) -> list[dict[str, Any]]:
        if host:
            from orch.remote import parse_listing

            listing = parse_listing(host, _on_host(scope, host, [
                "ps", "--json", *(["--running"] if running else []),
                *(f"--tag={t}" for t in tag or [])]))
            if listing.problem is not None:
                raise HostUnanswered(f"host {host}: {listing.problem}")
            return listing.sessions
        return [s.to_json() for s in api.list_sessions(scope, running=running, tag=tag)]

    @app.post("/api/sessions", status_code=201,
              summary="Spawn a session (as `orch spawn`): argv, or an agent's prompt")
    def spawn(body: Annotated[SpawnBody, Body()], response: Response,
              host: Host = None) -> dict[str, Any]:
        values = body.model_dump(exclude_unset=True)
        if host:
            return _session_on_host(scope, host, _spawn_words(values))
        session, warned = _spawn(scope, values)
        for warning in warned:  # what `orch spawn` says on stderr: a limit not held, ...
            response.headers.append(WARNING_HEADER, warning.removeprefix("orch: warning: "))
        return session.to_json()

    @app.get("/api/sessions/{ref:ref}", summary="One session (as `orch show --json`)")
    def show(ref: str, host: Host = None) -> dict[str, Any]:
        if host:
            return _session_on_host(scope, host, ["show", "--json", "--", ref])
        return api.show(ref, scope).to_json()

    @app.post("/api/sessions/{ref:ref}/stop", summary="Stop a session and wait for its end")
    def stop(ref: str, host: Host = None) -> dict[str, Any]:
        if host:
            return _session_on_host(scope, host, ["stop", "--json", "--", ref])
        return api.stop(ref, scope).to_json()

    @app.post("/api/sessions/{ref:ref}/kill", summary="Record a result, then signal it")
    def kill(ref: str, body: Annotated[KillBody | None, Body()] = None,
             host: Host = None) -> dict[str, Any]:
        body = body or KillBody(result=None, signal="TERM")
        signum = _signal(body.signal)  # checked here for another host too
        if host:  # "--": a ref or result that starts with - is no option there
            return _session_on_host(scope, host, [
                "kill", "--json", f"--signal={body.signal}", "--", ref,
                *([body.result] if body.result is not None else [])])
        return api.kill(ref, body.result, scope, signum=signum).to_json()

    @app.post("/api/sessions/{ref:ref}/send", summary="A conversation's next message (as "
              "`orch send`); an ended agent session is resumed with it")
    def send(ref: str, body: Annotated[SendBody, Body()], host: Host = None
             ) -> dict[str, Any]:
        return _send(ref, body.message, host)

    @app.post("/api/sessions/{ref:ref}/interrupt", summary="Stop a conversation's current "
              "turn (as `orch send --interrupt`)")
    def interrupt(ref: str, host: Host = None) -> dict[str, Any]:
        return _send(ref, None, host)

    def _send(ref: str, message: str | None, host: str | None) -> dict[str, Any]:
        if host:
            session = _session_on_host(scope, host, [
                "send", "--json", *(["--interrupt"] if message is None else []), "--", ref,
                *([] if message is None else [message])])
            return {"how": session.pop("sent", "sent"), "session": session}  # send --json's
        sent = api.send(ref, message, scope, interrupt=message is None)
        return {"how": sent.how, "session": sent.session.to_json()}

    @app.get("/api/sessions/{ref:ref}/logs", summary="A session's output (as `orch logs`); "
             "follow=true: Server-Sent Events until it ends, resumable with Last-Event-ID",
             response_class=PlainTextResponse, responses={200: _FOLLOWED})
    def logs(ref: str, lines: Annotated[int | None, Query(ge=0)] = None,
             format: LogFormatName | None = None, follow: bool = False,
             last_event_id: Cursor = None, host: Host = None) -> Response:
        if host:
            resumed = follow and bool(last_event_id)  # a cursor: what came after it
            words = ["logs", *(["-f", "--sse"] if follow else []), "--no-pager",
                     *(["-n", str(lines)] if lines is not None and not resumed else []),
                     *([f"--after-cursor={last_event_id}"] if resumed else []),
                     *(["-o", format] if format else []), "--", ref]
            if follow:  # an unknown host is not found before the stream starts
                return EventStream(follow_on_host(host, _fleet_host(scope, host), words))
            return PlainTextResponse(_on_host(scope, host, words))
        record = api.find_record(ref, scope)
        if follow:
            return EventStream(follow_logs(record, lines, format, last_event_id))
        from orch.journal import LogFormat, default_format, read_logs

        shown = default_format(record) if format is None else LogFormat(format)
        return PlainTextResponse(read_logs(record, lines=lines, output=shown))

    @app.get("/api/sessions/{ref:ref}/transcript", response_class=PlainTextResponse,
             summary="An agent session's transcript (as `orch logs -o transcript`)")
    def transcript(ref: str, lines: Annotated[int | None, Query(ge=0)] = None,
                   host: Host = None) -> Response:
        return logs(ref, lines, "transcript", False, None, host)

    @app.get("/api/events", summary="State changes as Server-Sent Events (as `orch events "
             "-f --json`), from now on, or after Last-Event-ID", status_code=200,
             response_class=EventStream)
    def events(last_event_id: Position = None,
               host: Annotated[str | None, Query(include_in_schema=False)] = None
               ) -> EventStream:
        if host is not None:  # another host's orch writes no positions to resume after
            raise UsageError("host: another host's events are not served here (`orch "
                             "--host NAME events -f` follows them)")
        return EventStream(follow_events(scope, last_event_id))

    return app


Host = Annotated[str | None, Query(description="A [hosts.NAME] of the configuration: "
                                   "act there, through ssh (GET /api/hosts)",
                                   pattern=r"^[A-Za-z0-9_-]+$")]


def _on_host(scope: Scope, name: str, args: list[str]) -> str:
    """`orch ARGS` on host NAME (as `orch --host NAME ARGS`), its answer."""
    from orch import ssh

    host = _fleet_host(scope, name)
    try:
        return ssh.capture(host.address, [host.orch, *args], ACTION_TIMEOUT_S)
    except ssh.Unanswered as err:
        raise _host_refusal(name, err) from None


# The error each exit status of orch's stands for (README, "Exit codes and errors").
_BY_EXIT: dict[int, type[OrchError]] = {
    kind.exit_code: kind for kind in (OrchError, UsageError, ManagerUnreachable,
                                      PermissionDenied, StateError)}


def _host_refusal(name: str, err: Any) -> OrchError:
    """What host NAME's orch meant by exiting as ERR (an ssh.Unanswered) tells, so that
    its refusal is answered as a local one would be: HostUnanswered where ssh failed
    (ssh's own status is none of _BY_EXIT's) or no status came. Exit 2 is a usage
    error, or a session not found or ambiguous: the host's words, orch's own, tell."""
    message = f"host {name}: {err.reason}"
    kind = _BY_EXIT.get(err.status) if err.status is not None else None
    if kind is None:
        return HostUnanswered(message)
    if kind is UsageError and err.reason.startswith("no session"):
        return NotFound(message)  # as resolve.py words it
    return kind(message)


def _fleet_host(scope: Scope, name: str) -> Any:
    """Host NAME of SCOPE's configuration; NotFound if it has none of that name."""
    from orch import config, hosts

    fleet = hosts.fleet(config.load(scope).hosts)
    if name not in fleet:
        raise NotFound(f"no host {name} in the configuration ([hosts.{name}])")
    return fleet[name]


def _session_on_host(scope: Scope, name: str, args: list[str]) -> dict[str, Any]:
    """A session object, as host NAME's `orch ARGS` (with --json) gives it."""
    try:
        session = jsontext.loads(_on_host(scope, name, args))
        if not isinstance(session, dict):
            raise ValueError("not a session")
    except ValueError as err:  # as orch.remote.parse_listing words it
        raise HostUnanswered(f"host {name}: unreadable answer: {err}") from None
    return session


def _signal(given: int | str) -> int:
    """The signal GIVEN names, read as `orch kill --signal` reads it (its refusal naming
    this field rather than that option)."""
    try:
        return api.parse_signal(str(given))
    except UsageError as err:
        raise UsageError(err.message.removeprefix("--")) from None


def _spawn_words(values: dict[str, Any]) -> list[str]:
    """`orch spawn --json`'s words for VALUES, checked here as _spawn checks them before
    another host's orch runs them. That host's configuration is not read here: only a
    provider in VALUES makes the command a prompt (the words cannot say they are one)."""
    from orch import request
    from orch.commandline import spawn_words
    from orch.spec import parse_env

    asked = request.spawn_request(None, None, _settings(values))
    parse_env(values.get("env", []))
    return ["spawn", "--json", *spawn_words(values, _command(values, asked.agent))]


def _spawn(scope: Scope, values: dict[str, Any]) -> tuple[Session, list[str]]:
    """The spawn VALUES ask for, checked as `orch spawn` checks its flags, and what it
    warns of."""
    from orch import request, spawn_warnings
    from orch.spec import parse_env

    loaded, asked = request.for_spawn(scope, values.get("profile"), _settings(values))
    session = api.spawn_requested(_command(values, asked.agent), asked,
                                  name=values.get("name"),
                                  description=values.get("description", ""),
                                  env=parse_env(values.get("env", [])), scope=scope,
                                  after=values.get("after", []), config=loaded)
    return session, spawn_warnings.lines(asked, scope)


def _settings(values: dict[str, Any]) -> dict[str, Any]:
    """The spawn settings among VALUES, by key."""
    return {key: value for key, value in values.items() if key in SPAWN_SETTINGS}


def _command(values: dict[str, Any], agent: str | None) -> list[str]:
    """What VALUES ask to run: their argv, or with AGENT (a provider) their prompt."""
    argv: list[str] | None = values.get("argv")
    prompt: str | None = values.get("prompt")
    if (argv is None) == (prompt is None):
        raise UsageError("give argv (a command) or prompt (with an agent provider): "
                         + ("not both" if argv is not None else "neither was given"))
    if prompt is not None:
        if agent is None:
            raise UsageError("prompt needs an agent provider (provider: claude, codex, ...)")
        return [prompt]
    if not argv:
        raise UsageError("argv is empty: give the command to run")
    return argv
