"""Agents on top of sessions: which provider, the argv it builds, resume, and what the
agent's own output says of its run (its session id, final text, verdict, usage)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orch import config
from orch.errors import UsageError
from orch.providers import (
    AgentRequest,
    ProviderSpec,
    build_argv,
    build_resume_argv,
    carried,
    find,
)
from orch.results import AgentResult, ResultFormat, parse
from orch.scope import Scope
from orch.session import Record

# What `orch resume ID` says to the agent when no prompt is given, and what a
# persistent session's conversation is resumed with at boot.
CONTINUE_PROMPT = "Continue where you left off."


def provider_spec(name: str, scope: Scope, loaded: config.Config | None = None) -> ProviderSpec:
    """Provider NAME: built in, or added or overridden by [providers.NAME] in the config
    (LOADED, SCOPE's configuration if the caller has read it already)."""
    if loaded is None:
        loaded = config.load(scope)
    return find(name, loaded.providers, str(loaded.path))


def state_dir(provider: str, scope: Scope, loaded: config.Config | None = None,
              given: Mapping[str, str] | None = None,
              work_dir: str | None = None) -> tuple[Path, str | None] | None:
    """Where PROVIDER keeps its own state for this caller, whose agent's environment has
    GIVEN (a CODEX_HOME there moves it all; a GEMINI_CLI_HOME, the home it is kept in;
    a relative one is in WORK_DIR, where the agent runs), and the variable to name it in
    for the agent where GIVEN does not (None for a provider without one)."""
    spec = provider_spec(provider, scope, loaded)
    if spec.state_dir is None:
        return None
    given = given or {}
    moved = given.get(spec.state_env) if spec.state_env else None
    home = given.get(spec.state_home_env) if spec.state_home_env else None

    def known(value: str | None) -> bool:
        return bool(value) and (os.path.isabs(value or "") or work_dir is not None)

    def where(value: str) -> Path:  # an absolute VALUE is itself
        return Path(os.path.normpath(os.path.join(work_dir or "/", value)))
    if moved and known(moved):
        return where(moved), None
    if home and known(home):
        return where(home) / spec.state_dir, None
    if moved or home:  # relative, to a directory not known here: the agent's to read
        return Path.home() / spec.state_dir, None
    return Path.home() / spec.state_dir, spec.state_env


def request_to_json(request: AgentRequest) -> dict[str, Any]:
    """The request as the record keeps it."""
    data = dataclasses.asdict(request)
    data["add_dirs"] = list(request.add_dirs)
    return {k: v for k, v in data.items() if v not in (None, (), [], False)}


def request_from_json(data: dict[str, Any]) -> AgentRequest:
    """The request a record kept."""
    values = dict(data)
    values["add_dirs"] = tuple(values.get("add_dirs", ()))
    values.setdefault("prompt", None)
    return AgentRequest(**values)


def fresh_argv(provider: str, request: AgentRequest, scope: Scope,
               loaded: config.Config | None = None) -> list[str]:
    """The argv that starts a new conversation with PROVIDER."""
    return build_argv(provider_spec(provider, scope, loaded), request)


def resume_argv(record: Record, prompt: str | None) -> list[str]:
    """The argv that resumes RECORD's conversation with its provider, saying PROMPT."""
    if not record.provider:
        raise UsageError(f"session {record.id[:8]} ({record.name}) was not started with "
                         "--provider: there is no agent conversation to resume")
    if not record.provider_session_id:
        raise UsageError(f"session {record.id[:8]} ({record.name}): its agent never said "
                         "which conversation it was (no provider session id in its output)")
    spec = provider_spec(record.provider, Scope(record.scope))
    if not spec.resumes_unanswered and not answered(record):
        raise UsageError(f"session {record.id[:8]} ({record.name}): {spec.name} never "
                         "answered it, so it has no conversation to resume",
                         hint="spawn the task again")
    request = dataclasses.replace(request_from_json(record.agent),
                                  prompt=prompt or CONTINUE_PROMPT,
                                  provider_session_id=record.provider_session_id)
    return build_resume_argv(spec, carried(spec, request))


def can_resume(record: Record) -> bool:
    """Whether RECORD's conversation can be resumed rather than started over."""
    if not record.provider or not record.provider_session_id:
        return False
    try:
        spec = provider_spec(record.provider, Scope(record.scope))
    except UsageError:
        return False
    return spec.resume_argv is not None and (spec.resumes_unanswered or answered(record))


def answered(record: Record) -> bool:
    """Whether RECORD's model may have answered its agent: not if every run that began
    ended saying so (its usage counted no output token); a run cut off before it said
    (no usage) may have."""
    runs = [run.get("usage") for run in record.history]
    if record.invocation_id is not None:  # the current run began
        runs.append(record.usage)
    for usage in runs:
        tokens = usage.get("output_tokens") if isinstance(usage, dict) else None
        if not isinstance(tokens, int) or tokens > 0:
            return True
    return False


def started_over(record: Record) -> dict[str, Any]:
    """How RECORD's next run differs to start its agent's conversation over: a new id
    where orch chose the old one (the CLI may refuse an id it has begun a conversation
    with); nothing where it did not, or where its provider can no longer say how (gone
    from the configuration): it then runs as recorded."""
    if not record.provider or not record.agent.get("provider_session_id"):
        return {}
    import uuid

    try:
        request = dataclasses.replace(request_from_json(record.agent),
                                      provider_session_id=str(uuid.uuid4()))
        argv = fresh_argv(record.provider, request, Scope(record.scope))
    except UsageError:
        return {}
    return {"argv": argv, "program": None, "agent": request_to_json(request),
            "provider_session_id": request.provider_session_id}


def output_format(record: Record) -> ResultFormat:
    """The format RECORD's agent writes its output in (text where its provider is not
    defined any more)."""
    return provider_format(record.provider, record.scope)


def provider_format(provider: str | None, scope: str) -> ResultFormat:
    """The format PROVIDER's agents write their output in, as SCOPE's configuration
    defines it (text for a plain program, or a provider not defined any more)."""
    try:
        return provider_spec(provider or "exec", Scope(scope)).results
    except UsageError:
        return ResultFormat.TEXT


def read_result(record: Record, lines: list[str]) -> AgentResult:
    """What the agent's output LINES (of its current invocation) say of its run."""
    spec = provider_spec(record.provider or "exec", Scope(record.scope))
    return parse(spec.results, lines)


def with_result(record: Record, result: AgentResult) -> Record:
    """RECORD with what the agent said; a result `orch kill` recorded is kept."""
    return dataclasses.replace(
        record,
        provider_session_id=result.provider_session_id or record.provider_session_id,
        final_result=record.final_result if record.final_result is not None
        else result.final_result,
        agent_error=result.is_error if result.final_result is not None or result.is_error
        else record.agent_error,
        usage=result.usage or record.usage,
        cost_usd=result.cost_usd if result.cost_usd is not None else record.cost_usd,
    )
