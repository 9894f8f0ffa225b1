"""A scripted stand-in for the Gemini API (generativelanguage v1beta), on loopback only.

The real `gemini` CLI, given GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT and an API
key, posts each model turn to `/v1beta/models/MODEL:streamGenerateContent?alt=sse`;
it is answered with the next scripted reply as server-sent events, each a
GenerateContentResponse, or with a scripted error in Google's error shape. Its side
requests (`:generateContent` for a summary or a classifier, `:countTokens`) get a
short canned answer and do not move the script. Requests are kept for inspection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.integration import scripted
from tests.integration.scripted import ScriptedHandler, Text, serving

MODEL = "gemini-2.5-pro"


@dataclass(frozen=True)
class Call:
    """Reply by calling a function (one of the CLI's tools: it runs it and asks again
    with a functionResponse)."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Error:
    """Reply with an HTTP error in Google's shape: {"error": {code, message, status,
    details}}. The CLI classifies it from the code, message and details alone."""

    code: int
    message: str
    status: str = "INVALID_ARGUMENT"
    details: tuple[dict[str, Any], ...] = ()


def capacity_exhausted(reset: str) -> Error:
    """A spent quota as a Code Assist account meets it: 429 RESOURCE_EXHAUSTED saying
    when it resets. gemini 0.61 retries it silently (1 s, then 3 s: CAPACITY_ATTEMPTS
    requests in all) and then ends with it as its result's error, exit 173. (With a
    RetryInfo delay in the details it sleeps that delay between those attempts instead,
    hours for a real reset: a session would sit running all that time.)"""
    return Error(429, "You have exhausted your capacity on this model. "
                 f"Your quota will reset after {reset}.", "RESOURCE_EXHAUSTED")


CAPACITY_ATTEMPTS = 3


def daily_quota() -> Error:
    """An API key's spent daily quota, as the Gemini API refuses it: 429 with a
    QuotaFailure whose quota id is a per-day one. gemini 0.61 gives up at once ("You
    have exhausted your daily quota on this model."), exit 173, never saying when it
    resets."""
    return Error(429, "You exceeded your current quota, please check your plan and billing "
                 "details. Please retry in 41.2s.", "RESOURCE_EXHAUSTED", (
                     {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                         {"quotaMetric": "generativelanguage.googleapis.com/"
                                         "generate_content_free_tier_requests",
                          "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
                     {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                      "retryDelay": "41s"}))


def rate_limited() -> Error:
    """A rate limit: 429 RESOURCE_EXHAUSTED with no details. gemini 0.61 retries it
    (general.maxAttempts, 10 by default, 5 s to 30 s apart) and then ends with it, exit
    173, its message followed by advice to "request a quota increase"."""
    return Error(429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED")


Reply = Text | Call | Error
USAGE = {"promptTokenCount": 60, "candidatesTokenCount": 12, "totalTokenCount": 72}


def _aside(upcoming: Reply) -> Reply:
    return Text("Scripted side answer")  # a classifier's, a token count's


class Script(scripted.Script[Reply]):
    """The replies, one per streamed turn."""

    @property
    def turns_asked(self) -> list[dict[str, Any]]:
        """The streamed requests (the conversation's turns), in order."""
        with self.lock:
            return [r for r in self.requests if ":streamGenerateContent" in r["path"]]


def _response(parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    response: dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL}
    if last:
        candidate["finishReason"] = "STOP"
        response["usageMetadata"] = USAGE
    return response


def _responses(reply: Text | Call, stream: bool) -> list[dict[str, Any]]:
    """REPLY as GenerateContentResponses: one, or its chunks when streamed."""
    if isinstance(reply, Call):
        return [_response([{"functionCall": {"name": reply.name, "args": reply.args}}], True)]
    chunks = reply.chunks() if stream else [reply.text]
    return [_response([{"text": chunk}], i == len(chunks) - 1) for i, chunk in enumerate(chunks)]


def _handler(script: Script) -> type[ScriptedHandler]:
    class Handler(ScriptedHandler):
        def do_GET(self) -> None:
            self.send_json(404, {"error": {"code": 404, "message": "not scripted",
                                       "status": "NOT_FOUND"}})

        def do_POST(self) -> None:
            request = {"path": self.path, "headers": dict(self.headers.items()),
                       "body": self.read_json()}
            if ":countTokens" in self.path:
                with script.lock:
                    script.requests.append(request)
                self.send_json(200, {"totalTokens": 60})
                return
            turn = ":streamGenerateContent" in self.path
            reply = script.next(request, None if turn else _aside)
            if isinstance(reply, Error):
                self.send_json(reply.code, {"error": {
                    "code": reply.code, "message": reply.message, "status": reply.status,
                    "details": list(reply.details)}})
            elif ":streamGenerateContent" in self.path:
                self.begin_events()
                for response in _responses(reply, stream=True):
                    self.wfile.write(f"data: {json.dumps(response)}\r\n\r\n".encode())
                    self.wfile.flush()
            else:
                self.send_json(200, _responses(reply, stream=False)[0])

    return Handler


@contextmanager
def serve(replies: list[Reply]) -> Iterator[tuple[str, Script]]:
    """Serve REPLIES on 127.0.0.1 (an ephemeral port) for the duration; (base URL, script)."""
    script = Script(list(replies))
    with serving(_handler(script)) as url:
        yield url, script
