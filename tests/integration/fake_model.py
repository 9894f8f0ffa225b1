"""A scripted stand-in for the Anthropic Messages API, on loopback only.

The real `claude` CLI, given ANTHROPIC_BASE_URL=http://127.0.0.1:PORT, streams its
requests here; each POST /v1/messages is answered with the next scripted reply as the
API's server-sent events (message_start, content_block_*, message_delta, message_stop),
or with a scripted HTTP error (a usage limit, a rate limit, an overload: see Error and
the helpers after it). Requests are kept for the test to inspect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.integration import scripted
from tests.integration.scripted import ScriptedHandler, Text, serving


@dataclass(frozen=True)
class ToolUse:
    """Reply by calling a tool (the CLI runs it and asks again with its result)."""

    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Error:
    """Reply with an HTTP error in the API's error shape, with these response HEADERS:
    the CLI decides from the status and headers alone whether to retry, give up or
    report a usage limit, so a test scripts them exactly (see the helpers below)."""

    status: int
    message: str
    kind: str = "invalid_request_error"
    headers: tuple[tuple[str, str], ...] = ()
    # Also refuse the CLI's side requests (the session title...) while this reply is
    # next: an account over its usage limit is refused everything, and a refused title
    # request is why the CLI can print its rate_limit_event before system/init.
    everywhere: bool = False


def usage_limit(resets_at: int, window: str = "five_hour") -> Error:
    """A subscriber's spent usage WINDOW (five_hour, seven_day...), as the API refuses
    it: 429 with the `anthropic-ratelimit-unified-*` headers, which claude 2.1.197 reads
    only under subscription auth (CLAUDE_CODE_OAUTH_TOKEN) and turns into a
    `rate_limit_event` with status rejected, resetsAt RESETS_AT (epoch seconds) and
    rateLimitType WINDOW. A subscriber's 429 is never retried: the run ends at once
    ("You've hit your session limit · resets 3pm (UTC)"). Under an API key the CLI
    ignores these headers and retries it like any 429 (10 retries, minutes)."""
    abbrev = {"five_hour": "5h", "seven_day": "7d"}.get(window, window)
    return Error(429, "This request would exceed your account's rate limit. "
                 "Please try again later.", "rate_limit_error", headers=(
                     ("anthropic-ratelimit-unified-status", "rejected"),
                     ("anthropic-ratelimit-unified-reset", str(resets_at)),
                     ("anthropic-ratelimit-unified-representative-claim", window),
                     (f"anthropic-ratelimit-unified-{abbrev}-utilization", "1.0"),
                     (f"anthropic-ratelimit-unified-{abbrev}-reset", str(resets_at)),
                     ("anthropic-ratelimit-unified-overage-status", "rejected"),
                     ("anthropic-ratelimit-unified-overage-disabled-reason",
                      "org_level_disabled")), everywhere=True)


def rate_limited(retry_after: int) -> Error:
    """An API key's rate limit: 429 with `retry-after` RETRY_AFTER seconds and no
    unified headers, so no reset time. claude 2.1.197 waits that long and retries if
    it is at most 60 s; over that it gives up at once (`api_error_status` 429, no
    rate_limit_event). A subscriber gets a rate_limit_event without resetsAt."""
    return Error(429, "This request would exceed the rate limit for your organization. "
                 "Please try again later.", "rate_limit_error",
                 headers=(("retry-after", str(retry_after)),))


OVERLOADED = Error(529, "Overloaded", "overloaded_error")
"""The API at capacity: the CLI retries it with backoff (`system`/`api_retry` events;
CLAUDE_CODE_MAX_RETRIES caps the retries) and, out of retries, fails with status 529;
an Opus model under an API key without IS_SANDBOX gives up after 3 in a row instead,
with `api_error_status` null ("Repeated 529 Overloaded errors")."""


Reply = Text | ToolUse | Error


Script = scripted.Script[Reply]


def _aside(upcoming: Reply) -> Reply:
    # The CLI's side requests (a title for the session, say) offer no tools: only the
    # conversation itself follows the script, but an error meant for everything is
    # theirs too.
    if isinstance(upcoming, Error) and upcoming.everywhere:
        return upcoming
    return Text("Scripted title")


def _events(reply: Text | ToolUse, number: int) -> Iterator[tuple[str, dict[str, Any]]]:
    usage = {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0}
    yield "message_start", {"type": "message_start", "message": {
        "id": f"msg_scripted_{number}", "type": "message", "role": "assistant",
        "model": "claude-scripted", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": usage}}
    if isinstance(reply, Text):
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}
        for delta in reply.chunks():
            yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": delta}}
        stop = "end_turn"
    else:
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "tool_use",
                                                        "id": f"toolu_scripted_{number}",
                                                        "name": reply.name, "input": {}}}
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "input_json_delta",
                                                "partial_json": json.dumps(reply.input)}}
        stop = "tool_use"
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": 7}}
    yield "message_stop", {"type": "message_stop"}


def _handler(script: Script) -> type[ScriptedHandler]:
    class Handler(ScriptedHandler):
        def do_POST(self) -> None:
            payload = self.read_json()
            if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                self.send_json(404, {"type": "error", "error": {"type": "not_found_error",
                                                            "message": "not scripted"}})
                return
            reply = script.next({"path": self.path, "headers": dict(self.headers.items()),
                                 "body": payload}, None if payload.get("tools") else _aside)
            if isinstance(reply, Error):
                self.send_json(reply.status, {"type": "error", "error": {
                    "type": reply.kind, "message": reply.message}}, reply.headers)
                return
            self.begin_events()
            for event, data in _events(reply, len(script.requests)):
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

    return Handler


@contextmanager
def serve(replies: list[Reply]) -> Iterator[tuple[str, Script]]:
    """Serve REPLIES on 127.0.0.1 (an ephemeral port) for the duration; (base URL, script)."""
    script = Script(list(replies))
    with serving(_handler(script)) as url:
        yield url, script
