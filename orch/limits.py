"""Why an agent's run failed, when the API failed it rather than the task: a usage limit
(come back at its reset) or a transient failure (overload, rate limit, lost connection:
retry). Pure: the agent's output lines in, a verdict out.

What each provider says (README, "Running a fleet unattended"):
- claude (stream-json; measured with 2.1.197): every API failure ends with a result
  of `is_error: true`, `subtype: success`; `api_error_status` 429/529/5xx, or null
  with a `<synthetic>` assistant message whose `error` names the kind (rate_limit,
  overloaded, server_error, unknown...). A usage limit also prints a `rate_limit_event`
  with status rejected and `resetsAt` (epoch seconds); status rejected without
  resetsAt is not one ("not your usage limit"). The task's own failure is a result
  with another subtype, or is_error false.
- codex (`exec --json`), gemini (stream-json) and copilot (json) say it in text only,
  in an error, failed-turn or session-error event: "You've hit your usage limit",
  "exhausted your capacity ... reset after 2h52m39s", "exhausted your daily quota",
  "429 Too Many Requests", "RESOURCE_EXHAUSTED", "503", "high demand" (codex's 500),
  "Last error: 429" (copilot, its own retries spent).
"""

from __future__ import annotations

import re
from enum import StrEnum

from orch.frozen import dataclass
from orch.results import ResultFormat, event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# HTTP statuses of an API that may answer next time.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})
# claude's <synthetic> message's `error` for a failure of the API, not of the request.
_TRANSIENT_ERRORS = {"rate_limit": "rate limited", "overloaded": "API overloaded",
                     "server_error": "API server error"}
_STATUS_WORDS = {429: "rate limited", 529: "API overloaded"}
_GEMINI_RESET = re.compile(r"reset after (?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class Failure(StrEnum):
    """The two API failures orch waits out."""

    USAGE_LIMIT = "usage-limit"  # come back when the limit resets
    TRANSIENT = "transient"  # retry with backoff


@dataclass(frozen=True)
class ApiFailure:
    """An API failure: its kind, in words (for `ps`, `show` and the events), and when
    a usage limit resets (epoch seconds; None where the provider does not say)."""

    kind: Failure
    reason: str
    resets_at: float | None = None


def classify(form: ResultFormat, lines: Iterable[str], now: float) -> ApiFailure | None:
    """The API failure that ended the run whose output is LINES (in FORM), or None if
    it did not fail, failed on its own, or failed in a way no wait would cure. NOW
    (epoch seconds) dates a reset that a provider gives as a delay."""
    events = [e for e in map(event, lines) if e is not None]
    if form is ResultFormat.CLAUDE_STREAM_JSON:
        return _claude(events)
    if form in (ResultFormat.CODEX_JSONL, ResultFormat.GEMINI_JSON,
                ResultFormat.COPILOT_JSONL):
        return _from_text(_error_texts(events), now)
    return None


def _claude(events: list[dict[str, Any]]) -> ApiFailure | None:
    results = [e for e in events if e.get("type") == "result"]
    if not results:
        return None
    result = results[-1]
    if result.get("is_error") is not True or result.get("subtype") != "success":
        return None  # succeeded, or the task itself failed (error_max_turns...)
    status = result.get("api_error_status")
    synthetic = [e.get("error") for e in events if e.get("type") == "assistant"
                 and isinstance(e.get("message"), dict)
                 and e["message"].get("model") == "<synthetic>"]
    error = synthetic[-1] if synthetic else None
    limit = _rejected(events)
    if limit is not None and (status == 429 or error == "rate_limit"):
        return limit
    if isinstance(status, int) and status in TRANSIENT_STATUS:
        word = _STATUS_WORDS.get(status, "API error")
        return ApiFailure(Failure.TRANSIENT, f"{word} ({status})")
    if error in _TRANSIENT_ERRORS:
        if "529" in str(result.get("result")):  # "Repeated 529 Overloaded errors"
            return ApiFailure(Failure.TRANSIENT, "API overloaded (repeated 529)")
        return ApiFailure(Failure.TRANSIENT, _TRANSIENT_ERRORS[str(error)])
    retried = any(e.get("type") == "system" and e.get("subtype") == "api_retry"
                  for e in events)
    if error == "unknown" and retried:  # its retries met no answer at all
        return ApiFailure(Failure.TRANSIENT, "API unreachable")
    return None


def _rejected(events: list[dict[str, Any]]) -> ApiFailure | None:
    """The usage limit a claude rate_limit_event reports: rejected, with a reset."""
    for item in reversed(events):
        info = item.get("rate_limit_info") if item.get("type") == "rate_limit_event" else None
        if isinstance(info, dict) and info.get("status") == "rejected":
            resets = info.get("resetsAt")
            if isinstance(resets, int | float) and not isinstance(resets, bool):
                window = info.get("rateLimitType")
                reason = f"usage limit ({window})" if isinstance(window, str) else "usage limit"
                return ApiFailure(Failure.USAGE_LIMIT, reason, float(resets))
            return None
    return None


def _error_texts(events: list[dict[str, Any]]) -> list[str]:
    """The messages of error events and failed turns or results (codex, gemini), and of
    copilot's session errors ("... retried 5 times ... Last error: 429 ...")."""
    texts = []
    for item in events:
        kind = item.get("type")
        error = item.get("error")
        data = item.get("data")
        if kind == "error" and isinstance(item.get("message"), str):
            texts.append(item["message"])
        elif kind == "session.error" and isinstance(data, dict) \
                and isinstance(data.get("message"), str):
            texts.append(data["message"])
        elif kind in ("turn.failed", "result") and isinstance(error, dict) \
                and isinstance(error.get("message"), str):
            texts.append(error["message"])
    return texts


def _from_text(texts: list[str], now: float) -> ApiFailure | None:
    for text in reversed(texts):
        lowered = text.lower()
        # gemini under an API key: a per-day quota spent ("You have exhausted your daily
        # quota on this model."), its reset unsaid.
        if "usage limit" in lowered or "exhausted your capacity" in lowered \
                or "quota will reset" in lowered or "exhausted your daily quota" in lowered:
            match = _GEMINI_RESET.search(text)
            resets = None
            if match and any(match.groups()):
                hours, minutes, seconds = (int(g or 0) for g in match.groups())
                resets = now + hours * 3600 + minutes * 60 + seconds
            return ApiFailure(Failure.USAGE_LIMIT, "usage limit", resets)
        status = re.search(r"\b(408|429|50[0234]|529)\b", text)
        # gemini tells an API key or Vertex user to "request a quota increase" after
        # every 429's message, which itself names no status ("Resource has been
        # exhausted (e.g. check quota).").
        rate_limited = "resource_exhausted" in lowered or "request a quota increase" in lowered
        # codex 0.171 words every 500 as demand ("We're currently experiencing high
        # demand, which may cause temporary errors."), with no status.
        overloaded = "overloaded" in lowered or "high demand" in lowered
        if status or rate_limited or overloaded:
            code = f" ({status[1]})" if status else ""
            word = _STATUS_WORDS.get(int(status[1]) if status else 0, "API error")
            if rate_limited:
                word = "rate limited"
            elif overloaded and not status:
                word = "API overloaded"
            return ApiFailure(Failure.TRANSIENT, word + code)
    return None
