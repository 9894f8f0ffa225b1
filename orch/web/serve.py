"""`orch serve`: the HTTP API and dashboard (orch.web.app) on uvicorn.

- Started by its socket (`orch-web.socket`, LISTEN_FDS): on that Unix socket, each
  peer checked by its credentials; it exits once nobody has been connected for a while
  (the socket starts it again at the next connection).
- Else in the foreground on TCP (--listen, loopback unless --allow-remote), every
  request needing the token; the URL to open, token included, goes to stderr.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

from orch.errors import UsageError
from orch.web.access import (
    SameSite,
    TokenGate,
    allowed_hosts,
    is_loopback,
    load_token,
    parse_listen,
    peer_protocol,
)

DEFAULT_LISTEN = "127.0.0.1:8765"
IDLE_EXIT_S = 600.0  # a socket-activated server with no connection this long exits
SD_LISTEN_FDS_START = 3
GRACE_S = 3


def activated_socket() -> socket.socket | None:
    """The socket systemd passed this process (socket activation), if it passed one."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for the sessions this server starts
    if count != 1:
        raise UsageError(f"orch serve takes one socket from systemd, not {count}")
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX:
        # Only a Unix socket tells who calls (SO_PEERCRED), and no token guards this one.
        raise UsageError("orch serve takes only a Unix socket from systemd (ListenStream= "
                         "a path); for a TCP port, run it with --listen, behind its token")
    return sock


def _raise_open_files() -> None:
    """Let this process open as many files as its hard limit allows: each follower of a
    session's output holds the journal's files open (some 40), so the usual soft limit
    of 1,024 ran out at about 25 followers. (Every wait on a file orch does is a poll(),
    which takes any descriptor number.)"""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def command(listen: str | None = None, token_file: str | None = None,
            allow_remote: bool = False, idle_exit: str | None = None,
            user: bool = False, system: bool = False) -> int:
    """`orch serve`."""
    from orch import api, vendor
    from orch.timespan import parse_seconds

    vendor.activate()  # a package carries FastAPI and uvicorn there

    scope = api.current_scope(user, system)
    _raise_open_files()
    idle = IDLE_EXIT_S if idle_exit is None else parse_seconds(idle_exit, "--idle-exit")
    activated = activated_socket() if listen is None else None
    if activated is not None:
        return _serve_socket(scope, activated, idle)
    host, port = parse_listen(listen or DEFAULT_LISTEN)
    if not is_loopback(host) and not allow_remote:
        raise UsageError(f"--listen {listen}: not a loopback address; anyone who can reach "
                         "it may try the token: give --allow-remote to mean it")
    token = load_token(Path(token_file) if token_file else None)
    return _serve_tcp(scope, host, port, token)


def _config(app: object, http: object = "h11") -> object:
    import uvicorn

    # An event stream never ends by itself: at a stop, give requests a moment, then end.
    return uvicorn.Config(app, http=http, ws="none", lifespan="off",  # type: ignore[arg-type]
                          log_level="warning", access_log=False, server_header=False,
                          timeout_graceful_shutdown=GRACE_S)


def _serve_tcp(scope: object, host: str, port: int, token: str) -> int:
    import uvicorn

    from orch.web.app import create_app

    app = TokenGate(create_app(scope), token, allowed_hosts(host, port),  # type: ignore[arg-type]
                    port)
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # before saying so: a client may connect at once
    except OSError as err:
        raise UsageError(f"--listen {host}:{port}: {err.strerror}") from None
    shown = f"[{host}]" if ":" in host else host
    print(f"orch: serving {scope} sessions on http://{shown}:{port}/?token={token}",
          file=sys.stderr, flush=True)
    server = uvicorn.Server(_config(app))  # type: ignore[arg-type]
    server.run(sockets=[sock])
    return 0


def _serve_socket(scope: object, sock: socket.socket, idle_exit: float) -> int:
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from orch.web.app import create_app

    config = _config(SameSite(create_app(scope)),  # type: ignore[arg-type]
                     http=peer_protocol(H11Protocol, os.geteuid()))
    server = uvicorn.Server(config)  # type: ignore[arg-type]

    async def main() -> None:
        async def exit_when_idle() -> None:
            quiet_since = time.monotonic()
            while not server.should_exit:
                await asyncio.sleep(min(idle_exit, 5.0))
                if server.server_state.connections:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= idle_exit:
                    server.should_exit = True

        watcher = asyncio.create_task(exit_when_idle())
        await server.serve(sockets=[sock])
        watcher.cancel()

    asyncio.run(main())
    return 0
