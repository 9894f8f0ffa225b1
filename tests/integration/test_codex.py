"""The real codex CLI end to end: run by orch as the test user's transient unit, its
model provider (config.toml in a per-test CODEX_HOME) pointed at a scripted Responses
API on loopback (tests/integration/fake_openai.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Orch
from tests.integration.fake_openai import MODEL, Error, FunctionCall, Reply, Text, serve
from tests.integration.test_agents import _owned, nowhere, spawn_agent, waited, with_cli

KEY = "sk-openai-e2e-secret-key-0123456789"
# How long a run may take: a codex left without its server retries for minutes.
RUN_LIMIT = "120"


@pytest.fixture
def codex(user_orch: Orch) -> Orch:
    """The test user's orch, with the codex CLI on its PATH."""
    return with_cli(user_orch, "codex")


def _config(url: str) -> str:
    # No retries (a scripted error fails at once), no analytics host to wait on, no
    # plugin or app sync host to reach: nothing leaves loopback.
    return f"""model = "{MODEL}"
model_provider = "scripted"

[model_providers.scripted]
name = "scripted"
base_url = "{url}"
env_key = "ORCH_E2E_OPENAI_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[features]
plugins = false
apps = false
"""


def _keys(orch: Orch, url: str) -> Path:
    """The env file: the key, and CODEX_HOME, a per-test home whose config.toml names
    the scripted server at URL (rewritten for each server)."""
    home = orch.state_dir.parent / "codex-home"
    if not home.exists():
        _owned(orch, home)
    (home / "config.toml").unlink(missing_ok=True)
    _owned(orch, home / "config.toml", _config(url))
    env = orch.state_dir.parent / "codex.env"
    env.unlink(missing_ok=True)
    return _owned(orch, env, f"ORCH_E2E_OPENAI_KEY={KEY}\nCODEX_HOME={home}\n")


def _codex(orch: Orch, url: str, prompt: str, *opts: str) -> str:
    return spawn_agent(orch, "codex", _keys(orch, url), prompt, "--timeout", RUN_LIMIT, *opts)


def _wait(orch: Orch, sid: str) -> int:
    return waited(orch, sid, RUN_LIMIT)


def test_codex_runs_to_its_result_and_the_key_is_nowhere(codex: Orch) -> None:
    since = f"@{int(time.time()) - 1}"
    with serve([Text("scripted codex hello")]) as (url, script):
        sid = _codex(codex, url, "say hello")
        assert _wait(codex, sid) == 0
    shown = codex.show(sid)
    assert shown["status"] == "exited" and shown["provider"] == "codex"
    assert shown["final_result"] == "scripted codex hello"
    assert len(shown["provider_session_id"] or "") == 36  # codex's thread id
    assert shown["usage"]["input_tokens"] == 80 and shown["usage"]["output_tokens"] == 16
    assert codex.ok("result", sid) == "scripted codex hello\n"
    assert shown["argv"][:3] == ["codex", "exec", "--json"] and shown["argv"][-1] == "say hello"
    turns = script.conversation()
    assert len(turns) == 1 and "say hello" in json.dumps(turns[0]["body"]["input"])
    # The key reached the agent (it authenticated with it) and nothing else.
    assert {r["headers"].get("authorization") for r in script.requests} == {f"Bearer {KEY}"}
    nowhere(codex, KEY, sid, since)


def test_codex_logs_read_as_its_transcript(codex: Orch) -> None:
    replies: list[Reply] = [FunctionCall("exec_command", {"cmd": "echo ran-for-real; seq 1 9"}),
               Text("The marker printed.\nNine numbers followed.")]
    with serve(replies) as (url, script):
        sid = _codex(codex, url, "run the marker", "--auto-approve")
        assert _wait(codex, sid) == 0
    # The command really ran: its output went back to the model with the call's id.
    outputs = [item for item in script.conversation()[-1]["body"]["input"]
               if item.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == ["call_scripted_1"]
    assert "ran-for-real" in json.dumps(outputs)
    thread = codex.show(sid)["provider_session_id"]
    lines = codex.ok("logs", "--no-pager", sid).splitlines()
    assert lines[0].startswith("-- invocation 1 (")
    assert f"── codex · thread {thread} ──" in lines
    call = next(i for i, line in enumerate(lines) if line.startswith("⏺ shell  "))
    assert "echo ran-for-real; seq 1 9" in lines[call]
    assert lines[call + 1:call + 5] == ["  ⎿ ran-for-real", "    1", "    2", "    … (+7 lines)"]
    assert lines[-3:-1] == ["The marker printed.", "Nine numbers followed."]
    assert lines[-1] == "── turn done · 160 in / 32 out tokens ──"
    assert not any("\x1b[" in line for line in lines)


def test_codex_resume_continues_its_own_thread(codex: Orch) -> None:
    more = _owned(codex, codex.state_dir.parent / "more")
    with serve([Text("first codex answer")]) as (url, _):
        # --add-dir, which `codex exec resume` cannot pass: the resume still runs.
        sid = _codex(codex, url, "start", "--add-dir", str(more))
        assert _wait(codex, sid) == 0
    assert f"--add-dir={more}" in codex.show(sid)["argv"]
    thread = codex.show(sid)["provider_session_id"]
    with serve([Text("second codex answer")]) as (url, script):
        _keys(codex, url)  # the new server's address, in the same CODEX_HOME
        assert codex.ok("resume", sid, "go on").strip() == sid
        assert _wait(codex, sid) == 0
    shown = codex.show(sid)
    assert shown["final_result"] == "second codex answer" and shown["restarts"] == 1
    assert shown["argv"][:3] == ["codex", "exec", "resume"] and thread in shown["argv"]
    assert not any(arg.startswith("--add-dir") for arg in shown["argv"])
    assert shown["provider_session_id"] == thread
    assert [run["status"] for run in shown["invocations"]] == ["exited", "exited"]
    # The model saw the earlier turn: codex resumed its own thread.
    sent = json.dumps(script.conversation()[-1]["body"]["input"])
    assert "first codex answer" in sent and "go on" in sent


def test_a_codex_model_error_fails_the_session_with_its_message(codex: Orch) -> None:
    with serve([Error(429, "scripted rate limit", "rate_limit_exceeded")]) as (url, script):
        sid = _codex(codex, url, "fail please")
        assert _wait(codex, sid) == 1
    assert len(script.conversation()) == 1  # no retries, as configured
    shown = codex.show(sid)
    assert shown["status"] == "failed"
    assert "429" in (shown["final_result"] or "")
    errors = [line for line in codex.ok("logs", "--no-pager", sid).splitlines()
              if line.startswith("✗ ")]
    assert errors and "429" in errors[-1]


def test_codex_in_a_sandbox_keeps_the_home_its_env_file_names_writable(codex: Orch) -> None:
    # CODEX_HOME comes from the env file: before, ~/.codex was made writable instead (a
    # CODEX_HOME under the home then stayed read-only, and codex died: "Read-only file
    # system"; this one, under /var/tmp, the sandbox leaves writable either way).
    with serve([Text("sandboxed answer")]) as (url, _):
        sid = _codex(codex, url, "hi from a sandbox", "--sandbox")
        assert _wait(codex, sid) == 0, codex.logs_text(sid)
    shown = codex.show(sid)
    assert shown["final_result"] == "sandboxed answer"
    assert shown["options"]["writable"] == [str(codex.state_dir.parent / "codex-home")]


def test_codex_in_a_sandbox_keeps_a_relative_home_writable_where_it_runs(codex: Orch) -> None:
    # A relative CODEX_HOME is codex's working directory's: before, ~/.codex was made
    # writable instead (this one, under /var/tmp, the sandbox leaves writable anyway).
    with serve([Text("relative answer")]) as (url, _):
        _keys(codex, url)
        env = codex.state_dir.parent / "codex-relative.env"
        env.unlink(missing_ok=True)
        _owned(codex, env, f"ORCH_E2E_OPENAI_KEY={KEY}\nCODEX_HOME=../codex-home\n")
        sid = spawn_agent(codex, "codex", env, "hi from afar", "--timeout", RUN_LIMIT,
                          "--sandbox")  # in the test's work folder, beside codex-home
        assert _wait(codex, sid) == 0, codex.logs_text(sid)
    shown = codex.show(sid)
    assert shown["final_result"] == "relative answer"
    assert shown["options"]["writable"] == [str(codex.state_dir.parent / "codex-home")]
