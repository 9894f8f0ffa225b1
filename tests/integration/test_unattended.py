"""Agents left unattended, with the real claude CLI against a scripted API that answers
as Anthropic's does: a usage limit (429 with the anthropic-ratelimit-unified-* headers,
a subscriber's) makes the session limited until its reset, when a timer of its manager
resumes the conversation; an overload (529) is retried with --retries; stop cancels."""

from __future__ import annotations

import json
import re
import time

import pytest

from orch import box
from tests.integration.conftest import Machine, Orch, wait_for
from tests.integration.fake_model import OVERLOADED, Text, serve, usage_limit
from tests.integration.test_agents import _owned, agent  # noqa: F401  (fixture)
from tests.integration.test_recovery import _power_cut_and_boot


def _spawn(orch: Orch, url: str, prompt: str, *opts: str) -> str:
    """A subscriber's claude (an OAuth token: the CLI reads the usage-limit headers only
    then) that does not retry on its own, so orch's retries are what is seen."""
    keys = _owned(orch, orch.state_dir.parent / f"claude-{time.monotonic_ns()}.env",
                  f"CLAUDE_CODE_OAUTH_TOKEN=oat-e2e-token\nANTHROPIC_BASE_URL={url}\n"
                  "CLAUDE_CODE_MAX_RETRIES=0\n")
    work = orch.state_dir.parent / "work"
    if not work.exists():
        _owned(orch, work)
    return orch.ok("spawn", "--provider", "claude", "--env-file", str(keys),
                   "--cwd", str(work), *opts, prompt).strip()


def _wake_timers(orch: Orch, sid: str) -> list[str]:
    listed = orch.systemctl("list-units", "--no-legend", "--plain", "--all",
                            f"orch-wake-{sid}-*.timer")
    return [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]


def test_a_usage_limit_waits_for_its_reset_then_resumes_the_conversation(
        agent: Orch) -> None:  # noqa: F811
    resets = int(time.time()) + 20
    with serve([usage_limit(resets), Text("done after the reset")]) as (url, script):
        sid = _spawn(agent, url, "do the work")
        limited = wait_for(lambda: (s := agent.show(sid))["status"] == "limited" and s,
                           timeout=60, what="the session to be limited")
        assert limited["waiting_for"] == "usage limit (five_hour)"
        assert limited["resumes_at"].startswith(
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(resets)))
        assert limited["main_pid"] is None and limited["exit_code"] == 1
        assert "limited" in agent.ok("ps") and "Resumes:" in agent.ok("show", sid)
        # Its log (and so top's LAST) says when, as systemctl writes a time, not as ISO.
        said = wait_for(lambda: re.findall(r"orch: usage limit \(five_hour\): resumes at (.*)",
                                           agent.ok("logs", sid, "-o", "short")),
                        timeout=30, what="its log to say when it resumes")
        assert re.fullmatch(r"\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", said[-1])
        assert len(_wake_timers(agent, sid)) == 1
        assert agent("wait", "--timeout", "120", sid).returncode == 0
    shown = agent.show(sid)
    assert shown["status"] == "exited" and shown["final_result"] == "done after the reset"
    assert [run["status"] for run in shown["invocations"]] == ["failed", "exited"]
    assert f"--resume={shown['provider_session_id']}" in shown["argv"]
    assert shown["resumes_at"] is None and shown["invocations"][1]["started_at"] >= \
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(resets))
    # The model was asked again with the conversation so far: the CLI resumed it.
    assert "do the work" in json.dumps(script.requests[-1]["body"])


def test_an_overload_is_retried_with_backoff_up_to_the_retries(agent: Orch) -> None:  # noqa: F811
    with serve([OVERLOADED, OVERLOADED, Text("done at last")]) as (url, _):
        sid = _spawn(agent, url, "try hard", "--retries", "2", "--retry-delay", "1s")
        assert agent("wait", "--timeout", "120", sid).returncode == 0
    shown = agent.show(sid)
    assert shown["final_result"] == "done at last"
    assert [run["status"] for run in shown["invocations"]] == ["failed", "failed", "exited"]
    started = [run["started_at"] for run in shown["invocations"]]
    ended = [run["ended_at"] for run in shown["invocations"]]
    from datetime import datetime

    gaps = [(datetime.fromisoformat(started[n + 1]) - datetime.fromisoformat(ended[n]))
            .total_seconds() for n in range(2)]
    assert gaps[0] >= 1 and gaps[1] >= 2  # 1s, then doubled


def test_out_of_retries_it_fails_and_without_retries_it_never_waits(
        agent: Orch) -> None:  # noqa: F811
    with serve([OVERLOADED]) as (url, _):
        once = _spawn(agent, url, "one retry", "--retries", "1", "--retry-delay", "1s")
        never = _spawn(agent, url, "no retry")
        assert agent("wait", "--timeout", "120", once, never).returncode == 1
    assert [r["status"] for r in agent.show(once)["invocations"]] == ["failed", "failed"]
    assert [r["status"] for r in agent.show(never)["invocations"]] == ["failed"]


def test_stop_cancels_a_limited_session_and_its_timer(agent: Orch) -> None:  # noqa: F811
    with serve([usage_limit(int(time.time()) + 3600)]) as (url, _):
        sid = _spawn(agent, url, "later")
        wait_for(lambda: agent.show(sid)["status"] == "limited", timeout=60,
                 what="the session to be limited")
    assert len(_wake_timers(agent, sid)) == 1
    waiting = agent.machine.popen(["orch", "wait", "--timeout", "60", sid], user=agent.user,
                                  env=agent.env)
    done = agent("stop", sid)
    assert done.returncode == 0, done.stderr
    assert agent.show(sid)["status"] == "stopped"
    wait_for(lambda: _wake_timers(agent, sid) == [], what="its timer to be gone")
    _, err = waiting.communicate(timeout=60)  # a wait on it ends with the stop
    assert waiting.returncode == 1, err


def test_kill_ends_a_limited_session_and_says_it_killed_it(agent: Orch) -> None:  # noqa: F811
    with serve([usage_limit(int(time.time()) + 3600)]) as (url, _):
        sid = _spawn(agent, url, "later")
        wait_for(lambda: agent.show(sid)["status"] == "limited", timeout=60,
                 what="the session to be limited")
    done = agent("kill", sid, "not today")
    assert done.returncode == 0, done.stderr
    # Before: "signalled", though nothing ran to signal.
    assert done.stderr.startswith(f"orch: killed session {sid[:8]} ")
    shown = agent.show(sid)
    assert (shown["status"], shown["final_result"], shown["resumes_at"]) == \
        ("killed", "not today", None)
    wait_for(lambda: _wake_timers(agent, sid) == [], what="its timer to be gone")


@pytest.mark.skipif(box.systemd_is_pid1(), reason="a power cut needs a box")
def test_a_reboot_takes_the_timer_and_recover_arms_it_again(
        agent: Orch, machine: Machine) -> None:  # noqa: F811
    agent.ok("units", "install")  # recover at boot
    try:
        with serve([usage_limit(int(time.time()) + 3600)]) as (url, _):
            sid = _spawn(agent, url, "later")
            wait_for(lambda: len(_wake_timers(agent, sid)) == 1, timeout=60,
                     what="the timer that resumes it")
        resumes = agent.show(sid)["resumes_at"]
        _power_cut_and_boot(machine)
        wait_for(lambda: len(_wake_timers(agent, sid)) == 1, timeout=60,
                 what="recover at boot to arm it again")
        shown = agent.show(sid)
        assert (shown["status"], shown["resumes_at"]) == ("limited", resumes)
        agent.ok("recover")
        assert len(_wake_timers(agent, sid)) == 1  # armed once
    finally:
        agent("units", "uninstall")
