"""The real gemini CLI end to end: run by orch as the test user's transient unit,
talking to a scripted Gemini API on loopback (tests/integration/fake_gemini.py).

gemini keeps its settings and conversations under $GEMINI_CLI_HOME/.gemini (its home
by default): each test gives it its own, owned by the test user, through the env file,
so nothing is written to the test user's real home, and a resume finds the
conversation because the env file (and the working directory) stay the same."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Orch
from tests.integration.fake_gemini import (
    CAPACITY_ATTEMPTS,
    MODEL,
    Call,
    Reply,
    Text,
    capacity_exhausted,
    daily_quota,
    rate_limited,
    serve,
)
from tests.integration.test_agents import _owned, nowhere, spawn_agent, waited, with_cli
from tests.waiting import wait_for

KEY = "AIza-e2e-secret-key-0123456789abcdef"
# What a headless run needs: an API key's auth (with only a base URL it picks a gateway
# login and exits 41), and nothing that phones home or waits on an IDE.
SETTINGS: dict[str, dict[str, Any]] = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "ide": {"enabled": False},
}


@pytest.fixture
def agent(user_orch: Orch) -> Orch:
    """The test user's orch, with the gemini CLI on its PATH."""
    return with_cli(user_orch, "gemini")


def _gemini_home(orch: Orch, **general: object) -> Path:
    """This test's GEMINI_CLI_HOME, with the settings a headless run needs (and GENERAL
    ones of the test's)."""
    home = _owned(orch, orch.state_dir.parent / "gemini-home")
    settings = {**SETTINGS, "general": {**SETTINGS["general"], **general}}
    _owned(orch, _owned(orch, home / ".gemini") / "settings.json", json.dumps(settings))
    return home


def _keys(orch: Orch, url: str, **general: object) -> Path:
    home = _gemini_home(orch, **general)
    # Its report of each API error goes to TMPDIR: the test's, not the shared /tmp.
    scratch = _owned(orch, orch.state_dir.parent / "gemini-tmp")
    return _owned(orch, orch.state_dir.parent / "gemini.env", (
        f"GEMINI_API_KEY={KEY}\nGOOGLE_GEMINI_BASE_URL={url}\nGEMINI_CLI_HOME={home}\n"
        f"TMPDIR={scratch}\n"
        # Trusted without a trust dialog; no self re-spawn (halves its start-up).
        "GEMINI_CLI_TRUST_WORKSPACE=true\nGEMINI_CLI_NO_RELAUNCH=true\n"))


def _gemini(orch: Orch, url: str, prompt: str, *opts: str, **general: object) -> str:
    return spawn_agent(orch, "gemini", _keys(orch, url, **general), prompt, "--model", MODEL,
                       *opts)


def _real_home_changes(orch: Orch, since: Path) -> str:
    """Files under the test user's real ~/.gemini changed after SINCE was made."""
    real = Path(f"~{orch.user}").expanduser() / ".gemini"
    return orch.machine.sh(f"test ! -e {real} || find {real} -newer {since}")


def test_gemini_runs_to_its_result_and_the_key_is_nowhere(agent: Orch) -> None:
    since = f"@{int(time.time()) - 1}"
    marker = agent.owned_file("before-the-run")
    with serve([Text("scripted hello", chunk=5)]) as (url, script):
        sid = _gemini(agent, url, "say hello")
        assert waited(agent, sid) == 0
    shown = agent.show(sid)
    assert shown["status"] == "exited" and shown["provider"] == "gemini"
    assert shown["final_result"] == "scripted hello"  # the streamed chunks joined
    # orch chose the conversation's id (--session-id) and gemini kept it.
    conversation = shown["provider_session_id"]
    assert len(conversation or "") == 36
    assert f"--session-id={conversation}" in shown["argv"]
    assert shown["usage"]["input_tokens"] == 60 and shown["usage"]["output_tokens"] == 12
    assert agent.ok("result", sid) == "scripted hello\n"
    assert shown["argv"][:2] == ["gemini", "--prompt=say hello"]
    # The key reached the agent (it authenticated with it) and nothing else.
    turns = script.turns_asked
    assert turns and {r["headers"].get("x-goog-api-key") for r in turns} == {KEY}
    assert all(f"/models/{MODEL}:" in r["path"] for r in turns)
    nowhere(agent, KEY, sid, since)
    # Its conversation is in the test's GEMINI_CLI_HOME, and its real home untouched.
    chats = list((agent.state_dir.parent / "gemini-home").glob("**/chats/session-*"))
    assert [c for c in chats if conversation[:8] in c.name], chats
    assert _real_home_changes(agent, marker) == ""


def test_gemini_in_a_sandbox_keeps_the_home_its_env_file_names_writable(agent: Orch) -> None:
    # GEMINI_CLI_HOME comes from the env file: before, ~/.gemini was made writable, not
    # this home's .gemini (which, under /var/tmp, the sandbox leaves writable anyway).
    with serve([Text("sandboxed answer")]) as (url, _):
        sid = _gemini(agent, url, "hi from a sandbox", "--sandbox")
        assert waited(agent, sid) == 0, agent.logs_text(sid)
    shown = agent.show(sid)
    assert shown["final_result"] == "sandboxed answer"
    home = agent.state_dir.parent / "gemini-home"
    assert shown["options"]["writable"] == [str(home / ".gemini")]
    assert list((home / ".gemini").glob("**/chats/session-*"))  # its conversation, there


def test_logs_of_gemini_read_as_its_transcript(agent: Orch) -> None:
    replies: list[Reply] = [
        Call("run_shell_command", {"command": "echo ran-for-real; seq 1 9",
                                   "description": "Print a marker and count"}),
        Text("The marker printed.\nNine numbers followed.", chunk=8)]
    with serve(replies) as (url, script):
        sid = _gemini(agent, url, "run the marker", "--auto-approve")
        assert waited(agent, sid) == 0
    shown = agent.show(sid)
    assert "--yolo" in shown["argv"]
    # The tool really ran: the CLI sent its output back as the function's response.
    answered = json.dumps(script.turns_asked[-1]["body"]["contents"][-1])
    assert "functionResponse" in answered and "ran-for-real" in answered
    lines = agent.ok("logs", "--no-pager", sid).splitlines()
    assert lines[0].startswith("-- invocation 1 (")
    # gemini's start-up notes on stderr (YOLO mode, no ripgrep...) come first, as they are.
    head = next(i for i, line in enumerate(lines) if line.startswith("── gemini · "))
    assert lines[head] == f"── gemini · {MODEL} · session {shown['provider_session_id']} ──"
    assert lines[head + 1] == "> run the marker"
    call = lines.index("⏺ run_shell_command  echo ran-for-real; seq 1 9")
    assert lines[call + 1:call + 5] == ["  ⎿ ran-for-real", "    1", "    2", "    … (+7 lines)"]
    assert lines[-3:-1] == ["The marker printed.", "Nine numbers followed."]
    assert lines[-1].startswith("── success · 1 tool call · 120 in / 24 out tokens · ")
    assert not any("\x1b[" in line for line in lines)  # piped: no colour
    assert shown["final_result"] == "The marker printed.\nNine numbers followed."
    # -n counts the transcript's lines: the streamed answer whole, never a chunk of it
    # (its 8-character deltas are journal lines of their own).
    assert agent.ok("logs", "--no-pager", "-n", "3", sid).splitlines() == lines[-3:]


def test_resume_continues_geminis_own_conversation(agent: Orch) -> None:
    with serve([Text("first answer")]) as (url, _):
        sid = _gemini(agent, url, "start")
        assert waited(agent, sid) == 0
    conversation = agent.show(sid)["provider_session_id"]
    with serve([Text("second answer")]) as (url, script):
        _keys(agent, url)
        assert agent.ok("resume", sid, "go on").strip() == sid
        assert waited(agent, sid) == 0
    shown = agent.show(sid)
    assert shown["final_result"] == "second answer" and shown["restarts"] == 1
    assert f"--resume={conversation}" in shown["argv"]
    assert shown["provider_session_id"] == conversation
    assert [run["status"] for run in shown["invocations"]] == ["exited", "exited"]
    # The model saw the earlier turn: the CLI resumed its own conversation.
    sent = json.dumps(script.turns_asked[-1]["body"]["contents"])
    assert "first answer" in sent and "go on" in sent
    assert agent.ok("result", sid) == "second answer\n"


def _limited(orch: Orch, sid: str) -> dict[str, Any]:
    """SID's `show` once its first run has ended, insisting it waits on a usage limit."""
    ended: dict[str, Any] = wait_for(
        lambda: (s := orch.show(sid))["status"] not in ("starting", "running") and s,
        timeout=90, what="its first run to end")
    assert ended["status"] == "limited", ended
    return ended


def test_a_spent_capacity_waits_for_its_reset_then_starts_over(agent: Orch) -> None:
    # The README's gemini row: the reset is read from the error's text.
    spent = [capacity_exhausted("20s")] * CAPACITY_ATTEMPTS
    with serve([*spent, Text("done after the reset")]) as (url, script):
        sid = _gemini(agent, url, "do the work")
        limited = _limited(agent, sid)
        failed_at = time.time()
        assert limited["waiting_for"] == "usage limit" and limited["exit_code"] == 173
        resets = datetime.fromisoformat(limited["resumes_at"]).timestamp()
        assert failed_at + 10 < resets < failed_at + 20 + 120 + 5  # 20 s, plus jitter
        assert agent("wait", "--timeout", "200", sid).returncode == 0
    shown = agent.show(sid)
    assert shown["status"] == "exited" and shown["final_result"] == "done after the reset"
    assert [run["status"] for run in shown["invocations"]] == ["failed", "exited"]
    # The model never answered, so gemini has no conversation to resume and refuses the
    # old id for a new one: the task starts over, as asked, under a new id.
    first = limited["provider_session_id"]
    assert shown["provider_session_id"] not in (None, first)
    assert f"--session-id={shown['provider_session_id']}" in shown["argv"]
    assert "--prompt=do the work" in shown["argv"]
    assert "do the work" in json.dumps(script.turns_asked[-1]["body"]["contents"])


def test_a_spent_daily_quota_is_a_usage_limit(agent: Orch) -> None:
    # An API key's usage limit: gemini never says when it resets, so --limit-wait.
    with serve([daily_quota(), Text("done the next day")]) as (url, _):
        sid = _gemini(agent, url, "do the work", "--limit-wait", "1s")
        limited = _limited(agent, sid)
        assert limited["waiting_for"] == "usage limit" and limited["exit_code"] == 173
        assert agent("wait", "--timeout", "200", sid).returncode == 0
    shown = agent.show(sid)
    assert shown["final_result"] == "done the next day"
    assert [run["status"] for run in shown["invocations"]] == ["failed", "exited"]


def test_a_rate_limit_is_retried_by_orch(agent: Orch) -> None:
    # One attempt of gemini's own (maxAttempts), so that orch's retry is what is seen.
    with serve([rate_limited(), Text("done at last")]) as (url, _):
        sid = _gemini(agent, url, "try hard", "--retries", "1", "--retry-delay", "1s",
                      maxAttempts=1)
        assert waited(agent, sid) == 0
    shown = agent.show(sid)
    assert shown["final_result"] == "done at last"
    assert [run["status"] for run in shown["invocations"]] == ["failed", "exited"]
    assert [run["exit_code"] for run in shown["invocations"]] == [173, 0]
    told = [json.loads(line) for line in agent.ok("events", "--json", sid).splitlines()]
    assert [(e["event"], e["detail"]) for e in told if e["event"] == "retrying"] == [
        ("retrying", "rate limited")]
