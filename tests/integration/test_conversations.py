"""A conversation with the real claude CLI, run by orch as the test user against the
scripted model: spawn --interactive, idle between turns, send, interrupt, and send to
the ended session resuming it; another user cannot reach it."""

from __future__ import annotations

import json
import pwd
from pathlib import Path

import pytest

from orch import box
from tests.integration.conftest import Machine, Orch
from tests.integration.fake_model import Text, ToolUse, serve
from tests.integration.test_agents import _claude, agent  # noqa: F401 (a fixture)
from tests.integration.test_recovery import _power_cut_and_boot
from tests.waiting import wait_for

TURN_S = 120


def _waited(orch: Orch, sid: str) -> tuple[int, dict[str, object]]:
    done = orch("wait", "--json", "--timeout", str(TURN_S), sid, timeout=TURN_S + 30)
    assert "Traceback" not in done.stderr
    [session] = json.loads(done.stdout)
    return done.returncode, session


def _claude_transcript(orch: Orch, sid: str) -> str:
    """What claude itself wrote of session SID's conversation (where its --resume reads
    it), or "" before it wrote any."""
    home = Path(pwd.getpwnam(orch.user).pw_dir)
    found = list(home.glob(f".claude/projects/*/{orch.show(sid)['provider_session_id']}.jsonl"))
    return found[0].read_text() if found else ""


def test_a_conversation_takes_turns_is_idle_between_and_resumes_after_its_end(
        agent: Orch, root_orch: Orch) -> None:  # noqa: F811
    replies = [Text("first answer"), Text("second answer"),
               ToolUse("Bash", {"command": "sleep 60", "description": "wait"}),
               Text("resumed answer")]
    with serve(replies) as (url, script):
        sid = _claude(agent, url, "hello there", "--interactive", "--auto-approve")
        code, session = _waited(agent, sid)
        assert (code, session["status"], session["final_result"]) == (0, "idle", "first answer")
        assert [s["status"] for s in agent.ps() if s["id"] == sid] == ["idle"]
        # Only its owner (and root) can open its input.
        fifo = Path(f"/run/user/{agent.uid}/orch/input/{sid}")
        info = agent.machine.run(["stat", "-c", "%F %a %U", str(fifo)], user="root")
        assert info.stdout.split() == ["fifo", "600", agent.user]

        sent = agent("send", sid, "and then?")
        assert (sent.returncode, sent.stdout.strip(), sent.stderr) == (0, sid, "")
        code, session = _waited(agent, sid)
        assert (code, session["status"], session["final_result"]) == (0, "idle", "second answer")
        assert "and then?" in json.dumps(script.requests[-1]["body"]["messages"][-1])

        # A slow turn, stopped by an interrupt while its tool runs.
        agent.ok("send", sid, "now the slow one")
        wait_for(lambda: "⏺ Bash  sleep 60" in agent.ok("logs", "--no-pager", sid), 60,
                 "the slow tool call")
        assert agent.ok("send", "--interrupt", sid).strip() == sid
        code, session = _waited(agent, sid)
        assert (code, session["status"]) == (1, "idle")  # the turn ended in an error

        # Another user reaches none of it.
        refused = root_orch("send", sid, "hijack")
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1

        agent.ok("stop", sid)
        resumed = agent("send", sid, "come back")
        assert resumed.returncode == 0
        assert "had ended: invocation 2 resumes its conversation" in resumed.stderr
        code, session = _waited(agent, sid)
        assert (code, session["status"], session["final_result"]) == \
            (0, "idle", "resumed answer")
        assert session["restarts"] == 1
    # Every turn's result, oldest first, across both invocations.
    turns = agent.ok("result", "--all", sid).splitlines()
    assert turns == ["-- turn 1 --", "first answer", "-- turn 2 --", "second answer",
                     "-- turn 3 (error) --", turns[5], "-- turn 4 --", "resumed answer"]
    lines = agent.ok("logs", "--no-pager", sid).splitlines()
    assert sum(1 for line in lines if line.startswith("── success ·")) == 3
    # Every message the agent was sent, echoed where its turn begins (and the CLI's own
    # note of the interrupt).
    assert [line for line in lines if line.startswith("> ")] == [
        "> hello there", "> and then?", "> now the slow one",
        "> [Request interrupted by user for tool use]", "> come back"]
    assert lines.count("first answer") == 1 and lines[-2] == "resumed answer"
    agent.ok("stop", sid)


@pytest.mark.skipif(box.systemd_is_pid1(), reason="a power cut needs a box")
def test_a_power_cut_brings_an_idle_conversation_back_resumed_and_idle(
        agent: Orch, machine: Machine) -> None:  # noqa: F811
    agent.ok("units", "install")
    try:
        with serve([Text("before the cut"), Text("after the cut")]) as (url, script):
            sid = _claude(agent, url, "remember me", "--interactive", "--persistent")
            assert _waited(agent, sid)[1]["status"] == "idle"
            # claude writes its own transcript up to 100 ms after the turn's result
            # (queued, then appended): a cut before that loses the conversation for
            # claude itself, and --resume ends in "No conversation found".
            wait_for(lambda: "before the cut" in _claude_transcript(agent, sid), 30,
                     "claude to write its transcript")
            _power_cut_and_boot(machine)
            # orch-recover.service resumes it at boot: idle, as it was, in a new invocation.
            wait_for(lambda: agent.show(sid)["restarts"] == 1, 60,
                     "the conversation to come back")
            code, session = _waited(agent, sid)
            assert (code, session["status"], session["restarts"]) == (0, "idle", 1)
            agent.ok("send", sid, "still there?")
            code, session = _waited(agent, sid)
            assert (code, session["status"], session["final_result"]) == \
                (0, "idle", "after the cut"), session
            # The agent resumed its own conversation: the model saw the first turn.
            assert "before the cut" in json.dumps(script.requests[-1]["body"]["messages"])
        agent.ok("stop", sid)
        agent.ok("reap", "--older-than", "0")
        assert agent.machine.run(["test", "-e", f"/run/user/{agent.uid}/orch/input/{sid}"],
                                 user="root").returncode == 1  # its input went with it
    finally:
        agent("units", "uninstall")


def test_a_conversation_killed_mid_turn_is_resumed_by_the_next_message(
        agent: Orch) -> None:  # noqa: F811
    replies = [ToolUse("Bash", {"command": "sleep 60", "description": "wait"}),
               Text("picked up again")]
    with serve(replies) as (url, script):
        sid = _claude(agent, url, "start something slow", "--interactive", "--auto-approve")
        wait_for(lambda: "⏺ Bash  sleep 60" in agent.ok("logs", "--no-pager", sid), 60,
                 "the slow tool call")
        # A kill before claude wrote its transcript would leave nothing to resume.
        wait_for(lambda: "sleep 60" in _claude_transcript(agent, sid), 30,
                 "claude to write its transcript")
        agent.ok("kill", sid)
        wait_for(lambda: agent.show(sid)["status"] == "killed", 60, "the kill to end it")
        resumed = agent("send", sid, "carry on")
        assert resumed.returncode == 0 and "resumes its conversation" in resumed.stderr
        code, session = _waited(agent, sid)
        assert (code, session["status"], session["final_result"]) == \
            (0, "idle", "picked up again")
        assert "start something slow" in json.dumps(script.requests[-1]["body"]["messages"])
    agent.ok("stop", sid)


def test_each_turn_s_end_is_told_and_runs_the_idle_hook(agent: Orch) -> None:  # noqa: F811
    told = agent.owned_file("idle.log")
    agent.use_config('[hooks]\non_idle = ["/bin/sh", "-c", '
                     f'"echo $ORCH_STATUS $ORCH_EVENT >> {told}"]\n')
    with serve([Text("first answer"), Text("second answer")]) as (url, _):
        sid = _claude(agent, url, "hello there", "--interactive")
        wait_for(lambda: told.read_text() == "idle idle\n", TURN_S, "the first idle hook")
        agent.ok("send", sid, "and then?")
        wait_for(lambda: told.read_text() == "idle idle\n" * 2, TURN_S, "the second")
        agent.ok("stop", sid)
    events = [json.loads(line) for line in agent.ok("events", "--json", sid).splitlines()]
    assert [e["event"] for e in events] == ["spawned", "started", "idle", "idle", "ended"]
    assert events[-1]["status"] == "stopped"
    # Behind the relay, the agent's output reaches the journal whole, and its last
    # lines too.
    assert "second answer" in agent.ok("result", sid)
    assert agent.ok("logs", "--no-pager", sid).count("── success ·") == 2
