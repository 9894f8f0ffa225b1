"""`orch serve` run by a test as one caller, against real managers: its address and
token, requests with or without them, Server-Sent Events read as they come, and the
server ended by its own PID."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.integration.conftest import ORCH, Orch

TOKEN = "test-token-0123456789-abcdefghij"
DEADLINE_S = 30.0


def free_port() -> int:
    """A TCP port free on loopback now (the box shares the host's network)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # the last of each name
    body: bytes
    every_header: list[tuple[str, str]] = field(default_factory=list)  # a name many times

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A running `orch serve --listen 127.0.0.1:PORT` of ORCH's caller."""

    orch: Orch
    port: int
    url: str = ""
    pid: str = ""
    stderr: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
                headers: dict[str, str] | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        connection.request(method, path, data, sent)
        response = connection.getresponse()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                        response.read(), [(k.lower(), v) for k, v in response.getheaders()])
        connection.close()
        return answer

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        answer = self.request(method, path, body)
        assert answer.status == status, (answer.status, answer.body)
        return answer.json()

    @contextmanager
    def events(self, path: str, last_event_id: str | None = None) -> Iterator[EventStream]:
        """The Server-Sent Events of PATH, read as they come."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE_S)
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        try:
            assert connection.sock is not None
            yield EventStream(response, connection.sock)
        finally:
            connection.close()


class EventStream:
    """Events (id, event type, data) parsed from a text/event-stream response."""

    def __init__(self, response: http.client.HTTPResponse, sock: socket.socket) -> None:
        self.response = response
        self.sock = sock
        self.buffer = b""

    def next(self, timeout: float = DEADLINE_S) -> tuple[str | None, str, str]:
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"no event within {timeout}s; read so far: {self.buffer!r}"
            self.sock.settimeout(left)
            try:
                chunk = self.response.read1(65536)  # the chunked encoding undone
            except TimeoutError:
                continue
            assert chunk, f"the stream ended; read so far: {self.buffer!r}"
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\n\n", 1)
        event_id, kind, data = None, "message", []
        for line in raw.decode().split("\n"):
            name, _, value = line.partition(": ")
            if name == "id":
                event_id = value
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif line.startswith(":"):
                return self.next(deadline - time.monotonic())  # a keepalive comment
        return event_id, kind, "\n".join(data)


@contextmanager
def serving(orch: Orch, *args: str, open_files: int | None = None) -> Iterator[Server]:
    """`orch serve --listen 127.0.0.1:PORT --token-file F ARGS` as ORCH's caller (with a
    soft limit of OPEN_FILES, if given), until it has said where it serves; ended by its
    PID (inside the box) afterwards."""
    server = Server(orch, free_port())
    token_file = orch.owned_file("web-token", TOKEN + "\n")
    os.chmod(token_file, 0o600)
    limit = f"ulimit -Sn {open_files}; " if open_files is not None else ""
    argv = ["sh", "-c", limit + 'echo "$$" >&2; exec "$0" "$@"', ORCH, "serve", "--listen",
            server.host, "--token-file", str(token_file), *args]
    process = orch.machine.popen(argv, user=orch.user, env=orch.env)
    assert process.stderr is not None
    try:
        server.pid = process.stderr.readline().strip()
        line = process.stderr.readline()
        server.stderr.append(line)
        assert "serving" in line, (line, process.stderr.read() if process.poll() else "")
        server.url = line.split(" on ", 1)[1].strip()
        yield server
    finally:
        if server.pid:
            orch.machine.run(["kill", server.pid], user=orch.user)
        process.wait(timeout=30)
