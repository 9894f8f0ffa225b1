"""A scripted stand-in for the OpenAI Responses API, on loopback only.

The real `codex` CLI (a `responses` model provider in its config.toml) and the real
`copilot` CLI (COPILOT_PROVIDER_WIRE_API=responses) stream their requests here; each
POST /v1/responses is answered with the next scripted reply as the API's server-sent
events (response.created, output items and their deltas, response.completed with its
usage), or with a scripted HTTP error. Requests are kept for the test to inspect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.integration import scripted
from tests.integration.scripted import ScriptedHandler, Text, serving

MODEL = "gpt-5.5"
USAGE = {"input_tokens": 80, "input_tokens_details": {"cached_tokens": 0},
         "output_tokens": 16, "output_tokens_details": {"reasoning_tokens": 0},
         "total_tokens": 96}


@dataclass(frozen=True)
class FunctionCall:
    """Reply by calling the CLI's tool NAME with ARGUMENTS (the CLI runs it and asks
    again with its output as a function_call_output)."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Error:
    """Reply with an HTTP error in the API's error shape."""

    status: int
    message: str
    kind: str = "invalid_request_error"


Reply = Text | FunctionCall | Error


class Script(scripted.Script[Reply]):
    """The replies, one per request for a model turn."""

    def conversation(self) -> list[dict[str, Any]]:
        """The requests that asked for a model turn (not the CLIs' other calls)."""
        with self.lock:
            return [r for r in self.requests if r["path"].endswith("/responses")]


def _item(reply: Text | FunctionCall, number: int) -> dict[str, Any]:
    if isinstance(reply, Text):
        return {"type": "message", "id": f"msg_scripted_{number}", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}]}
    return {"type": "function_call", "id": f"fc_scripted_{number}",
            "call_id": f"call_scripted_{number}", "name": reply.name,
            "arguments": json.dumps(reply.arguments), "status": "completed"}


def _events(reply: Text | FunctionCall, number: int) -> Iterator[dict[str, Any]]:
    done = _item(reply, number)
    response: dict[str, Any] = {"id": f"resp_scripted_{number}", "object": "response",
                                "model": MODEL, "status": "in_progress", "output": [],
                                "usage": None}
    yield {"type": "response.created", "response": response}
    yield {"type": "response.in_progress", "response": response}
    if isinstance(reply, Text):
        yield {"type": "response.output_item.added", "output_index": 0,
               "item": {**done, "status": "in_progress", "content": []}}
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": done["id"], "output_index": 0, "content_index": 0}
        yield {"type": "response.content_part.added", **where, "part": part}
        yield {"type": "response.output_text.delta", **where, "delta": reply.text}
        yield {"type": "response.output_text.done", **where, "text": reply.text}
        yield {"type": "response.content_part.done", **where,
               "part": {**part, "text": reply.text}}
    else:
        yield {"type": "response.output_item.added", "output_index": 0,
               "item": {**done, "status": "in_progress", "arguments": ""}}
        where = {"item_id": done["id"], "output_index": 0}
        yield {"type": "response.function_call_arguments.delta", **where,
               "delta": done["arguments"]}
        yield {"type": "response.function_call_arguments.done", **where,
               "arguments": done["arguments"]}
    yield {"type": "response.output_item.done", "output_index": 0, "item": done}
    yield {"type": "response.completed",
           "response": {**response, "status": "completed", "output": [done], "usage": USAGE}}


def _handler(script: Script) -> type[ScriptedHandler]:
    class Handler(ScriptedHandler):
        def do_GET(self) -> None:
            script.requests.append({"path": self.path, "headers": self._headers(), "body": {}})
            self.send_json(404, {"error": {"type": "not_found", "message": "not scripted"}})

        def do_POST(self) -> None:
            request = {"path": self.path, "headers": self._headers(), "body": self.read_json()}
            if not self.path.rstrip("/").endswith("/responses"):
                script.requests.append(request)
                self.send_json(404, {"error": {"type": "not_found", "message": "not scripted"}})
                return
            reply = script.next(request)
            if isinstance(reply, Error):
                self.send_json(reply.status, {"error": {"type": reply.kind, "code": None,
                                                    "message": reply.message}})
                return
            self.begin_events()
            for sequence, data in enumerate(_events(reply, len(script.requests))):
                data = {**data, "sequence_number": sequence}
                self.wfile.write(f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"
                                 .encode())
            self.wfile.flush()
            self.close_connection = True

        def _headers(self) -> dict[str, str]:
            # Lower-cased: each CLI spells them its own way.
            return {name.lower(): value for name, value in self.headers.items()}

    return Handler


@contextmanager
def serve(replies: list[Reply]) -> Iterator[tuple[str, Script]]:
    """Serve REPLIES on 127.0.0.1 (an ephemeral port) for the duration; (base URL
    ending in /v1, script)."""
    script = Script(list(replies))
    with serving(_handler(script)) as url:
        yield f"{url}/v1", script
