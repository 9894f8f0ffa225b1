"""The real copilot CLI end to end: run by orch as the test user's transient unit, in
offline mode with its own model provider (COPILOT_PROVIDER_*, the Responses wire)
pointed at a scripted server on loopback (tests/integration/fake_openai.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.cache import CACHE as TEST_CACHE
from tests.integration.conftest import Orch
from tests.integration.fake_openai import MODEL, Error, FunctionCall, Reply, Text, serve
from tests.integration.test_agents import _owned, nowhere, spawn_agent, waited, with_cli

KEY = "sk-copilot-e2e-secret-key-0123456789"
# copilot unpacks ~235 MB into $XDG_CACHE_HOME at its first launch: one folder, kept
# across tests and runs (beside the other test caches), so that only the first pays.
CACHE = TEST_CACHE / "copilot"
# How long a run may take, the first launch's unpacking included.
RUN_LIMIT = "300"


@pytest.fixture
def copilot(user_orch: Orch) -> Orch:
    """The test user's orch, with the copilot CLI on its PATH and the shared cache
    folder its own."""
    CACHE.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(CACHE, user_orch.uid, user_orch.uid)
    return with_cli(user_orch, "copilot")


def _keys(orch: Orch, url: str) -> Path:
    """The env file: the key, the scripted server at URL, and a per-test COPILOT_HOME
    (its config and conversations), never the test user's own."""
    home = orch.state_dir.parent / "copilot-home"
    if not home.exists():
        _owned(orch, home)
    env = orch.state_dir.parent / "copilot.env"
    env.unlink(missing_ok=True)
    # Offline: no GitHub login, telemetry or auto-update; nothing leaves loopback.
    return _owned(orch, env, "\n".join([
        "COPILOT_OFFLINE=true", "COPILOT_AUTO_UPDATE=false",
        f"COPILOT_PROVIDER_BASE_URL={url}", "COPILOT_PROVIDER_TYPE=openai",
        f"COPILOT_PROVIDER_API_KEY={KEY}", "COPILOT_PROVIDER_WIRE_API=responses",
        f"COPILOT_MODEL={MODEL}", f"COPILOT_HOME={home}", f"XDG_CACHE_HOME={CACHE}", ""]))


def _copilot(orch: Orch, url: str, prompt: str, *opts: str) -> str:
    return spawn_agent(orch, "copilot", _keys(orch, url), prompt, "--timeout", RUN_LIMIT, *opts)


def _wait(orch: Orch, sid: str) -> int:
    return waited(orch, sid, RUN_LIMIT)


def test_copilot_runs_to_its_result_and_the_key_is_nowhere(copilot: Orch) -> None:
    since = f"@{int(time.time()) - 1}"
    with serve([Text("scripted copilot hello")]) as (url, script):
        sid = _copilot(copilot, url, "say hello")
        assert _wait(copilot, sid) == 0
    shown = copilot.show(sid)
    assert shown["status"] == "exited" and shown["provider"] == "copilot"
    assert shown["final_result"] == "scripted copilot hello"
    # The conversation's id: the one orch chose (--session-id), as copilot reported it.
    chosen = shown["provider_session_id"]
    assert len(chosen or "") == 36 and f"--session-id={chosen}" in shown["argv"]
    assert json.loads(copilot.logs_text(sid).splitlines()[-1])["sessionId"] == chosen
    # copilot reports no tokens: premium requests and durations.
    assert shown["usage"] and "premiumRequests" in shown["usage"]
    assert copilot.ok("result", sid) == "scripted copilot hello\n"
    assert shown["argv"][:2] == ["copilot", "--prompt=say hello"]
    turns = script.conversation()
    assert len(turns) == 1 and "say hello" in json.dumps(turns[0]["body"]["input"])
    # The key reached the agent (it authenticated with it) and nothing else.
    assert {r["headers"].get("authorization") for r in turns} == {f"Bearer {KEY}"}
    nowhere(copilot, KEY, sid, since)
    # Its config and conversations went to the per-test home, not the user's.
    home = copilot.state_dir.parent / "copilot-home"
    assert any(home.iterdir())


def test_copilot_logs_read_as_its_transcript(copilot: Orch) -> None:
    replies: list[Reply] = [FunctionCall("bash", {"command": "echo ran-for-real; seq 1 9",
                                     "description": "Print a marker and count"}),
               Text("The marker printed.\nNine numbers followed.")]
    with serve(replies) as (url, script):
        sid = _copilot(copilot, url, "run the marker", "--auto-approve")
        assert _wait(copilot, sid) == 0
    # The command really ran: its output went back to the model with the call's id.
    outputs = [item for item in script.conversation()[-1]["body"]["input"]
               if item.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == ["call_scripted_1"]
    assert "ran-for-real" in json.dumps(outputs)
    session = copilot.show(sid)["provider_session_id"]
    lines = copilot.ok("logs", "--no-pager", sid).splitlines()
    assert lines[0].startswith("-- invocation 1 (")
    assert "> run the marker" in lines
    call = lines.index("⏺ bash  echo ran-for-real; seq 1 9")
    assert lines[call + 1:call + 5] == ["  ⎿ ran-for-real", "    1", "    2", "    … (+8 lines)"]
    assert lines[-3:-1] == ["The marker printed.", "Nine numbers followed."]
    assert lines[-1].startswith("── done · ") and lines[-1].endswith(f"session {session} ──")
    assert not any("\x1b[" in line for line in lines)


def test_copilot_resume_continues_its_own_conversation(copilot: Orch) -> None:
    with serve([Text("first copilot answer")]) as (url, _):
        sid = _copilot(copilot, url, "start")
        assert _wait(copilot, sid) == 0
    conversation = copilot.show(sid)["provider_session_id"]
    with serve([Text("second copilot answer")]) as (url, script):
        _keys(copilot, url)  # the new server's address, the same COPILOT_HOME
        assert copilot.ok("resume", sid, "go on").strip() == sid
        assert _wait(copilot, sid) == 0
    shown = copilot.show(sid)
    assert shown["final_result"] == "second copilot answer" and shown["restarts"] == 1
    assert f"--resume={conversation}" in shown["argv"]
    assert shown["provider_session_id"] == conversation
    assert [run["status"] for run in shown["invocations"]] == ["exited", "exited"]
    # The model saw the earlier turn: copilot resumed its own conversation.
    sent = json.dumps(script.conversation()[-1]["body"]["input"])
    assert "first copilot answer" in sent and "go on" in sent


def test_a_copilot_model_error_fails_the_session_with_its_message(copilot: Orch) -> None:
    with serve([Error(400, "scripted model error")]) as (url, _):
        sid = _copilot(copilot, url, "fail please")
        assert _wait(copilot, sid) == 1
    shown = copilot.show(sid)
    assert shown["status"] == "failed"
    assert "scripted model error" in copilot.logs_text(sid)
    assert "scripted model error" in (shown["final_result"] or "")
    errors = [line for line in copilot.ok("logs", "--no-pager", sid).splitlines()
              if line.startswith("✗ ")]
    assert errors and "scripted model error" in errors[-1]
