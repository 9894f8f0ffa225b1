"""orch.limits: which failures the API caused, read from the agents' real output
(tests/unit/data/agents: claude 2.1.197 and gemini 0.61.0 against scripted APIs) and,
for codex and gemini, from the texts their sources print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orch.limits import ApiFailure, Failure, classify
from orch.results import ResultFormat

AGENTS = Path(__file__).parent / "data" / "agents"
CLAUDE = ResultFormat.CLAUDE_STREAM_JSON
NOW = 1_800_000_000.0


def _sample(name: str) -> list[str]:
    return (AGENTS / name).read_text().splitlines()


@pytest.mark.parametrize(("sample", "expected"), [
    ("claude-usage-limit.jsonl",
     ApiFailure(Failure.USAGE_LIMIT, "usage limit (five_hour)", 1796569200.0)),
    ("claude-rate-limited.jsonl", ApiFailure(Failure.TRANSIENT, "rate limited (429)")),
    ("claude-overloaded.jsonl", ApiFailure(Failure.TRANSIENT, "API overloaded (529)")),
    ("claude-overloaded-repeated.jsonl",
     ApiFailure(Failure.TRANSIENT, "API overloaded (repeated 529)")),
    ("claude-overload-recovered.jsonl", None),  # retried by the CLI itself, and succeeded
    ("claude-tools.jsonl", None),
    ("claude-not-logged-in.jsonl", None),  # no wait cures a missing login
])
def test_claude_runs_as_the_api_ended_them(sample: str, expected: ApiFailure | None) -> None:
    assert classify(CLAUDE, _sample(sample), NOW) == expected


def _result(**fields: object) -> str:
    return json.dumps({"type": "result", "subtype": "success", "is_error": True,
                       "result": "x", **fields})


def _synthetic(error: str) -> str:
    return json.dumps({"type": "assistant", "error": error, "message": {
        "model": "<synthetic>", "content": [{"type": "text", "text": "x"}]}})


def test_the_task_s_own_failure_is_never_the_api_s() -> None:
    assert classify(CLAUDE, [_result(subtype="error_max_turns", api_error_status=None)],
                    NOW) is None
    assert classify(CLAUDE, [_result(is_error=False, api_error_status=429)], NOW) is None
    assert classify(CLAUDE, [_synthetic("rate_limit")], NOW) is None  # no result: cut off


def test_rejected_without_a_reset_is_a_rate_limit_not_a_usage_limit() -> None:
    event = json.dumps({"type": "rate_limit_event",
                        "rate_limit_info": {"status": "rejected", "isUsingOverage": False}})
    assert classify(CLAUDE, [event, _synthetic("rate_limit"), _result(api_error_status=429)],
                    NOW) == ApiFailure(Failure.TRANSIENT, "rate limited (429)")


def test_a_connection_its_retries_never_reached_is_transient() -> None:
    retry = json.dumps({"type": "system", "subtype": "api_retry", "error_status": None,
                        "error": "unknown"})
    lines = [retry, _synthetic("unknown"), _result(api_error_status=None)]
    assert classify(CLAUDE, lines, NOW) == ApiFailure(Failure.TRANSIENT, "API unreachable")
    assert classify(CLAUDE, lines[1:], NOW) is None  # unknown, and never retried: not ours


def test_malformed_lines_are_no_verdict() -> None:
    assert classify(CLAUDE, ["not json", "[]", '{"type": "result"}'], NOW) is None


def test_codex_says_it_in_words() -> None:
    codex = ResultFormat.CODEX_JSONL
    limit = json.dumps({"type": "error", "message": "You've hit your usage limit. Upgrade "
                        "to Pro or try again at 3:05 PM."})
    assert classify(codex, [limit], NOW) == ApiFailure(Failure.USAGE_LIMIT, "usage limit")
    failed = json.dumps({"type": "turn.failed", "error": {
        "message": "exceeded retry limit, last status: 429 Too Many Requests, request id: x"}})
    assert classify(codex, [failed], NOW) == ApiFailure(Failure.TRANSIENT, "rate limited (429)")
    own = json.dumps({"type": "turn.failed", "error": {"message": "sandbox denied write"}})
    assert classify(codex, [own], NOW) is None


def test_gemini_gives_its_reset_as_a_delay() -> None:
    gemini = ResultFormat.GEMINI_JSON
    spent = json.dumps({"type": "result", "status": "error", "error": {
        "type": "TerminalQuotaError", "message": "You have exhausted your capacity on this "
        "model. Your quota will reset after 2h52m39s."}})
    assert classify(gemini, [spent], NOW) == ApiFailure(
        Failure.USAGE_LIMIT, "usage limit", NOW + 2 * 3600 + 52 * 60 + 39)
    busy = json.dumps({"type": "error", "message": "[API Error: 503 Service Unavailable]"})
    assert classify(gemini, [busy], NOW) == ApiFailure(Failure.TRANSIENT, "API error (503)")
    exhausted = json.dumps({"type": "error", "message": "RESOURCE_EXHAUSTED: slow down"})
    assert classify(gemini, [exhausted], NOW) == ApiFailure(Failure.TRANSIENT, "rate limited")


def test_plain_text_agents_are_never_classified() -> None:
    assert classify(ResultFormat.TEXT, ["429 Too Many Requests"], NOW) is None


@pytest.mark.parametrize(("sample", "expected"), [
    # An API key's day spent: a usage limit, its reset unsaid (--limit-wait decides).
    ("gemini-daily-quota.jsonl", ApiFailure(Failure.USAGE_LIMIT, "usage limit")),
    # A 429 whose words name no status: only gemini's advice after it says what it is.
    ("gemini-rate-limited.jsonl", ApiFailure(Failure.TRANSIENT, "rate limited")),
])
def test_gemini_runs_as_the_api_ended_them(sample: str, expected: ApiFailure) -> None:
    assert classify(ResultFormat.GEMINI_JSON, _sample(sample), NOW) == expected


def test_codex_s_words_for_a_500_are_an_overload() -> None:
    # codex 0.171, its model server answering 500 (tests/integration/fake_openai.py).
    demand = json.dumps({"type": "error", "message": "We\u2019re currently experiencing "
                         "high demand, which may cause temporary errors."})
    assert classify(ResultFormat.CODEX_JSONL, [demand], NOW) == ApiFailure(
        Failure.TRANSIENT, "API overloaded")


def test_copilot_says_it_in_its_session_error() -> None:
    # copilot 1.0.102, its model server answering 429 each time: its own retries spent.
    spent = json.dumps({"type": "session.error", "data": {
        "errorType": "rate_limit", "statusCode": 429,
        "message": "Failed to get response from the AI model; retried 5 times (total "
                   "retry wait time: 56 seconds) Last error: 429 scripted rate limit"}})
    copilot = ResultFormat.COPILOT_JSONL
    assert classify(copilot, [spent], NOW) == ApiFailure(Failure.TRANSIENT, "rate limited (429)")
    own = json.dumps({"type": "session.error", "data": {"message": "tool bash failed"}})
    assert classify(copilot, [own], NOW) is None
