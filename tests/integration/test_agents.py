"""A real agent end to end: the claude CLI (installed by `make setup`) run by orch as a
user's transient unit, talking to a scripted model on loopback."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.conftest import VENV_BIN, Orch, wait_for
from tests.integration.fake_model import Error, Text, ToolUse, serve
from tests.integration.test_logs import long_line, same_text

AGENT_BIN = Path(os.environ.get("ORCH_AGENT_BIN", "/opt/orch-dev/npm/node_modules/.bin"))
KEY = "sk-ant-e2e-secret-key-0123456789"


def with_cli(orch: Orch, binary: str) -> Orch:
    """ORCH with the agent CLIs on its PATH; the test fails if BINARY is not there."""
    if not (AGENT_BIN / binary).exists():
        pytest.fail(f"the {binary} CLI is missing from {AGENT_BIN}: `make agents` installs it")
    orch.extra_env["PATH"] = f"{AGENT_BIN}:{VENV_BIN}:/usr/bin:/bin"
    return orch


@pytest.fixture
def agent(user_orch: Orch) -> Orch:
    """The test user's orch, with the claude CLI on its PATH."""
    return with_cli(user_orch, "claude")


def _owned(orch: Orch, path: Path, text: str | None = None) -> Path:
    if text is None:
        path.mkdir(exist_ok=True)
    else:
        path.write_text(text)
    os.chown(path, orch.uid, orch.uid)
    return path


def _keys(orch: Orch, url: str) -> Path:
    return _owned(orch, orch.state_dir.parent / "claude.env",
                  f"ANTHROPIC_API_KEY={KEY}\nANTHROPIC_BASE_URL={url}\n")


def spawn_agent(orch: Orch, provider: str, env_file: Path, prompt: str, *opts: str) -> str:
    """A session of PROVIDER's CLI given ENV_FILE, in the test's work folder; its id."""
    work = _owned(orch, orch.state_dir.parent / "work")
    return orch.ok("spawn", "--provider", provider, "--env-file", str(env_file),
                   "--cwd", str(work), *opts, prompt).strip()


def waited(orch: Orch, sid: str, limit: str = "120") -> int:
    """`orch wait` for SID's end, bounded by LIMIT seconds; its exit code."""
    return orch("wait", "--timeout", limit, sid, timeout=float(limit) + 30).returncode


def nowhere(orch: Orch, secret: str, sid: str, since: str) -> None:
    """SECRET is in nothing orch keeps or shows of SID, nor in the journal since SINCE."""
    journal = orch.machine.run(["journalctl", "--no-pager", "-o", "json", "--since", since])
    for where, text in {"state file": orch.state_text(),
                        "orch show": orch.ok("show", "--json", sid) + orch.ok("show", sid),
                        "orch logs": orch.logs_text(sid), "journal": journal.stdout}.items():
        assert secret not in text, f"the secret is in the {where}"


def _claude(orch: Orch, url: str, prompt: str, *opts: str) -> str:
    return spawn_agent(orch, "claude", _keys(orch, url), prompt, *opts)


def test_claude_runs_to_its_result_and_the_key_is_nowhere(agent: Orch) -> None:
    since = f"@{int(time.time()) - 1}"
    with serve([Text("scripted hello")]) as (url, script):
        sid = _claude(agent, url, "say hello")
        assert waited(agent, sid) == 0
    shown = agent.show(sid)
    assert shown["status"] == "exited" and shown["provider"] == "claude"
    assert shown["final_result"] == "scripted hello"
    assert len(shown["provider_session_id"] or "") == 36  # claude's own session id
    assert shown["usage"] and shown["usage"]["output_tokens"] > 0
    assert agent.ok("result", sid) == "scripted hello\n"
    assert shown["argv"][:2] == ["claude", "-p"] and shown["argv"][-1] == "say hello"
    # The key reached the agent (it authenticated with it) and nothing else.
    assert {r["headers"].get("x-api-key") for r in script.requests} == {KEY}
    nowhere(agent, KEY, sid, since)


def test_an_agents_result_and_cost_are_recorded_as_it_ends(agent: Orch) -> None:
    told = agent.owned_file("told.txt")
    hook = ["/bin/sh", "-c", f'cat "$ORCH_RESULT_FILE" > {told}']
    agent.use_config(f"[hooks]\non_end = {json.dumps(hook)}\n")
    with serve([Text("recorded at its end")]) as (url, _):
        sid = _claude(agent, url, "say it")
        # No wait, show or result asks for it: `ps` (and top, and the API) and the
        # on_end hook have it from the end on. Before, all null, and the hook's file empty.
        wait_for(lambda: next(s for s in agent.ps() if s["id"] == sid)["status"] == "exited",
                 120, "its end")
        wait_for(lambda: told.read_text() == "recorded at its end", 60, "its on_end hook")
    listed = next(s for s in agent.ps() if s["id"] == sid)
    assert listed["final_result"] == "recorded at its end"
    assert listed["cost_usd"] and listed["usage"]["output_tokens"] > 0


def test_resume_continues_the_agents_own_conversation(agent: Orch) -> None:
    with serve([Text("first answer")]) as (url, _):
        sid = _claude(agent, url, "start")
        assert agent("wait", "--timeout", "120", sid).returncode == 0
    conversation = agent.show(sid)["provider_session_id"]
    with serve([Text("second answer")]) as (url, script):
        _keys(agent, url)
        assert agent.ok("resume", sid, "go on").strip() == sid
        assert agent("wait", "--timeout", "120", sid).returncode == 0
    shown = agent.show(sid)
    assert shown["final_result"] == "second answer" and shown["restarts"] == 1
    assert f"--resume={conversation}" in shown["argv"]
    assert shown["provider_session_id"] == conversation
    assert [run["status"] for run in shown["invocations"]] == ["exited", "exited"]
    # The model saw the earlier turn: the CLI resumed its own transcript.
    assert "first answer" in json.dumps(script.requests[-1]["body"])


def test_a_sandboxed_agent_writes_inside_its_cwd_and_nowhere_else(agent: Orch) -> None:
    work = _owned(agent, agent.state_dir.parent / "work")
    outside = Path(f"~{agent.user}").expanduser() / f"outside-{work.parent.name}.txt"
    replies = [ToolUse("Write", {"file_path": str(work / "inside.txt"), "content": "in\n"}),
               ToolUse("Write", {"file_path": str(outside), "content": "out\n"}),
               Text("done writing")]
    try:
        with serve(replies) as (url, _):
            sid = _claude(agent, url, "write two files", "--sandbox", "--auto-approve")
            assert agent("wait", "--timeout", "120", sid).returncode == 0
        assert (work / "inside.txt").read_text() == "in\n"
        assert not outside.exists()
        assert "EROFS" in agent.logs_text(sid)  # the agent was told the write was refused
        assert agent.show(sid)["final_result"] == "done writing"
    finally:
        outside.unlink(missing_ok=True)


def test_logs_of_an_agent_read_as_its_transcript(agent: Orch) -> None:
    replies = [ToolUse("Bash", {"command": "echo ran-for-real; seq 1 9",
                                "description": "Print a marker and count"}),
               Text("The marker printed.\nNine numbers followed.")]
    with serve(replies) as (url, _):
        sid = _claude(agent, url, "run the marker", "--auto-approve")
        assert agent("wait", "--timeout", "120", sid).returncode == 0
    lines = agent.ok("logs", sid).splitlines()
    assert lines[0].startswith("-- invocation 1 (")
    assert lines[1].startswith("── claude · ") and " · session " in lines[1]
    call = lines.index("⏺ Bash  echo ran-for-real; seq 1 9")
    # The tool really ran: its output, cut to its first lines with a count of the rest.
    assert lines[call + 1:call + 5] == ["  ⎿ ran-for-real", "    1", "    2", "    … (+7 lines)"]
    assert lines[-3:-1] == ["The marker printed.", "Nine numbers followed."]
    assert lines[-1].startswith("── success · 2 model turns · ") and "$" in lines[-1]
    assert not any("\x1b[" in line for line in lines)  # piped: no colour
    assert agent.ok("logs", "--follow", sid).splitlines() == lines  # ended: the same, at once
    assert agent.ok("logs", "-o", "transcript", sid).splitlines() == lines
    # The journal as it is, where asked for.
    assert agent.logs_text(sid).splitlines()[0].startswith('{"type":"system","subtype":"init"')


def test_a_model_error_fails_the_session_with_the_agents_message(agent: Orch) -> None:
    with serve([Error(400, "scripted model error")]) as (url, _):
        sid = _claude(agent, url, "fail please")
        assert agent("wait", "--timeout", "120", sid).returncode == 1
    shown = agent.show(sid)
    assert shown["status"] == "failed"
    assert "scripted model error" in agent.logs_text(sid)
    assert "scripted model error" in (shown["final_result"] or "")
    errors = [line for line in agent.ok("logs", sid).splitlines() if line.startswith("✗ ")]
    assert errors and "scripted model error" in errors[-1]


def test_a_missing_agent_binary_fails_the_spawn_in_one_line(user_orch: Orch) -> None:
    done = user_orch("spawn", "--provider", "codex", "hello",
                     env={"PATH": f"{VENV_BIN}:/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stderr.strip() == "orch: cannot run codex: not found on PATH"


@pytest.mark.parametrize("size", [5 * 1024, 100 * 1024, 1024 * 1024],
                         ids=["5KiB", "100KiB", "1MiB"])
def test_a_long_answer_comes_back_whole_everywhere(agent: Orch, size: int) -> None:
    # Answers past journalctl's 4 KiB field limit, and past journald's LineMax=, which
    # splits the CLI's one-line JSON events into pieces (cutting characters in two).
    paragraphs = [long_line(size // 4, seed=size + i) for i in range(4)]
    text = "\n\n".join(paragraphs)
    with serve([Text(text, chunk=4000)]) as (url, _):
        sid = _claude(agent, url, "answer at length")
        assert agent("wait", "--timeout", "300", sid).returncode == 0
    shown = agent.show(sid)
    assert shown["status"] == "exited"
    same_text(shown["final_result"] or "", text, "show's final_result")
    same_text(agent.ok("result", sid), text + "\n", "orch result")
    same_text(next(r for r in agent.records() if r.id == sid).final_result or "", text,
          "the recorded result")
    events = [json.loads(line) for line in agent.logs_text(sid).splitlines()
              if line.startswith("{")]
    same_text([e for e in events if e.get("type") == "result"][-1]["result"], text, "logs -o cat")
    entries = [json.loads(line) for line in agent.ok("logs", "-o", "json", sid).splitlines()]
    results = [json.loads(e["MESSAGE"]) for e in entries
               if '"type":"result"' in e["MESSAGE"]]
    same_text(results[-1]["result"], text, "logs -o json")
    short = [line.split(": ", 1)[1] for line in agent.ok("logs", "-o", "short", sid).splitlines()
             if '"type":"result"' in line]
    same_text(json.loads(short[-1])["result"], text, "logs -o short")
