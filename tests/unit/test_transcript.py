"""Agents' output as transcripts (orch.transcript), from real output the CLIs wrote
(tests/unit/data/agents, README there), and the logs printer that uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orch.journal_format import LogFormat, Printer
from orch.results import ResultFormat
from orch.transcript import Style, Transcript, key_argument

DATA = Path(__file__).parent / "data" / "agents"


def _render(name: str, format: ResultFormat, style: Style | None = None) -> list[str]:
    transcript = Transcript(format, style or Style())
    shown: list[str] = []
    for line in (DATA / name).read_text().splitlines():
        shown += transcript.feed(line)
    return shown + transcript.flush()


def test_a_claude_run_reads_as_calls_results_answer_and_cost() -> None:
    shown = _render("claude-tools.jsonl", ResultFormat.CLAUDE_STREAM_JSON)
    assert shown[0].startswith("── claude · claude-opus-4-8[1m] · session c586fd72-")
    assert shown[1] == "⏺ Bash  printf 'one\\ntwo\\nthree\\nfour\\nfive\\nsix\\nseven\\n'"
    assert shown[2:6] == ["  ⎿ one", "    two", "    three", "    … (+4 lines)"]
    assert "⏺ Read  /etc/hostname" in shown
    assert "⏺ Grep  needle" in shown  # the pattern, not the path, says what it does
    refused = next(line for line in shown if "No such tool available: Grep" in line)
    assert refused.startswith("  ⎿ <tool_use_error>")
    assert shown[-3:] == [
        "All done: the command printed seven lines.", "Second line of the answer.",
        "── success · 4 model turns · 48 in / 28 out tokens · $0.0012 · 0.3s ──"]
    # The 1,500-character init event and the tool list are nowhere.
    assert all(len(line) < 200 for line in shown)


def test_claude_errors_stand_out_and_colour_follows_the_style() -> None:
    plain = _render("claude-not-logged-in.jsonl", ResultFormat.CLAUDE_STREAM_JSON)
    assert "✗ Not logged in · Please run /login" in plain
    assert plain[-1].startswith("── error · 1 model turn ·")
    assert not any("\x1b[" in line for line in plain)
    coloured = _render("claude-not-logged-in.jsonl", ResultFormat.CLAUDE_STREAM_JSON,
                       Style(colour=True))
    assert "\x1b[31m✗ Not logged in · Please run /login\x1b[0m" in coloured


def test_a_long_call_is_cut_to_the_width_only_where_there_is_one() -> None:
    event = {"type": "assistant", "message": {"content": [
        {"type": "tool_use", "name": "Bash", "input": {"command": "x" * 300}}]}}
    narrow = Transcript(ResultFormat.CLAUDE_STREAM_JSON, Style(width=40))
    [line] = narrow.feed(json.dumps(event))
    assert len(line) == 40 and line.endswith("…") and line.startswith("⏺ Bash  xxx")
    [whole] = Transcript(ResultFormat.CLAUDE_STREAM_JSON).feed(json.dumps(event))
    assert whole == "⏺ Bash  " + "x" * 300


@pytest.mark.parametrize("format", list(ResultFormat))
@pytest.mark.parametrize("line", [
    '{"type": "brand_new_kind", "detail": 1}',
    '{"type": "assistant", "message": "not an object"}',
    '{"type": "user", "message": {"content": 7}}',
    '{"type": "item.completed", "item": null}',
    '{"type": "result", "usage": [], "num_turns": "x"}',
    '[1, 2]', '{"no_type": true}'])
def test_an_event_not_foreseen_is_one_compact_line_never_a_crash(format: ResultFormat,
                                                                   line: str) -> None:
    shown = Transcript(format).feed(line)
    assert len(shown) <= 1
    assert all(text.strip() for text in shown)
    if line.startswith('{"type": "brand_new_kind"') and format is not ResultFormat.TEXT:
        assert shown == ['· brand_new_kind {"type": "brand_new_kind", "detail": 1}']


def test_lines_that_are_not_events_are_shown_as_written() -> None:
    transcript = Transcript(ResultFormat.CLAUDE_STREAM_JSON)
    assert transcript.feed("npm WARN something") == ["npm WARN something"]
    assert transcript.feed("{not json") == ["{not json"]
    assert transcript.feed("   ") == []


def test_what_an_agent_its_tools_or_a_program_print_never_commands_the_terminal() -> None:
    title, clear = "\x1b]0;PWNED\x07", "\x1b[2J"
    said = [
        {"type": "assistant", "message": {"content": [
            {"type": "text", "text": f"first {title}red\nline two\tend"},
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "cat x"}}]}},
        {"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": f"{clear}tool-red"}]}},
    ]
    transcript = Transcript(ResultFormat.CLAUDE_STREAM_JSON, Style(colour=True))
    shown = [line for event in said for line in transcript.feed(json.dumps(event))]
    shown += transcript.feed(f"plain {clear}output")
    text = "\n".join(shown)
    assert "\x1b]" not in text and "\x1b[2J" not in text and "\x07" not in text
    assert "first \\x1b]0;PWNED\\x07red" in text and "\\x1b[2Jtool-red" in text
    assert "line two\tend" in text  # a newline and a tab stay what they are
    assert shown[-1] == "plain \\x1b[2Joutput"
    assert any("\x1b[" in line for line in shown)  # orch's own colour still reaches it


def test_gemini_shows_the_prompt_it_echoes_and_joins_streamed_text() -> None:
    shown = _render("gemini-offline-stream.jsonl", ResultFormat.GEMINI_JSON)
    assert shown[0] == ("── gemini · gemini-2.5-pro · "
                        "session a10dc6d4-f8b8-4f12-9a23-31cf8e5b26a5 ──")
    assert shown[1:] == ["> -x $(rm -rf /) {model}", "> 'quoted\" line2"]
    transcript = Transcript(ResultFormat.GEMINI_JSON)
    for piece in ("Hel", "lo wor", "ld\nbye"):
        assert transcript.feed(json.dumps({"type": "message", "role": "assistant",
                                           "content": piece, "delta": True})) == []
    end = transcript.feed(json.dumps({"type": "result", "status": "success", "stats": {
        "input_tokens": 10, "output_tokens": 3, "tool_calls": 1, "duration_ms": 1500}}))
    assert end == ["Hello world", "bye",
                   "── success · 1 tool call · 10 in / 3 out tokens · 1.5s ──"]


def test_codex_shows_its_thread_and_each_error_once() -> None:
    shown = _render("codex-offline.jsonl", ResultFormat.CODEX_JSONL)
    assert shown[0] == "── codex · thread 01a1fb97-d959-7d73-942d-086103f09217 ──"
    assert shown[1].startswith("✗ Reconnecting... 2/5")
    lines = (DATA / "codex-offline.jsonl").read_text().splitlines()
    assert len(shown) == len(lines) - 1  # turn.started says nothing


def test_a_codex_turn_that_fails_with_the_error_just_shown_shows_it_once() -> None:
    # codex prints its error as an `error` event, then again as the turn's failure.
    transcript = Transcript(ResultFormat.CODEX_JSONL)
    said = "unexpected status 401 Unauthorized"
    shown = [line for event in (
        {"type": "turn.started"}, {"type": "error", "message": said},
        {"type": "turn.failed", "error": {"message": said}},
        {"type": "turn.started"}, {"type": "turn.failed", "error": {"message": said}})
        for line in transcript.feed(json.dumps(event))]
    assert shown == [f"✗ {said}", f"✗ {said}"]  # once for each turn that failed


def test_a_codex_command_shows_when_it_starts_and_its_output_when_done() -> None:
    transcript = Transcript(ResultFormat.CODEX_JSONL)
    item = {"id": "item_1", "type": "command_execution", "command": "ls -1",
            "aggregated_output": "a\nb\n", "exit_code": None, "status": "in_progress"}
    assert transcript.feed(json.dumps({"type": "item.started", "item": item})) == [
        "⏺ shell  ls -1"]
    done = {**item, "exit_code": 0, "status": "completed"}
    assert transcript.feed(json.dumps({"type": "item.completed", "item": done})) == [
        "  ⎿ a", "    b"]


def test_key_argument_prefers_what_the_call_does() -> None:
    assert key_argument({"description": "d", "command": "make"}) == "make"
    assert key_argument('{"file_path": "/a"}') == "/a"
    assert key_argument({"n": 3}) == '{"n": 3}'
    assert key_argument("plain words") == "plain words"


def _entry(message: str, invocation: str) -> dict[str, str]:
    return {"MESSAGE": message, "_SYSTEMD_INVOCATION_ID": invocation,
            "__REALTIME_TIMESTAMP": "1796552101969116"}


def test_the_printer_marks_each_invocation_and_flushes_held_text_first() -> None:
    written: list[str] = []
    printer = Printer(LogFormat.TRANSCRIPT, written.append,
                      [("aaa", 1796552101969116), ("bbb", 1796552101969117)],
                      transcript=Transcript(ResultFormat.GEMINI_JSON))
    delta = json.dumps({"type": "message", "role": "assistant", "content": "half",
                        "delta": True})
    printer(_entry(delta, "aaa"))
    printer(_entry("plain", "bbb"))
    printer(_entry(delta, "bbb"))
    printer.finish()
    lines = "".join(written).splitlines()
    assert lines[0].startswith("-- invocation 1 (aaa) started")
    assert lines[1] == "half"  # the first run's text, before the second run's mark
    assert lines[2].startswith("-- invocation 2 (bbb) started")
    assert lines[3:] == ["plain", "half"]


def test_a_conversations_turns_share_one_header_until_the_next_invocation() -> None:
    transcript = Transcript(ResultFormat.CLAUDE_STREAM_JSON)
    init = json.dumps({"type": "system", "subtype": "init", "model": "m", "session_id": "s",
                       "cwd": "/w"})
    echoed = json.dumps({"type": "user", "message": {"role": "user", "content": [
        {"type": "text", "text": "next question"}]}})
    assert transcript.feed(init) == ["── claude · m · session s · /w ──"]
    assert transcript.feed(echoed) == ["> next question"]
    assert transcript.feed(init) == []  # the same conversation's next turn
    assert transcript.restart() == []
    assert transcript.feed(init) == ["── claude · m · session s · /w ──"]


def test_claudes_bookkeeping_of_a_long_tool_call_and_an_interrupt_is_not_shown() -> None:
    # claude 2.1 tells of a tool call that runs over ~2 s (task_started, then
    # task_notification) and answers orch's interrupt (control_response): the call and
    # its result are shown already. Before, each was a line of raw JSON, and top's LAST.
    transcript = Transcript(ResultFormat.CLAUDE_STREAM_JSON)
    for event in ({"type": "system", "subtype": "task_started", "task_id": "b6",
                   "tool_use_id": "t1", "description": "run it", "task_type": "local_bash"},
                  {"type": "system", "subtype": "task_notification", "task_id": "b6",
                   "status": "completed", "summary": "run it"},
                  {"type": "control_response", "response": {"subtype": "success",
                                                            "request_id": "orch-1"}}):
        assert transcript.feed(json.dumps(event)) == []
    other = {"type": "system", "subtype": "compact_boundary", "trigger": "auto"}
    assert transcript.feed(json.dumps(other))[0].startswith("· compact_boundary ")


def test_a_real_conversation_reads_turn_by_turn_and_each_turns_result_is_kept() -> None:
    from orch.results import turns

    shown = _render("claude-conversation.jsonl", ResultFormat.CLAUDE_STREAM_JSON)
    assert [line for line in shown if not line.startswith("──")] == [
        "> hello one", "first answer", "> hello two", "second answer"]
    assert len([line for line in shown if line.startswith("── claude ·")]) == 1
    assert len([line for line in shown if line.startswith("── success ·")]) == 2
    lines = (DATA / "claude-conversation.jsonl").read_text().splitlines()
    found = turns(ResultFormat.CLAUDE_STREAM_JSON, lines)
    assert [t.final_result for t in found] == ["first answer", "second answer"]
    [conversation] = {t.provider_session_id for t in found}
    assert conversation is not None and conversation.startswith("e848cafe-2c9f-")
    # A turn under way (no result yet) is the last, with what it said so far.
    partial = turns(ResultFormat.CLAUDE_STREAM_JSON, [*lines, *lines[4:7]])
    assert [t.final_result for t in partial] == ["first answer", "second answer",
                                                  "second answer"]
    assert turns(ResultFormat.CLAUDE_STREAM_JSON, lines[:2]) == []


def test_a_copilot_run_reads_as_its_call_result_answer_and_session() -> None:
    from orch.results import parse

    shown = _render("copilot-tools.jsonl", ResultFormat.COPILOT_JSONL)
    assert shown == [
        "> Print five lines with the shell",
        "⏺ bash  printf 'a\\nb\\nc\\nd\\ne\\n'",
        "  ⎿ a", "    b", "    c", "    … (+3 lines)",
        "Five lines were printed.",
        "── done · 0 premium requests · 0.3s · session 4f0c1d52-9a1e-4c3b-8a57-0b6f3e2d9c11 ──"]
    for name, answer in (("copilot-tools.jsonl", "Five lines were printed."),
                         ("copilot-hello.jsonl", "Hello from copilot.")):
        said = parse(ResultFormat.COPILOT_JSONL, (DATA / name).read_text().splitlines())
        assert (said.final_result, said.is_error) == (answer, False)
        # copilot names its conversation only here: the id orch gave it with --session-id.
        assert said.provider_session_id == "4f0c1d52-9a1e-4c3b-8a57-0b6f3e2d9c11"
        assert said.usage is not None and said.usage["premiumRequests"] == 0


def test_a_gemini_run_with_a_tool_joins_its_streamed_answer() -> None:
    shown = _render("gemini-tools.jsonl", ResultFormat.GEMINI_JSON)
    assert shown == [
        "── gemini · gemini-2.5-pro · session efe16205-43c8-4a4d-8a6c-837d93b96289 ──",
        "> Print four lines with the shell",
        "⏺ run_shell_command  printf 'x\\ny\\nz\\nw\\n'",
        "  ⎿ x", "    y", "    z", "    … (+1 line)",
        "The shell printed four lines for you.",  # two deltas, one line
        "── success · 1 tool call · 60 in / 12 out tokens · 0.2s ──"]


def test_a_codex_run_shows_its_command_once_with_its_output() -> None:
    shown = _render("codex-tools.jsonl", ResultFormat.CODEX_JSONL)
    assert shown == [
        "── codex · thread 01a24b1e-a294-75f3-9000-29b1d0585d3e ──",
        "⏺ shell  /bin/bash -lc \"printf 'p\\\\nq\\\\nr\\\\ns\\\\n'\"",  # at item.started
        "  ⎿ p", "    q", "    r", "    … (+1 line)",  # at item.completed
        "Codex printed four lines.",
        "── turn done · 80 in / 16 out tokens ──"]


def test_claudes_own_retries_rate_limits_and_multi_line_commands_read_as_words() -> None:
    transcript = Transcript(ResultFormat.CLAUDE_STREAM_JSON)

    def shown(event: dict[str, object]) -> list[str]:
        return transcript.feed(json.dumps(event))

    retry = {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10,
             "retry_delay_ms": 514.5662344453737, "error_status": 529, "error": "overloaded"}
    assert shown(retry) == ["· retrying (1/10) in 0.5s: 529 overloaded"]  # not its JSON
    allowed = {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed"}}
    assert shown(allowed) == ["· rate limit allowed"]  # not "(?)"
    call = {"type": "assistant", "message": {"content": [{
        "type": "tool_use", "id": "t", "name": "Bash",
        "input": {"command": "echo multi\necho line"}}]}}
    assert shown(call) == ["⏺ Bash  echo multi ⏎ echo line"]  # not one command of four words
