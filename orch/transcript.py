"""An agent's output as a transcript a person reads: what it said, each tool call with
its key argument, a short tool result, errors, and per turn the tokens and cost.

One renderer per output format a provider speaks (orch.results.ResultFormat), fed one
whole output line at a time, so that following live and reading afterwards show the
same. A line that is not an event of the format is shown as it is; an event kind a
renderer does not know is shown compactly on one line: never a crash, never a blank.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from orch import jsontext
from orch.results import ResultFormat
from orch.results import event as parse_event
from orch.visible import MULTILINE, visible

# A tool result is shown by its first lines, with a count of what was cut.
RESULT_LINES = 3
# An event nobody renders is shown as its JSON, cut to this many characters.
COMPACT_CHARS = 160
# What claude tells that a transcript already shows otherwise: a tool call running over
# a few seconds (its call and result are shown), the answer to orch's own interrupt.
_CLAUDE_UNSHOWN = frozenset({"task_started", "task_notification", "control_response"})
# The argument that says what a tool call does, by the names tools give it.
KEY_ARGUMENTS = ("command", "cmd", "pattern", "query", "file_path", "path", "notebook_path",
                 "filePath", "absolute_path", "url", "prompt", "description")

Event = dict[str, Any]
# copilot's events that say nothing a reader of the transcript needs (deltas of what a
# later event says whole, turn bookkeeping, progress).
COPILOT_QUIET = frozenset({
    "assistant.message_start", "assistant.message_delta", "assistant.turn_start",
    "assistant.turn_end", "assistant.idle", "assistant.tool_call_delta",
    "tool.shell_output", "tool.execution_partial_result"})


@dataclass(frozen=True)
class Style:
    """How lines are decorated: COLOUR (ANSI) and WIDTH (tool lines are cut to it;
    None: whole)."""

    colour: bool = False
    width: int | None = None

    @staticmethod
    def for_stream(stream: TextIO) -> Style:
        """Colour and width as STREAM takes them: on a terminal, its width (as `orch ps`
        fits its table: orch.render) and colour unless NO_COLOR is set; elsewhere plain
        whole lines."""
        from orch.render import table_width

        width = table_width(stream)
        return Style(colour=width is not None and not os.environ.get("NO_COLOR"), width=width)

    def paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    def cut(self, text: str, indent: int = 0) -> str:
        """TEXT on one line (its line breaks marked ⏎), cut to the width (less INDENT
        columns)."""
        flat = " ⏎ ".join(" ".join(line.split()) for line in text.strip().splitlines())
        if self.width is None or len(flat) + indent <= self.width:
            return flat
        room = max(self.width - indent - 1, 8)
        return flat[:room] + "…"

    def dim(self, text: str) -> str:
        return self.paint("2", text)

    def bold(self, text: str) -> str:
        return self.paint("1", text)

    def error(self, text: str) -> str:
        return self.paint("31", text)


def key_argument(arguments: Any) -> str:
    """What a tool call does, in a few words: its command, path or pattern."""
    if isinstance(arguments, str):
        try:
            arguments = jsontext.loads(arguments)
        except ValueError:
            return str(arguments)
    if not isinstance(arguments, dict):
        return "" if arguments is None else str(arguments)
    for name in KEY_ARGUMENTS:
        value = arguments.get(name)
        if isinstance(value, str) and value:
            return value
    for value in arguments.values():
        if isinstance(value, str) and value:
            return value
    return jsontext.dumps(arguments, ascii=False) if arguments else ""


def _text_of(content: Any) -> str:
    """The text of a tool result's content: a string, or blocks of text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text", "") for b in content if isinstance(b, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    if isinstance(content, dict):
        return _text_of(content.get("content", content.get("text", "")))
    return "" if content is None else str(content)


def _count(number: Any, noun: str) -> str:
    """NUMBER NOUNs ('' if not a number)."""
    if not isinstance(number, int):
        return ""
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _tokens(count: Any) -> str:
    return f"{count:,}" if isinstance(count, int) else "?"


class Transcript:
    """Renders one session's output lines in FORMAT, one line at a time."""

    def __init__(self, format: ResultFormat, style: Style | None = None) -> None:
        self.style = style or Style()
        self.format = format
        self._pending: list[str] = []  # streamed assistant text not yet shown (gemini)
        self._shown_calls: set[str] = set()  # tool calls already shown when they began
        self._header = ""  # the last run's header: a conversation's turns repeat it
        self._said_error = ""  # codex's last error event: its turn.failed repeats it
        renderers: dict[ResultFormat, Callable[[Event], list[str]]] = {
            ResultFormat.CLAUDE_STREAM_JSON: self._claude,
            ResultFormat.GEMINI_JSON: self._gemini,
            ResultFormat.CODEX_JSONL: self._codex,
            ResultFormat.COPILOT_JSONL: self._copilot,
        }
        self._render = renderers.get(format)

    def feed(self, line: str) -> list[str]:
        """The transcript lines for one output LINE: what the agent, its tools and the
        prompt said made visible (orch.visible) before it is styled."""
        event = parse_event(line)
        if event is None or self._render is None:
            return [*self.flush(), visible(line, MULTILINE)] if line.strip() else []
        event = _visible_in(event)
        try:
            shown = self._render(event)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            shown = [self._compact(event)]  # an event of a shape not foreseen
        if self._pending and not (self.format is ResultFormat.GEMINI_JSON
                                  and _is_gemini_delta(event)):
            shown = [*self.flush(), *shown]
        return shown

    def restart(self) -> list[str]:
        """A new invocation begins: what is held back, and its header is shown again."""
        self._header = ""
        return self.flush()

    def flush(self) -> list[str]:
        """Whatever is held back (streamed text waiting for its end)."""
        if not self._pending:
            return []
        text, self._pending = "".join(self._pending), []
        return text.splitlines() or [""]

    # -- shared pieces ------------------------------------------------------------

    def _compact(self, event: Event) -> str:
        kind = event.get("type", "?")
        text = jsontext.dumps(event, ascii=False)
        if len(text) > COMPACT_CHARS:
            text = text[:COMPACT_CHARS - 1] + "…"
        return self.style.dim(f"· {kind} {text}")

    def _call(self, name: str, arguments: Any) -> str:
        what = key_argument(arguments)
        head = f"⏺ {name}"
        return f"{self.style.bold(head)}  {self.style.cut(what, len(head) + 2)}".rstrip()

    def _result(self, text: str, is_error: bool = False) -> list[str]:
        lines = text.strip("\n").splitlines() or ["(no output)"]
        shown = [self.style.cut(line, 4) for line in lines[:RESULT_LINES]]
        if len(lines) > RESULT_LINES:
            shown.append(f"… (+{_count(len(lines) - RESULT_LINES, 'line')})")
        paint = self.style.error if is_error else self.style.dim
        return [paint(("  ⎿ " if i == 0 else "    ") + line) for i, line in enumerate(shown)]

    def _error(self, text: str) -> str:
        return self.style.error(f"✗ {self.style.cut(text, 2)}")

    def _turn(self, parts: list[str]) -> str:
        return self.style.dim("── " + " · ".join(p for p in parts if p) + " ──")

    # -- claude stream-json -------------------------------------------------------

    def _claude(self, event: Event) -> list[str]:
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            header = self._turn(["claude", str(event.get("model", "")),
                                 f"session {event.get('session_id', '?')}",
                                 str(event.get("cwd", ""))])
            if header == self._header:  # the next turn of the same conversation
                return []
            self._header = header
            return [header]
        if kind in _CLAUDE_UNSHOWN or (kind == "system"
                                       and event.get("subtype") in _CLAUDE_UNSHOWN):
            return []
        if kind == "system" and event.get("subtype") == "api_retry":
            return [self.style.dim(f"· {_retry(event)}")]
        if kind == "system":
            detail = {k: v for k, v in event.items()
                      if k not in ("type", "subtype", "session_id", "uuid")}
            return [self.style.dim(f"· {event.get('subtype', 'system')} "
                                   f"{self.style.cut(jsontext.dumps(detail), 20)}")]
        if kind == "assistant":
            return self._claude_blocks(event["message"].get("content") or [])
        if kind == "user":
            content = event["message"].get("content")
            if isinstance(content, str):
                return [f"> {line}" for line in content.splitlines()]
            shown: list[str] = []
            for block in content or []:
                if block.get("type") == "tool_result":
                    shown += self._result(_text_of(block.get("content")),
                                          bool(block.get("is_error")))
                elif block.get("type") == "text":
                    shown += [f"> {line}" for line in str(block.get("text", "")).splitlines()]
            return shown
        if kind == "result":
            return self._claude_result(event)
        if kind == "rate_limit_event":
            info = event.get("rate_limit_info") or {}
            limit = info.get("rateLimitType")
            return [self.style.dim(f"· rate limit {info.get('status', '?')}"
                                   + (f" ({limit})" if limit else ""))]
        return [self._compact(event)]

    def _claude_blocks(self, blocks: list[Event]) -> list[str]:
        shown: list[str] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                shown += str(block.get("text", "")).splitlines()
            elif kind == "tool_use":
                shown.append(self._call(str(block.get("name", "?")), block.get("input")))
            elif kind in ("thinking", "redacted_thinking"):
                shown.append(self.style.dim("✻ thinking…"))
            else:
                shown.append(self._compact(block))
        return shown

    def _claude_result(self, event: Event) -> list[str]:
        usage = event.get("usage") or {}
        cost = event.get("total_cost_usd")
        parts = [
            "error" if event.get("is_error") else str(event.get("subtype", "done")),
            _count(event.get("num_turns"), "model turn"),
            f"{_tokens(usage.get('input_tokens'))} in / {_tokens(usage.get('output_tokens'))} "
            "out tokens" if usage else "",
            f"${cost:.4f}" if isinstance(cost, (int, float)) else "",
            f"{event['duration_ms'] / 1000:.1f}s"
            if isinstance(event.get("duration_ms"), (int, float)) else "",
        ]
        shown = []
        if event.get("is_error"):
            status = event.get("api_error_status")
            text = str(event.get("result") or event.get("subtype") or "failed")
            shown.append(self._error(f"{text} (API status {status})" if status else text))
        return [*shown, self._turn(parts)]

    # -- gemini stream-json -------------------------------------------------------

    def _gemini(self, event: Event) -> list[str]:
        kind = event.get("type")
        if kind == "init":
            return [self._turn(["gemini", str(event.get("model", "")),
                                f"session {event.get('session_id', '?')}"])]
        if kind == "message":
            content = str(event.get("content", ""))
            if event.get("role") == "user":
                return [f"> {line}" for line in content.splitlines()]
            if event.get("delta"):
                self._pending.append(content)
                return []
            return content.splitlines()
        if kind == "tool_use":
            return [self._call(str(event.get("tool_name", "?")), event.get("parameters"))]
        if kind == "tool_result":
            failed = event.get("status") not in (None, "success")
            text = event.get("output")
            if failed and not text:
                text = (event.get("error") or {}).get("message", event.get("status"))
            return self._result(_text_of(text), failed)
        if kind == "error":
            return [self._error(str(event.get("message", "error")))]
        if kind == "result":
            stats = event.get("stats") or {}
            shown = []
            if event.get("status") not in (None, "success"):
                error = event.get("error") or {}
                shown.append(self._error(str(error.get("message") or event.get("status"))))
            parts = [str(event.get("status", "done")),
                     _count(stats.get("tool_calls"), "tool call"),
                     f"{_tokens(stats.get('input_tokens'))} in / "
                     f"{_tokens(stats.get('output_tokens'))} out tokens" if stats else "",
                     f"{stats['duration_ms'] / 1000:.1f}s"
                     if isinstance(stats.get("duration_ms"), (int, float)) else ""]
            return [*shown, self._turn(parts)]
        return [self._compact(event)]

    # -- codex exec --json --------------------------------------------------------

    def _codex(self, event: Event) -> list[str]:
        kind = event.get("type")
        if kind == "thread.started":
            return [self._turn(["codex", f"thread {event.get('thread_id', '?')}"])]
        if kind == "turn.started":
            self._said_error = ""
            return []
        if kind in ("item.started", "item.completed"):
            return self._codex_item(event["item"], kind == "item.completed")
        if kind == "item.updated":
            return []
        if kind == "turn.completed":
            usage = event.get("usage") or {}
            return [self._turn(["turn done",
                                f"{_tokens(usage.get('input_tokens'))} in / "
                                f"{_tokens(usage.get('output_tokens'))} out tokens"])]
        if kind == "turn.failed":
            said = str((event.get("error") or {}).get("message", "turn failed"))
            return [] if said == self._said_error else [self._error(said)]
        if kind == "error":
            self._said_error = str(event.get("message", "error"))
            return [self._error(self._said_error)]
        return [self._compact(event)]

    def _codex_item(self, item: Event, completed: bool) -> list[str]:
        kind = item.get("type")
        item_id = str(item.get("id", ""))
        if kind == "agent_message":
            return str(item.get("text", "")).splitlines() if completed else []
        if kind == "reasoning":
            return [self.style.dim(f"✻ {self.style.cut(str(item.get('text', '')), 2)}")] \
                if completed else []
        if kind == "error":
            return [self._error(str(item.get("message", "error")))]
        calls: dict[str, Callable[[], tuple[str, Any]]] = {
            "command_execution": lambda: ("shell", item.get("command")),
            "mcp_tool_call": lambda: (f"{item.get('server')}.{item.get('tool')}",
                                      item.get("arguments")),
            "web_search": lambda: ("web_search", item.get("query")),
            "file_change": lambda: ("edit", ", ".join(
                f"{c.get('kind', '?')} {c.get('path', '?')}" for c in item.get("changes") or [])),
        }
        if kind not in calls:
            return [self._compact(item)] if completed else []
        shown = []
        if item_id not in self._shown_calls:
            self._shown_calls.add(item_id)
            shown.append(self._call(*calls[kind]()))
        if completed and kind == "command_execution":
            failed = item.get("exit_code") not in (None, 0)
            shown += self._result(str(item.get("aggregated_output") or ""), failed)
        elif completed and item.get("status") == "failed":
            shown += self._result(str(item.get("error") or "failed"), True)
        return shown


    # -- copilot --output-format json ---------------------------------------------

    def _copilot(self, event: Event) -> list[str]:
        kind = str(event.get("type"))
        data = event.get("data") or {}
        if kind == "user.message":
            return [f"> {line}" for line in str(data.get("content", "")).splitlines()]
        if kind == "assistant.message":
            return str(data.get("content") or "").splitlines()  # its calls: when they run
        if kind == "tool.execution_start":
            return [self._call(str(data.get("toolName", "?")), data.get("arguments"))]
        if kind == "tool.execution_complete":
            outcome = data.get("result") or data.get("error") or {}
            return self._result(_text_of(outcome), data.get("success") is False)
        if kind == "result":
            usage = event.get("usage") or {}
            return [self._turn([
                "done" if event.get("exitCode") == 0 else f"exit {event.get('exitCode')}",
                _count(usage.get("premiumRequests"), "premium request"),
                f"{usage['sessionDurationMs'] / 1000:.1f}s"
                if isinstance(usage.get("sessionDurationMs"), (int, float)) else "",
                f"session {event.get('sessionId', '?')}"])]
        if "error" in kind:
            return [self._error(str(data.get("message") or kind))]
        if kind in COPILOT_QUIET or kind.startswith(("session.", "model.")):
            return []
        return [self._compact(event)]


def _retry(event: Event) -> str:
    """claude's own retry of a failed API call, as words: "retrying (1/10) in 0.5s: 529
    overloaded"."""
    attempt, most = event.get("attempt"), event.get("max_retries")
    delay = event.get("retry_delay_ms")
    why = " ".join(str(event[k]) for k in ("error_status", "error") if event.get(k))
    return "retrying" + (f" ({attempt}/{most})" if attempt and most else "") + (
        f" in {delay / 1000:.1f}s" if isinstance(delay, int | float) else "") + (
        f": {why}" if why else "")


def _visible_in(value: Any) -> Any:
    """VALUE (an event decoded from JSON) with each string in it made visible."""
    if isinstance(value, str):
        return visible(value, MULTILINE)
    if isinstance(value, list):
        return [_visible_in(item) for item in value]
    if isinstance(value, dict):
        return {visible(str(key)): _visible_in(item) for key, item in value.items()}
    return value


def _is_gemini_delta(event: Event) -> bool:
    return event.get("type") == "message" and bool(event.get("delta")) \
        and event.get("role") != "user"
