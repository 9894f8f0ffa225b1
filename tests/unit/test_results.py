"""Reading an agent's output: real captures from the installed CLIs (see
data/agents/README.md), synthetic runs shaped like their documented events, junk, and
nothing at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orch.results import AgentResult, ResultFormat, parse

DATA = Path(__file__).parent / "data" / "agents"
CLAUDE_SID = "8b7c1c9e-2f4e-4b7a-9d1e-3c5a7e9f0b12"


def lines(*events: object) -> list[str]:
    """One compact JSON line per event, as the CLIs print and journald keeps them."""
    return [json.dumps(event) for event in events]


def read(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


# -- claude ------------------------------------------------------------------------

def test_claude_real_not_logged_in_output() -> None:
    result = parse(ResultFormat.CLAUDE_STREAM_JSON, read("claude-not-logged-in.jsonl"))
    assert result == AgentResult(
        provider_session_id="281f8d9c-4d8f-44e1-90a7-bc9ad5e52f1a",
        final_result="Not logged in · Please run /login",
        is_error=True,
        usage={"input_tokens": 0, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0, "output_tokens": 0},
        cost_usd=0.0,
    )


CLAUDE_OK = lines(
    {"type": "system", "subtype": "init", "cwd": "/w", "session_id": CLAUDE_SID,
     "model": "claude-sonnet-4-5", "permissionMode": "default"},
    {"type": "assistant", "session_id": CLAUDE_SID, "message": {
        "role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}]}},
    {"type": "user", "session_id": CLAUDE_SID, "message": {
        "role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                     "content": "a.py"}]}},
    {"type": "assistant", "session_id": CLAUDE_SID, "message": {
        "role": "assistant", "content": [{"type": "text", "text": "There is one file."}]}},
    {"type": "result", "subtype": "success", "is_error": False, "num_turns": 2,
     "result": "There is one file: a.py.", "session_id": CLAUDE_SID,
     "total_cost_usd": 0.0123,
     "usage": {"input_tokens": 120, "cache_creation_input_tokens": 30,
               "cache_read_input_tokens": 900, "output_tokens": 45,
               "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard"}},
)


def test_claude_successful_run() -> None:
    assert parse(ResultFormat.CLAUDE_STREAM_JSON, CLAUDE_OK) == AgentResult(
        provider_session_id=CLAUDE_SID,
        final_result="There is one file: a.py.",
        is_error=False,
        usage={"input_tokens": 120, "cache_creation_input_tokens": 30,
               "cache_read_input_tokens": 900, "output_tokens": 45},
        cost_usd=0.0123,
    )


def test_claude_cut_short_keeps_the_session_and_last_words() -> None:
    result = parse(ResultFormat.CLAUDE_STREAM_JSON, CLAUDE_OK[:4])
    assert result == AgentResult(CLAUDE_SID, "There is one file.", False, None, None)


def test_claude_error_subtype_is_an_error() -> None:
    result = parse(ResultFormat.CLAUDE_STREAM_JSON, lines(
        {"type": "result", "subtype": "error_max_turns", "session_id": CLAUDE_SID,
         "num_turns": 3}))
    assert result.is_error
    assert result.provider_session_id == CLAUDE_SID
    assert result.final_result is None


def test_a_conversations_interrupted_turn_has_no_answer_of_the_turn_before() -> None:
    said = {"type": "assistant", "session_id": CLAUDE_SID, "message": {
        "role": "assistant", "content": [{"type": "text", "text": "turn one's answer"}]}}
    first = {"type": "result", "subtype": "success", "session_id": CLAUDE_SID,
             "result": "turn one's answer"}
    interrupted = {"type": "result", "subtype": "error_during_execution",
                   "session_id": CLAUDE_SID, "is_error": True}
    result = parse(ResultFormat.CLAUDE_STREAM_JSON, lines(said, first, interrupted))
    # Before, the text said in turn one stood as this turn's answer: `result` printed
    # it, exit 0, for a turn that answered nothing.
    assert result.is_error and result.final_result is None
    cut = parse(ResultFormat.CLAUDE_STREAM_JSON, lines(said, first))
    assert cut.final_result == "turn one's answer"


# -- codex -------------------------------------------------------------------------

def test_codex_real_offline_output() -> None:
    result = parse(ResultFormat.CODEX_JSONL, read("codex-offline.jsonl"))
    assert result == AgentResult(
        provider_session_id="01a1fb97-d959-7d73-942d-086103f09217",
        final_result="Reconnecting... waiting for network (Connection failed: error sending "
                     "request)",
        is_error=True,
        usage=None,
        cost_usd=None,
    )


THREAD = "01a1fb99-427a-7441-9b1f-692f6ed0dbfa"
CODEX_OK = lines(
    {"type": "thread.started", "thread_id": THREAD},
    {"type": "turn.started"},
    {"type": "error", "message": "Reconnecting... 1/5 (stream disconnected)"},
    {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning",
                                        "text": "**Listing files**"}},
    {"type": "item.started", "item": {"id": "item_1", "type": "command_execution",
                                      "command": "ls", "aggregated_output": "",
                                      "exit_code": None, "status": "in_progress"}},
    {"type": "item.completed", "item": {"id": "item_1", "type": "command_execution",
                                        "command": "ls", "aggregated_output": "a.py\n",
                                        "exit_code": 0, "status": "completed"}},
    {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message",
                                        "text": "There is one file: a.py."}},
    {"type": "turn.completed", "usage": {"input_tokens": 2400, "cached_input_tokens": 1024,
                                         "output_tokens": 80}},
)


def test_codex_successful_run_survives_a_transient_error() -> None:
    assert parse(ResultFormat.CODEX_JSONL, CODEX_OK) == AgentResult(
        provider_session_id=THREAD,
        final_result="There is one file: a.py.",
        is_error=False,
        usage={"input_tokens": 2400, "cached_input_tokens": 1024, "output_tokens": 80},
        cost_usd=None,
    )


def test_codex_usage_adds_up_over_turns() -> None:
    result = parse(ResultFormat.CODEX_JSONL, [*CODEX_OK, *CODEX_OK[1:]])
    assert result.usage == {"input_tokens": 4800, "cached_input_tokens": 2048,
                            "output_tokens": 160}


def test_codex_failed_turn() -> None:
    result = parse(ResultFormat.CODEX_JSONL, lines(
        {"type": "thread.started", "thread_id": THREAD},
        {"type": "turn.started"},
        {"type": "turn.failed", "error": {"message": "stream error: 401 Unauthorized"}}))
    assert result == AgentResult(THREAD, "stream error: 401 Unauthorized", True, None, None)


def test_codex_failed_turn_keeps_an_answer_given_before() -> None:
    result = parse(ResultFormat.CODEX_JSONL, [
        *CODEX_OK[:7], *lines({"type": "turn.failed", "error": {"message": "boom"}})])
    assert result.is_error
    assert result.final_result == "There is one file: a.py."


# -- gemini ------------------------------------------------------------------------

GEMINI_SID = "a10dc6d4-f8b8-4f12-9a23-31cf8e5b26a5"


def test_gemini_real_offline_stream() -> None:
    result = parse(ResultFormat.GEMINI_JSON, read("gemini-offline-stream.jsonl"))
    assert result == AgentResult(GEMINI_SID, None, False, None, None)


def test_gemini_real_json_error_document() -> None:
    result = parse(ResultFormat.GEMINI_JSON, read("gemini-json-no-auth.json"))
    assert result.provider_session_id == "a4e91c94-c18c-4046-9703-4ee510fdc022"
    assert result.is_error
    assert result.final_result is not None
    assert result.final_result.startswith("Please set an Auth method")


GEMINI_OK = lines(
    {"type": "init", "timestamp": "t", "session_id": GEMINI_SID, "model": "gemini-2.5-pro"},
    {"type": "message", "timestamp": "t", "role": "user", "content": "how many files?"},
    {"type": "message", "role": "assistant", "content": "I'll ", "delta": True},
    {"type": "message", "role": "assistant", "content": "list them.", "delta": True},
    {"type": "tool_use", "tool_name": "list_directory", "tool_id": "c1",
     "parameters": {"path": "."}},
    {"type": "tool_result", "tool_id": "c1", "status": "success", "output": "a.py"},
    {"type": "message", "role": "assistant", "content": "There is ", "delta": True},
    {"type": "message", "role": "assistant", "content": "one file.", "delta": True},
    {"type": "result", "status": "success", "stats": {
        "total_tokens": 530, "input_tokens": 500, "output_tokens": 30, "cached": 100,
        "input": 400, "duration_ms": 2100, "tool_calls": 1,
        "models": {"gemini-2.5-pro": {"total_tokens": 530}}}},
)


def test_gemini_successful_stream_answers_with_the_last_turn() -> None:
    assert parse(ResultFormat.GEMINI_JSON, GEMINI_OK) == AgentResult(
        provider_session_id=GEMINI_SID,
        final_result="There is one file.",
        is_error=False,
        usage={"total_tokens": 530, "input_tokens": 500, "output_tokens": 30, "cached": 100},
        cost_usd=None,
    )


def test_gemini_stream_error_result() -> None:
    result = parse(ResultFormat.GEMINI_JSON, [*GEMINI_OK[:2], *lines(
        {"type": "error", "severity": "warning", "message": "Loop detected"},
        {"type": "result", "status": "error",
         "error": {"type": "FatalTurnLimitedError", "message": "Reached max session turns"},
         "stats": {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0, "cached": 0}})])
    assert result == AgentResult(GEMINI_SID, "Reached max session turns", True,
                                 {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
                                  "cached": 0}, None)


def test_gemini_json_document_among_other_lines() -> None:
    document = {
        "session_id": GEMINI_SID,
        "response": "There is one file.",
        "stats": {"models": {
            "gemini-2.5-pro": {"api": {"totalRequests": 2},
                               "tokens": {"prompt": 500, "candidates": 30, "total": 530,
                                          "cached": 100, "thoughts": 12, "tool": 0}},
            "gemini-2.5-flash": {"tokens": {"prompt": 50, "candidates": 5, "total": 55,
                                            "cached": 0}}},
            "tools": {"totalCalls": 1}},
    }
    text = ["YOLO mode is enabled. All tool calls will be automatically approved.",
            "{not json either",
            *json.dumps(document, indent=2).splitlines()]
    assert parse(ResultFormat.GEMINI_JSON, text) == AgentResult(
        provider_session_id=GEMINI_SID,
        final_result="There is one file.",
        is_error=False,
        usage={"input_tokens": 550, "output_tokens": 35, "total_tokens": 585, "cached": 100},
        cost_usd=None,
    )


# -- text --------------------------------------------------------------------------

def test_text_is_the_whole_output_trimmed() -> None:
    output = ["", "  ", "The sky is blue because", "", "of Rayleigh scattering.\n", "", ""]
    result = parse(ResultFormat.TEXT, output)
    assert result == AgentResult(
        None, "The sky is blue because\n\nof Rayleigh scattering.", False, None, None)


def test_text_of_only_blank_lines_is_no_result() -> None:
    assert parse(ResultFormat.TEXT, ["", " ", "\t"]).final_result is None


# -- junk and nothing --------------------------------------------------------------

JUNK = [
    "", "not json", "{broken", "[1, 2]", "42", '"a string"', "null", "{}", '{"type": 5}',
    "\x00\x1b[31mred\x1b[0m", "{" * 10_000,
    '{"type": "result", "usage": "lots", "total_cost_usd": "free", "is_error": "yes",'
    ' "result": 7, "session_id": ["x"]}',
    '{"type": "result", "total_cost_usd": true, "usage": {"input_tokens": true}}',
    '{"type": "assistant", "message": {"content": "not a list"}}',
    '{"type": "assistant", "message": {"content": [{"type": "text", "text": 3}, "x"]}}',
    '{"type": "thread.started", "thread_id": 12}',
    '{"type": "item.completed", "item": "x"}',
    '{"type": "item.completed", "item": {"type": "agent_message", "text": null}}',
    '{"type": "turn.completed", "usage": [1, 2]}',
    '{"type": "turn.failed", "error": "x"}',
    '{"type": "init", "session_id": null}',
    '{"type": "message", "role": "assistant", "content": 5, "delta": true}',
    '{"type": "result", "status": 3, "stats": "x", "error": "y"}',
]


@pytest.mark.parametrize("format", list(ResultFormat))
def test_junk_never_raises(format: ResultFormat) -> None:
    result = parse(format, JUNK)
    assert result.provider_session_id is None
    assert result.usage is None
    assert result.cost_usd is None


def test_junk_reports_nothing_for_claude() -> None:
    assert parse(ResultFormat.CLAUDE_STREAM_JSON, JUNK) == AgentResult(
        None, None, False, None, None)


def test_junk_between_real_events_is_skipped() -> None:
    mixed = [CLAUDE_OK[0], *JUNK, *CLAUDE_OK[1:]]
    assert parse(ResultFormat.CLAUDE_STREAM_JSON, mixed) == parse(
        ResultFormat.CLAUDE_STREAM_JSON, CLAUDE_OK)
    mixed = [CODEX_OK[0], *JUNK[:9], *CODEX_OK[1:]]
    assert parse(ResultFormat.CODEX_JSONL, mixed) == parse(ResultFormat.CODEX_JSONL, CODEX_OK)


@pytest.mark.parametrize("format", list(ResultFormat))
def test_no_output_is_an_empty_result(format: ResultFormat) -> None:
    assert parse(format, []) == AgentResult(None, None, False, None, None)
    assert parse(format, iter(["\n"])) == AgentResult(None, None, False, None, None)


def test_a_conversations_tokens_add_up_its_turns_and_each_turn_costs_what_it_added() -> None:
    from orch.results import turns

    recorded = (DATA / "claude-conversation.jsonl").read_text().splitlines()
    # Each turn's result has that turn's usage (12 in, 7 out), and the run's total cost.
    whole = parse(ResultFormat.CLAUDE_STREAM_JSON, recorded)
    assert whole.usage is not None and whole.cost_usd == 0.00047
    assert (whole.usage["input_tokens"], whole.usage["output_tokens"]) == (24, 14)
    each = turns(ResultFormat.CLAUDE_STREAM_JSON, recorded)
    assert [t.final_result for t in each] == ["first answer", "second answer"]
    assert [round(t.cost_usd or 0, 9) for t in each] == [0.000235, 0.000235]  # not 0.00047
    assert [t.usage and t.usage["input_tokens"] for t in each] == [12, 12]


def test_each_runs_lines_are_apart_so_totals_start_again() -> None:
    from orch.usecases.query import runs

    def entry(text: str, invocation: str | None) -> str:
        stamped = {"_SYSTEMD_INVOCATION_ID": invocation} if invocation else {}
        return json.dumps({"MESSAGE": text, **stamped})

    output = "\n".join([entry("a1", "inv1"), entry("a2", "inv1"), entry("gone", None),
                        entry("b1", "inv2"), entry("b2", None)])
    assert runs(output) == [["a1", "a2", "gone"], ["b1", "b2"]]
    # A first line not stamped is the first run's, not a run of its own.
    assert runs("\n".join([entry("early", None), entry("a1", "inv1"), entry("b1", "inv2")])
                ) == [["early", "a1"], ["b1"]]
    assert runs("") == []


# -- copilot -----------------------------------------------------------------------

COPILOT_SID = "5f0d2c1e-8a3b-4c6d-9e7f-0a1b2c3d4e5f"


def test_a_failed_copilot_run_says_why_in_its_final_result() -> None:
    # As copilot 1.0.102 ends a run whose model refused it (tests/integration/test_copilot).
    failed = lines({"type": "session.error", "data": {
                        "errorType": "rate_limit", "statusCode": 429,
                        "message": "Retries exhausted. Last error: 429 slow down"}},
                   {"type": "result", "sessionId": COPILOT_SID, "exitCode": 1,
                    "usage": {"premiumRequests": 0}})
    assert parse(ResultFormat.COPILOT_JSONL, failed) == AgentResult(
        provider_session_id=COPILOT_SID,
        final_result="Retries exhausted. Last error: 429 slow down", is_error=True,
        usage={"premiumRequests": 0}, cost_usd=None)


def test_a_copilot_run_that_recovered_from_an_error_keeps_its_answer() -> None:
    recovered = lines({"type": "session.error", "data": {"message": "a hiccup"}},
                      {"type": "assistant.message", "data": {"content": "done anyway"}},
                      {"type": "result", "sessionId": COPILOT_SID, "exitCode": 0})
    result = parse(ResultFormat.COPILOT_JSONL, recovered)
    assert (result.final_result, result.is_error) == ("done anyway", False)


def test_a_failed_copilot_run_says_its_answer_where_an_error_came_before_it() -> None:
    earlier = lines({"type": "session.error", "data": {"message": "an MCP server failed"}},
                    {"type": "assistant.message", "data": {"content": "3 tests still fail"}},
                    {"type": "result", "sessionId": COPILOT_SID, "exitCode": 1})
    result = parse(ResultFormat.COPILOT_JSONL, earlier)
    assert (result.final_result, result.is_error) == ("3 tests still fail", True)


def test_copilot_s_usage_is_its_premium_requests_not_its_durations() -> None:
    # A resumed run's sessionDurationMs counts from the conversation's start: summed over
    # invocations, it said nothing true.
    done = lines({"type": "result", "sessionId": COPILOT_SID, "exitCode": 0, "usage": {
        "premiumRequests": 1, "totalApiDurationMs": 57, "sessionDurationMs": 58_600}})
    assert parse(ResultFormat.COPILOT_JSONL, done).usage == {"premiumRequests": 1}
