"""What the scripted model servers (fake_model, fake_openai, fake_gemini) share: a
quiet handler that reads a JSON request and answers JSON or begins an event stream,
served on loopback only for the length of a `with`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Text:
    """A reply of this text that ends the turn, streamed in chunks of CHUNK characters
    (0: one), as the APIs stream a long answer."""

    text: str
    chunk: int = 0

    def chunks(self) -> list[str]:
        """The text as the stream's events carry it."""
        if self.chunk <= 0 or not self.text:
            return [self.text]
        return [self.text[i:i + self.chunk] for i in range(0, len(self.text), self.chunk)]


@dataclass
class Script(Generic[R]):
    """Replies in order, one per turn of the conversation (the last one repeats once the
    others are used); every request kept for the test to inspect."""

    replies: list[R]
    requests: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, request: dict[str, Any], aside: Callable[[R], R] | None = None) -> R:
        """The reply to REQUEST: the next turn's; or, for a request of the CLI's own that
        is no turn (a title, a classifier), what ASIDE makes of the turn to come."""
        with self.lock:
            self.requests.append(request)
            if aside is not None:
                return aside(self.replies[min(self.turns + 1, len(self.replies)) - 1])
            self.turns += 1
            return self.replies[min(self.turns, len(self.replies)) - 1]


class ScriptedHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (the test reads what it kept)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_json(self) -> Any:
        """The request's body as JSON ({} where it is none)."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError:
            return {}

    def send_json(self, status: int, data: dict[str, Any],
                  headers: tuple[tuple[str, str], ...] = ()) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def begin_events(self) -> None:
        """A 200 whose body is server-sent events, written by the caller."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """HANDLER's server on 127.0.0.1 (an ephemeral port) for the duration; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
