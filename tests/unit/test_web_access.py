"""Who gets an answer from `orch serve` on TCP: the token (header, cookie, or once in
the URL), the Host and Origin checks, and the token file's rules; without systemd."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from orch.errors import UsageError
from orch.web.access import (
    SameSite,
    TokenGate,
    allowed_hosts,
    cookie_name,
    is_loopback,
    load_token,
    loopback_authority,
    parse_listen,
    peer_protocol,
)

TOKEN = "s3cret-token-of-32-characters-xx"
HOST = "127.0.0.1:8765"
COOKIE = cookie_name(8765)


def _hello() -> Starlette:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello),
                             Route("/api/x", hello, methods=["GET", "POST"])])


def _client(port: int = 8765) -> TestClient:
    gate = TokenGate(_hello(), TOKEN, allowed_hosts("127.0.0.1", port), port)
    return TestClient(gate, base_url=f"http://127.0.0.1:{port}")


def test_no_token_or_a_wrong_one_is_refused() -> None:
    client = _client()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Cookie": f"{COOKIE}=nope"}):
        answer = client.get("/api/x", headers=headers)
        assert answer.status_code == 401 and answer.json()["error"].startswith("a valid token")
    assert client.get("/api/x?token=nope").status_code == 401


def test_the_token_in_a_header_or_cookie_is_let_through() -> None:
    client = _client()
    assert client.get("/api/x", headers={"Authorization": f"Bearer {TOKEN}"}).text == "hello"
    assert client.get("/api/x", headers={"Cookie": f"{COOKIE}={TOKEN}"}).text == "hello"


def test_the_token_in_the_url_sets_a_strict_http_only_cookie_and_leaves_the_url() -> None:
    client = _client()
    answer = client.get(f"/?token={TOKEN}&host=h1", follow_redirects=False)
    # The dashboard's address loses the token (out of the history), keeping the rest.
    assert answer.status_code == 303 and answer.headers["location"] == "/?host=h1"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"orch_token_8765={TOKEN};")  # its port's own
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/").text == "hello"  # the browser's next request: the cookie
    assert client.get("/api/x").text == "hello"
    api = _client().get(f"/api/x?token={TOKEN}", follow_redirects=False)  # not the page
    assert api.text == "hello" and api.headers["set-cookie"].startswith(f"{COOKIE}={TOKEN};")


def test_the_token_in_the_url_wins_over_a_stale_cookie() -> None:
    answer = _client().get(f"/?token={TOKEN}", headers={"Cookie": f"{COOKIE}=stale"},
                           follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["set-cookie"].startswith(f"{COOKIE}={TOKEN};")


def test_another_ports_cookie_is_not_this_servers() -> None:
    other = _client().get("/api/x", headers={"Cookie": f"{cookie_name(8766)}={TOKEN}"})
    assert other.status_code == 401  # a server on another port: its own token, not ours


def test_a_foreign_host_is_refused_even_with_the_token() -> None:
    client = _client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for host in ("evil.example:8765", "127.0.0.1:9999", "localhost.evil.example:8765"):
        answer = client.get("/api/x", headers={**bearer, "Host": host})
        assert answer.status_code == 403 and "Host" in answer.json()["error"]
    assert client.get("/api/x", headers={**bearer, "Host": "localhost:8765"}).text == "hello"


def test_a_foreign_origin_is_refused_and_no_cors_is_offered() -> None:
    client = _client()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for origin in ("http://evil.example", "null", "http://localhost:8765"):  # not Host's
        answer = client.post("/api/x", headers={**bearer, "Origin": origin})
        assert answer.status_code == 403 and "cross-origin" in answer.json()["error"]
    same = client.post("/api/x", headers={**bearer, "Origin": f"http://{HOST}"})
    assert same.text == "hello"
    assert not any(h.startswith("access-control-") for h in same.headers)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8765", ("127.0.0.1", 8765)), ("[::1]:80", ("::1", 80)),
    ("0.0.0.0:1", ("0.0.0.0", 1))])
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8765", "host:", ":80", "h:0", "h:65536", "h:x"])
def test_bad_listen_addresses_are_one_line(text: str) -> None:
    with pytest.raises(UsageError, match="expected HOST:PORT"):
        parse_listen(text)


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["localhost", "127.0.0.1", "127.9.9.9", "::1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "example.org", "::"]))
    assert allowed_hosts("::1", 80) >= {"[::1]:80", "localhost:80"}
    assert allowed_hosts("10.1.2.3", 8080) == {"10.1.2.3:8080"}


def test_on_port_80_a_host_may_come_without_its_port() -> None:
    # As browsers send Host and Origin for http's default port.
    assert allowed_hosts("10.1.2.3", 80) == {"10.1.2.3:80", "10.1.2.3"}
    assert allowed_hosts("::1", 80) >= {"[::1]", "127.0.0.1", "localhost"}
    answer = _client(80).get("/api/x", headers={"Authorization": f"Bearer {TOKEN}",
                                                "Origin": "http://127.0.0.1"})
    assert answer.request.headers["host"] == "127.0.0.1" and answer.text == "hello"


def test_a_missing_token_file_is_made_private_with_a_random_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    first = load_token(None)
    path = tmp_path / "orch" / "web-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) >= 32
    assert load_token(None) == first  # kept
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other"))
    assert load_token(None) != first


def test_a_token_file_others_can_read_or_a_short_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(UsageError, match="readable by others"):
        load_token(path)
    os.chmod(path, 0o600)
    assert load_token(path) == TOKEN
    path.write_text("short\n")
    with pytest.raises(UsageError, match="16 characters"):
        load_token(path)
    with pytest.raises(UsageError, match="--token-file"):
        load_token(tmp_path / "missing")


def test_a_refused_peer_reads_its_answer_even_when_it_sends_its_request_after_it(
        tmp_path: Path) -> None:
    # A peer that is not the owner gets 403 at once; its request, sent after that,
    # must not fail (EPIPE on a socket already closed) before it can read why.
    import asyncio
    import socket

    received: list[bytes] = []

    class Base(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            received.append(data)

    checked = peer_protocol(Base, owner=os.getuid() + 1)
    path = str(tmp_path / "web.sock")
    answer: list[bytes] = []

    def client() -> None:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            data = sock.recv(4096)  # the answer came before the request went
            sock.sendall(b"GET /api/sessions HTTP/1.1\r\nHost: localhost\r\n\r\n")
            while chunk := sock.recv(4096):
                data += chunk
            answer.append(data)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_unix_server(checked, path)
        try:
            await asyncio.to_thread(client)
        finally:
            server.close()

    asyncio.run(serve())
    assert answer[0].startswith(b"HTTP/1.1 403 Forbidden")
    assert b"may not use the sessions" in answer[0] and received == []


def test_a_peer_whose_uid_cannot_be_told_is_refused() -> None:
    # A TCP peer has no SO_PEERCRED: let through, anyone on the machine got root's
    # sessions from a socket-activated server given a TCP socket.
    import asyncio
    import socket

    received: list[bytes] = []

    class Base(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received.append(data)

    checked = peer_protocol(Base, owner=os.getuid())
    answer: list[bytes] = []

    def client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /api/sessions HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            answer.append(data)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(checked, "127.0.0.1", 0)
        try:
            await asyncio.to_thread(client, server.sockets[0].getsockname()[1])
        finally:
            server.close()

    asyncio.run(serve())
    assert answer[0].startswith(b"HTTP/1.1 403 Forbidden")
    assert b"a caller of unknown uid" in answer[0] and received == []


def test_a_server_given_a_tcp_socket_by_systemd_refuses_to_serve_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from orch.web import serve

    with socket.socket(socket.AF_INET) as tcp:
        tcp.bind(("127.0.0.1", 0))
        monkeypatch.setattr(serve, "SD_LISTEN_FDS_START", os.dup(tcp.fileno()))
        monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
        monkeypatch.setenv("LISTEN_FDS", "1")
        with pytest.raises(UsageError, match="only a Unix socket"):
            serve.activated_socket()
        with socket.socket(socket.AF_UNIX) as unix:
            monkeypatch.setattr(serve, "SD_LISTEN_FDS_START", os.dup(unix.fileno()))
            monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
            monkeypatch.setenv("LISTEN_FDS", "1")
            given = serve.activated_socket()
            assert given is not None and given.family == socket.AF_UNIX
            given.close()


def _socket_client() -> TestClient:
    return TestClient(SameSite(_hello()), base_url="http://localhost")


def test_on_the_socket_a_loopback_host_on_any_port_gets_in_without_a_token() -> None:
    client = _socket_client()
    for host in ("localhost", "localhost:8765", "127.0.0.1:1", "[::1]:8765", "[::1]"):
        assert client.get("/api/x", headers={"Host": host}).text == "hello", host
    same = client.post("/api/x", headers={"Host": "localhost:8765",
                                          "Origin": "http://localhost:8765"})
    assert same.text == "hello"


def test_on_the_socket_another_sites_request_is_refused() -> None:
    client = _socket_client()
    # DNS rebinding through an ssh -L tunnel: the page's own name in Host.
    for host in ("attacker.example:8765", "localhost.attacker.example", "x", ""):
        answer = client.get("/api/x", headers={"Host": host})
        assert answer.status_code == 403 and "Host" in answer.json()["error"], host
    # A cross-site form posted through the tunnel: a loopback Host, another Origin.
    form = client.post("/api/x", headers={"Host": "localhost:8765",
                                          "Origin": "http://attacker.example:8765",
                                          "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 403 and "cross-origin" in form.json()["error"]


def test_loopback_authorities() -> None:
    assert all(map(loopback_authority, ["localhost", "localhost:80", "127.9.9.9:1",
                                        "[::1]", "[::1]:8765", "::1"]))
    assert not any(map(loopback_authority, ["", "x", "10.0.0.1:80", "[::2]:1",
                                            "localhost:x", "example.org:8765"]))
