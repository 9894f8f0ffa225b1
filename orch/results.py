"""What an agent's output says: its own session id, final answer, error flag and usage.

Reads the stdout lines journald kept for a session. Never raises on what it reads: junk
lines, partial output from an agent killed mid-run, or nothing at all give a result with
the fields it could not find left as None. Kept to json and dataclasses, so that it loads
fast wherever records are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from orch import jsontext


class ResultFormat(StrEnum):
    """Which parser reads a provider's output (the `results` key of a provider)."""

    CLAUDE_STREAM_JSON = "claude-stream-json"  # claude -p --output-format stream-json
    CODEX_JSONL = "codex-jsonl"  # codex exec --json
    COPILOT_JSONL = "copilot-jsonl"  # copilot --output-format json
    GEMINI_JSON = "gemini-json"  # gemini --output-format stream-json, or json
    TEXT = "text"  # plain text: the output is the answer


@dataclass(frozen=True)
class AgentResult:
    """What the output says about the agent's run."""

    provider_session_id: str | None  # the provider's own conversation id, for resuming
    final_result: str | None
    is_error: bool  # the output itself reports a failure
    usage: dict[str, int] | None  # token counts, under the provider's own names
    cost_usd: float | None


EMPTY = AgentResult(None, None, False, None, None)


def parse(format: ResultFormat, lines: Iterable[str]) -> AgentResult:
    """The result an agent's stdout lines report, in the given format."""
    text = [line.rstrip("\r\n") for line in lines]
    if format is ResultFormat.CLAUDE_STREAM_JSON:
        return _claude(_events(text))
    if format is ResultFormat.CODEX_JSONL:
        return _codex(_events(text))
    if format is ResultFormat.COPILOT_JSONL:
        return _copilot(_events(text))
    if format is ResultFormat.GEMINI_JSON:
        return _gemini(text)
    return _text(text)


def turns(format: ResultFormat, lines: Iterable[str]) -> list[AgentResult]:
    """What each turn in LINES (one run's output) said, oldest first: for claude, each
    `result` event ends a turn (a conversation has one per message; what follows the
    last one is a turn cut short or under way), its cost what the run's total rose by;
    any other format's output is one turn."""
    if format is not ResultFormat.CLAUDE_STREAM_JSON:
        whole = parse(format, lines)
        return [whole] if whole != EMPTY else []
    found: list[AgentResult] = []
    turn: list[dict[str, Any]] = []
    spent = 0.0  # claude's total_cost_usd: the run's so far, not the turn's
    for event in _events([line.rstrip("\r\n") for line in lines]):
        turn.append(event)
        if event.get("type") == "result":
            said = _claude(turn)
            if said.cost_usd is not None:
                cost, spent = max(said.cost_usd - spent, 0.0), said.cost_usd
                said = replace(said, cost_usd=cost)
            found.append(said)
            turn = []
    rest = _claude(turn)
    if rest.final_result is not None:
        found.append(rest)
    return found


def event(line: str) -> dict[str, Any] | None:
    """LINE as an agent's event, if it is a JSON object."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        value = jsontext.loads(stripped)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _events(lines: list[str]) -> list[dict[str, Any]]:
    """The lines that are JSON objects, in order; anything else is skipped."""
    return [found for found in map(event, lines) if found is not None]


def _str(value: object) -> str | None:
    """VALUE if it is a non-empty string."""
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    """VALUE if it is an integer (JSON true/false are not counts)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _counts(value: object) -> dict[str, int]:
    """The integer members of a JSON object; nested objects and strings are left out."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if _int(v) is not None}


def _add(total: dict[str, int], counts: dict[str, int]) -> None:
    for key, count in counts.items():
        total[key] = total.get(key, 0) + count


def _claude(events: list[dict[str, Any]]) -> AgentResult:
    """claude -p --output-format stream-json --verbose: a `system`/`init` event, then
    `assistant`/`user` messages, then one `result` event with the final text, is_error,
    usage and total_cost_usd. Every event carries session_id. A conversation has a
    `result` each turn: its usage the turn's (added up here), total_cost_usd the run's."""
    session_id: str | None = None
    last_text: str | None = None  # said since the last turn's result (a conversation's)
    result: dict[str, Any] | None = None
    answered: str | None = None  # what the turn RESULT ends said
    usage: dict[str, int] = {}  # a conversation's turns' together: each result has its own
    for event in events:
        session_id = _str(event.get("session_id")) or session_id
        kind = event.get("type")
        if kind == "assistant":
            last_text = _claude_text(event.get("message")) or last_text
        elif kind == "result":
            result, answered, last_text = event, last_text, None
            _add(usage, _counts(event.get("usage")))
    if result is None:
        # Cut short (killed, or still running): the last thing it said is all there is.
        return AgentResult(session_id, last_text, False, None, None)
    return replace(_claude_result(session_id, result, answered), usage=usage or None)


def _claude_result(session_id: str | None, result: dict[str, Any],
                   answered: str | None) -> AgentResult:
    """The AgentResult of claude's RESULT event, ANSWERED what was said in its turn."""
    subtype = result.get("subtype")
    is_error = result.get("is_error") is True or (
        isinstance(subtype, str) and subtype.startswith("error"))
    cost = result.get("total_cost_usd")
    return AgentResult(
        provider_session_id=session_id,
        final_result=_str(result.get("result")) or answered,
        is_error=is_error,
        usage=_counts(result.get("usage")) or None,
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
    )


def _claude_text(message: object) -> str | None:
    """The text blocks of an assistant message, joined."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return None
    parts = [block["text"] for block in message["content"]
             if isinstance(block, dict) and block.get("type") == "text"
             and isinstance(block.get("text"), str)]
    return _str("".join(parts))


def _codex(events: list[dict[str, Any]]) -> AgentResult:
    """codex exec --json (codex-rs/exec/src/exec_events.rs): `thread.started` carries
    thread_id (the id `codex exec resume` takes); each `turn.completed` carries usage;
    `item.completed` items of type agent_message carry the answer's text; a turn ends in
    `turn.failed` instead on failure, and `error` events report stream errors (including
    "Reconnecting..." while the network is down). No cost is printed."""
    thread_id: str | None = None
    answer: str | None = None
    error: str | None = None
    failed = False
    usage: dict[str, int] = {}
    for event in events:
        kind = event.get("type")
        if kind == "thread.started":
            thread_id = _str(event.get("thread_id")) or thread_id
        elif kind == "item.completed":
            item = event.get("item")
            # agent_message since 0.4x; assistant_message in earlier releases.
            if isinstance(item, dict) and item.get("type") in ("agent_message",
                                                                "assistant_message"):
                answer = _str(item.get("text")) or answer
        elif kind == "turn.completed":
            failed = False
            _add(usage, _counts(event.get("usage")))
        elif kind == "turn.failed":
            failed = True
            err = event.get("error")
            error = (_str(err.get("message")) if isinstance(err, dict) else None) or error
        elif kind == "error":
            # Fatal only if no turn completes after it: transient errors are followed
            # by a turn.completed, which clears this.
            failed = True
            error = _str(event.get("message")) or error
    return AgentResult(
        provider_session_id=thread_id,
        final_result=answer if answer is not None else (error if failed else None),
        is_error=failed,
        usage=usage or None,
        cost_usd=None,
    )


_GEMINI_EVENTS = ("init", "message", "tool_use", "tool_result", "error", "result")


def _copilot(events: list[dict[str, Any]]) -> AgentResult:
    """copilot --output-format json (1.0.102): one event per line, `{type, data, ...}`;
    `assistant.message` carries each answer's text (empty when it only calls tools), and
    the last line, `result`, the session's id (sessionId, which --resume takes), its
    exit code and usage (premium requests: no tokens, no cost)."""
    answer: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    for event in events:
        data = event.get("data")
        if event.get("type") == "assistant.message" and isinstance(data, dict):
            answer = _str(data.get("content")) or answer
            error = None  # an error the model answered after was not the run's end
        elif event.get("type") == "session.error" and isinstance(data, dict):
            # Why a run failed (the model's HTTP error, its retries spent): the only
            # words a failed run has, since it ends without an answer.
            error = _str(data.get("message")) or error
        elif event.get("type") == "result":
            result = event
    if result is None:
        return AgentResult(None, answer, False, None, None)
    failed = _int(result.get("exitCode")) not in (None, 0)
    return AgentResult(provider_session_id=_str(result.get("sessionId")),
                       final_result=error if failed and error else answer, is_error=failed,
                       usage=_premium(result.get("usage")), cost_usd=None)


def _premium(usage: object) -> dict[str, int] | None:
    """copilot's usage: its premium requests (its durations are times, not usage, and a
    resumed run's session duration counts from the conversation's start)."""
    counts = _counts(usage)
    return {"premiumRequests": counts["premiumRequests"]} if "premiumRequests" in counts \
        else None


def _gemini(lines: list[str]) -> AgentResult:
    """gemini in either of its JSON output formats (geminicli.com/docs/cli/headless):
    stream-json is one event per line (`init` with session_id, `message` chunks,
    `tool_use`, `tool_result`, `error`, and a final `result` with status and stats);
    json is one object printed over many lines at the end (session_id, response, stats,
    error). Either way, no cost is printed."""
    events = [e for e in _events(lines) if e.get("type") in _GEMINI_EVENTS]
    if events:
        return _gemini_stream(events)
    document = _last_document(lines)
    return _gemini_document(document) if document is not None else EMPTY


def _gemini_stream(events: list[dict[str, Any]]) -> AgentResult:
    session_id: str | None = None
    answer = ""
    fresh = True  # the next assistant chunk starts a new model turn
    status: str | None = None
    error: str | None = None
    usage: dict[str, int] | None = None
    for event in events:
        kind = event.get("type")
        if kind == "init":
            session_id = _str(event.get("session_id")) or session_id
        elif kind == "message" and event.get("role") == "assistant":
            content = event.get("content")
            if isinstance(content, str):
                # Like json output's `response`: the text of the last model turn only.
                answer = (content if fresh or event.get("delta") is not True
                          else answer + content)
                fresh = False
        elif kind in ("tool_use", "tool_result"):
            fresh = True
        elif kind == "result":
            status = _str(event.get("status"))
            err = event.get("error")
            error = (_str(err.get("message")) if isinstance(err, dict) else None) or error
            stats = event.get("stats")
            usage = {k: v for k, v in _counts(stats).items()
                     if k in ("input_tokens", "output_tokens", "total_tokens", "cached")
                     } or None
    is_error = status == "error"
    return AgentResult(
        provider_session_id=session_id,
        final_result=_str(answer) or (error if is_error else None),
        is_error=is_error,
        usage=usage,
        cost_usd=None,
    )


def _last_document(lines: list[str]) -> dict[str, Any] | None:
    """The last JSON object in the text that starts at the beginning of a line, however
    many lines it spans (gemini pretty-prints its json output)."""
    text = "\n".join(lines)
    found: dict[str, Any] | None = None
    offset = 0
    for line in lines:
        if line.startswith("{"):
            try:
                value, _ = jsontext.raw_decode(text, offset)
            except ValueError:
                value = None
            if isinstance(value, dict):
                found = value
        offset += len(line) + 1
    return found


def _gemini_document(document: dict[str, Any]) -> AgentResult:
    err = document.get("error")
    error = _str(err.get("message")) if isinstance(err, dict) else None
    usage: dict[str, int] = {}
    stats = document.get("stats")
    models = stats.get("models") if isinstance(stats, dict) else None
    if isinstance(models, dict):
        for metrics in models.values():
            tokens = _counts(metrics.get("tokens") if isinstance(metrics, dict) else None)
            # The names stream-json's result uses for the same counts.
            _add(usage, {name: tokens[key] for key, name in (
                ("prompt", "input_tokens"), ("candidates", "output_tokens"),
                ("total", "total_tokens"), ("cached", "cached")) if key in tokens})
    return AgentResult(
        provider_session_id=_str(document.get("session_id")),
        final_result=_str(document.get("response")) or error,
        is_error=isinstance(err, dict),
        usage=usage or None,
        cost_usd=None,
    )


def _text(lines: list[str]) -> AgentResult:
    """Plain output (copilot -s, ollama run): the answer is the output itself, with the
    blank lines around it trimmed. No session id, usage or cost is printed."""
    return AgentResult(None, _str("\n".join(lines).strip()), False, None, None)


def summed(invocations: list[dict[str, Any]]) -> tuple[float | None, dict[str, int] | None]:
    """The cost and tokens of INVOCATIONS together (None where none said any)."""
    costs = [run["cost_usd"] for run in invocations if run.get("cost_usd") is not None]
    tokens: dict[str, int] = {}
    for run in invocations:
        for kind, count in (run.get("usage") or {}).items():
            tokens[kind] = tokens.get(kind, 0) + count
    return (sum(costs) if costs else None), (tokens or None)
