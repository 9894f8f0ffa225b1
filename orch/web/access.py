"""Who may use `orch serve`, decided before any request reaches the API.

- On a Unix socket, the peer's credentials (SO_PEERCRED): only the user the server runs
  as (root's socket: root) gets an answer; any other peer gets 403 and the connection
  closed, before its request is read. No token there: the socket's owner is the user.
  The Host header must be a loopback name (localhost, 127.0.0.1, [::1]; any port: a
  browser through `ssh -L` names its own end): a page elsewhere in the owner's browser
  reaches the socket only through such a tunnel, and then as another site.
- On TCP, every request needs the token: `Authorization: Bearer TOKEN`, the cookie a
  browser got from opening the URL once with `?token=TOKEN` (as Jupyter does, named
  after the port: another server on this host keeps its own), or that query itself.
  The Host header must name the listen address (no DNS rebinding).
- On both, an Origin, if sent, must be the Host's own (no cross-site requests; no CORS
  at all), and a request body over MAX_BODY is refused (413) before any is parsed.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
import struct
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlencode

from orch import jsontext
from orch.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "orch_token"  # and the port: orch_token_8765
TOKEN_FILE = "web-token"
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
# A body is a spawn's command, prompt and settings, or a message: far below this, as is
# what Linux lets one program's arguments and environment take together (2 MiB at the
# default stack limit). A bigger body would only cost memory to parse, and the manager
# time to take in (a spawn with a 200,000-entry env held systemd for 20 s).
MAX_BODY = 1 << 20


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/orch (~/.config/orch), where the web token is kept."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                              ".config")
    return Path(base) / "orch"


def load_token(path: Path | None) -> str:
    """The token in PATH (default: config_dir()/web-token, made 0600 with a new random
    token if missing). A token file others can read is refused: it is a password."""
    if path is None:
        path = config_dir() / TOKEN_FILE
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32) + "\n")
                file.flush()
                os.fsync(file.fileno())
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except OSError as err:
        raise UsageError(f"--token-file {path}: {err.strerror}") from None
    if mode & 0o077:
        raise UsageError(f"--token-file {path}: readable by others (mode "
                         f"{mode & 0o777:o}); make it 0600")
    if len(token) < 16:
        raise UsageError(f"--token-file {path}: the token must be 16 characters or more")
    return token


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (a bracketed IPv6 address as [::1]:8080) as host and port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise UsageError(f"--listen {text}: expected HOST:PORT, such as 127.0.0.1:8765")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether HOST is this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_every_address(host: str) -> bool:
    """Whether HOST is the wildcard address (IPv4's or IPv6's, however written)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host headers a request to HOST:PORT may carry: the listen address itself,
    and on loopback its usual names; on a wildcard address, this machine's names and
    addresses."""
    names = {f"[{host}]" if ":" in host else host}
    if is_loopback(host):
        names.update(_LOOPBACK_NAMES)
    elif is_every_address(host):  # (only with --allow-remote, and the token always)
        names.update({socket.gethostname(), socket.getfqdn(), *_LOOPBACK_NAMES})
        import psutil

        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    ip = address.address.split("%")[0]
                    names.add(f"[{ip}]" if ":" in ip else ip)
    with_port = {f"{name}:{port}" for name in names}
    # A browser leaves http's default port out of Host and Origin.
    return frozenset(with_port | names if port == 80 else with_port)


def loopback_authority(host: str) -> bool:
    """Whether a Host header names this machine by a loopback name, on any port."""
    name, colon, port = host.rpartition(":")
    if not colon or (name.count(":") and not name.endswith("]")) or not port.isdigit():
        name = host  # no port: "localhost", "[::1]"
    return name in _LOOPBACK_NAMES or is_loopback(name.strip("[]"))


def cross_site(headers: dict[str, str], host_ok: Callable[[str], bool]) -> str | None:
    """Why a request is refused as coming from another site, or None: its Host must be
    one HOST_OK takes (else DNS rebinding could name this server), and an Origin, if
    sent, that same host (else a page elsewhere sent it: a form needs no CORS)."""
    host = headers.get("host", "").lower()
    if not host_ok(host):
        return "this server answers only to its own address (the Host header names another)"
    origin = headers.get("origin")
    if origin is not None and origin.lower().partition("://")[2] != host:
        return f"cross-origin request from {origin} refused"
    return None


def cookie_name(port: int) -> str:
    """The token's cookie for a server on PORT: a browser sends a host's cookies to
    every port, so each server names its own."""
    return f"{COOKIE}_{port}"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope.get("headers", [])}


async def refuse(send: Send, status: int, message: str,
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer with STATUS and MESSAGE as the API's one-line JSON error."""
    body = jsontext.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class SameSite:
    """ASGI middleware for the Unix socket: the Host and Origin checks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = None if scope["type"] != "http" else \
            cross_site(_headers(scope), loopback_authority)
        if refused is not None:
            await refuse(send, 403, refused)
            return
        await self.app(scope, receive, send)


class TokenGate:
    """ASGI middleware for TCP: the Host and Origin checks, then the token. A browser
    that opens the dashboard with ?token= gets the cookie and the page without it."""

    def __init__(self, app: ASGIApp, token: str, hosts: frozenset[str], port: int) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts
        self.cookie = cookie_name(port)

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refused = cross_site(headers, self.hosts.__contains__)
        if refused is not None:
            await refuse(send, 403, refused)
            return
        bearer = headers.get("authorization", "")
        given = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        if given is None:
            cookies = SimpleCookie(headers.get("cookie", ""))
            given = cookies[self.cookie].value if self.cookie in cookies else None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"),
                         keep_blank_values=True)
        from_query = query.get("token", [None])[0]
        if given is None or self._token_ok(from_query):  # the URL's, over a stale cookie
            given = from_query
        if not self._token_ok(given):
            await refuse(send, 401, "a valid token is needed: Authorization: Bearer TOKEN, "
                         "or open the URL `orch serve` printed")
            return
        if from_query is None or not self._token_ok(from_query):
            await self.app(scope, receive, send)
            return
        cookie = (b"set-cookie", f"{self.cookie}={self.token}; Path=/; HttpOnly; "
                  "SameSite=Strict".encode())
        if scope.get("method") == "GET" and scope.get("path") == "/":
            # The dashboard opened from the printed URL: the token leaves the address
            # bar (and the history) for the cookie.
            rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs])
            await send({"type": "http.response.start", "status": 303, "headers": [
                (b"location", ("/?" + rest if rest else "/").encode()), cookie,
                (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), cookie]
            await send(message)

        await self.app(scope, receive, with_cookie)


class BodyLimit:
    """ASGI middleware: a request body over MAX_BODY is refused (413) before the API
    parses any of it; a body within it reaches the API whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"the request's body is over {MAX_BODY >> 20} MiB"
        declared = _headers(scope).get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:  # refused unread
            await refuse(send, 413, too_large)
            return
        body, more = bytearray(), True
        while more:  # a body sent without its length (chunked) is counted as it comes
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await refuse(send, 413, too_large)
                return
        whole = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def received() -> Message:  # the body, then what comes after (a disconnect)
            return whole.pop() if whole else await receive()

        await self.app(scope, received, send)


# --- Unix socket peers ------------------------------------------------------------------

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket SOCK."""
    if sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return int(_PEERCRED.unpack(raw)[1])


REFUSED_LINGER = 5.0  # seconds a refused peer has to read its answer
FORBIDDEN = (b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n"
             b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


def peer_protocol(base: type[Any], owner: int) -> type[Any]:
    """uvicorn's HTTP protocol BASE, refusing every connection on a Unix socket whose
    peer is not OWNER (the uid the server runs as): 403, then the connection closed
    once the peer has closed its side, or REFUSED_LINGER seconds later.

    The answer is sent at once and the server's side shut for writing, but the peer's
    request is read (and dropped) rather than the socket closed: closed, it would fail
    the peer's write of its request (EPIPE) before the peer could read why."""

    class PeerChecked(base):  # type: ignore[misc]
        refused = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else None
            if uid != owner:  # None: a caller that cannot be told is refused too
                self.refused = True
                who = "a caller of unknown uid" if uid is None else f"uid {uid}"
                body = jsontext.dumps({"error": f"{who} may not use the sessions of uid "
                                                f"{owner}"}).encode()
                transport.write(FORBIDDEN % (len(body), body))
                transport.write_eof()
                import asyncio

                asyncio.get_event_loop().call_later(REFUSED_LINGER, transport.close)

        def data_received(self, data: bytes) -> None:
            if not self.refused:  # a refused peer's request goes nowhere
                super().data_received(data)

        def eof_received(self) -> bool | None:
            if self.refused:
                self.transport.close()
                return None
            return cast(bool | None, super().eof_received())

    return PeerChecked
