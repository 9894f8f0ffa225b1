"""`orch show` as people read it (orch.render): systemd's times in the local zone with
how long ago, costs without float noise, tokens summed, empty fields left out."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orch import render
from orch.session import Session, Status

NOW = datetime(2026, 12, 5, 23, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def paris() -> Iterator[None]:
    """The local zone is Paris (CET, UTC+1 in December) for each test, restored after."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "CET-1CEST,M3.5.0,M10.5.0/3"  # POSIX rule: needs no tzdata
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat(timespec="microseconds")


def _run(number: int, status: str, started: str | None, ended: str | None,
         **changes: Any) -> dict[str, Any]:
    run = {"invocation_id": f"{number:032x}", "started_at": started, "ended_at": ended,
           "status": status, "exit_code": None, "exit_signal": None, "result": None}
    return {**run, **changes}


def _session(**changes: Any) -> Session:
    bare = Session(id="1a2b3c4d-0000-4000-8000-00000000abcd", name="review",
                   unit="orch-review-1a2b3c4d.service", scope="user", status=Status.RUNNING,
                   main_pid=4242, invocation_id="f" * 32, argv=["sleep", "300"], cwd="/srv",
                   tags=[], description="", created_at=_ago(minutes=3, seconds=5),
                   started_at=_ago(minutes=3, seconds=2), ended_at=None, exit_code=None,
                   exit_signal=None, result=None, final_result=None, parent_id=None)
    return dataclasses.replace(bare, **changes)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "now"), (0.0004, "400us ago"), (0.25, "250ms ago"), (59, "59s ago"),
    (182, "3min 2s ago"), (299, "4min 59s ago"), (300, "5min ago"),
    (2 * 3600 + 5 * 60 + 9, "2h 5min ago"), (7 * 3600, "7h ago"),
    (27 * 3600 + 120, "1 day 3h ago"), (3 * 86400, "3 days ago"),
    (15 * 86400, "2 weeks 1 days ago"), (40 * 86400, "1 months 9 days ago"),
    (400 * 86400, "1 years 1 months ago"), (-42, "42s left"), (-3 * 3600, "3h 0min left"),
])
def test_relative_times_as_systemd_writes_them(seconds: float, text: str) -> None:
    assert render.format_relative(NOW - timedelta(seconds=seconds), NOW) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (303, "5min 3s"), (3723, "1h 2min 3s"), (0.25, "250ms"), (59, "59s"), (0, "0"),
    (90061, "1d 1h 1min 1s"), (303.7, "5min 3s"),
])
def test_durations_as_systemd_writes_them(seconds: float, text: str) -> None:
    assert render.format_timespan(round(seconds * 1_000_000)) == text


def test_below_a_minute_a_finer_accuracy_gives_decimals() -> None:
    assert render.format_timespan(1_500_000, accuracy=1000) == "1.500s"


def test_timestamps_in_the_local_zone_in_systemds_format() -> None:
    assert render.format_timestamp(datetime(2026, 12, 5, 22, 49, 12, tzinfo=UTC)) == \
        "Sat 2026-12-05 23:49:12 CET"


@pytest.mark.parametrize(("usd", "text"), [
    (1.2449, "$1.24"), (1.235001, "$1.24"), (0.01, "$0.01"), (12.5, "$12.50"),
    (0.00013000000000000002, "$0.00013"), (0.001234567, "$0.001235"),
    (0.00001235, "$0.00001235"), (0.0, "$0.00"),
])
def test_costs_to_the_cent_else_four_significant_digits(usd: float, text: str) -> None:
    assert render.money(usd) == text


def test_claude_tokens_sum_input_output_and_cache() -> None:
    usage = {"input_tokens": 12, "output_tokens": 345, "cache_creation_input_tokens": 1200,
             "cache_read_input_tokens": 14000}
    assert render.tokens(usage) == \
        "15,557 (input 12, output 345, cache write 1,200, cache read 14,000)"


def test_cached_input_is_part_of_the_input_not_added_to_it() -> None:
    # codex (OpenAI) counts cached tokens inside input_tokens.
    usage = {"input_tokens": 1000, "cached_input_tokens": 800, "output_tokens": 50}
    assert render.tokens(usage) == "1,050 (input 1,000, cached 800, output 50)"


def test_a_providers_own_total_is_the_total() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 21, "cached": 0}
    assert render.tokens(usage) == "21 (input 10, output 5)"


def test_a_running_session_reads_like_systemctl_status() -> None:
    text = render.details(_session(), NOW)
    lines = text.splitlines()
    assert lines[0] == "\u25cf review (1a2b3c4d-0000-4000-8000-00000000abcd)"
    assert "    Status: running since Sat 2026-12-05 23:56:58 CET; 3min 2s ago" in lines
    assert "  Main PID: 4242" in lines
    assert "   Command: sleep 300" in lines
    assert "   Created: Sat 2026-12-05 23:56:55 CET; 3min 5s ago" in lines
    assert "Invocations" not in text  # one run: the lines above say it all


def test_empty_fields_are_left_out() -> None:
    text = render.details(_session(), NOW)
    labels = {line.split(":")[0].strip() for line in text.splitlines()[1:]}
    assert labels == {"Status", "Main PID", "Unit", "Invocation", "Command", "Directory",
                      "Created"}
    for noise in ("None", "[]", "{}", "''", "Tags", "Cost"):
        assert noise not in text


def test_an_ended_session_says_how_and_how_long_it_ran() -> None:
    session = _session(status=Status.FAILED, main_pid=None,
                       ended_at=_ago(seconds=2 * 60 + 10), exit_code=3, result="exit-code",
                       started_at=_ago(minutes=7, seconds=13))
    lines = render.details(session, NOW).splitlines()
    assert lines[0].startswith("\u00d7 review")
    assert "    Status: failed (exit code 3) since Sat 2026-12-05 23:57:50 CET; " \
           "2min 10s ago" in lines
    assert "   Started: Sat 2026-12-05 23:52:47 CET; 7min ago" in lines
    assert "  Duration: 5min 3s" in lines
    assert not any(line.strip().startswith("Main PID") for line in lines)


def test_agent_fields_are_rendered_for_people_not_as_python() -> None:
    session = _session(provider="claude", provider_session_id="abc-123",
                       usage={"input_tokens": 1, "output_tokens": 2},
                       cost_usd=0.00013000000000000002,
                       options={"model": "opus", "add_dirs": ["/a", "/b c"], "sandbox": True},
                       tags=["ci", "nightly"], after=["0f0f0f0f"])
    text = render.details(session, NOW)
    assert "  Provider: claude (session abc-123)" in text
    assert "    Tokens: 3 (input 1, output 2)" in text
    assert "      Cost: $0.00013" in text
    assert "   Options: model=opus add_dirs='/a,/b c' sandbox=yes" in text
    assert "      Tags: ci, nightly" in text
    assert "     After: 0f0f0f0f" in text
    for python in ("{'", "['", "0.00013000000000000002", "True", "+00:00"):
        assert python not in text
    # copilot counts premium requests, no tokens (before: "Tokens: 0", the 0 dropped).
    copilot = _session(provider="copilot", usage={"premiumRequests": 0})
    assert "    Tokens: none counted (premium requests 0)" in render.details(copilot, NOW)


def test_each_invocation_with_start_end_run_time_and_outcome() -> None:
    runs = [_run(1, "lost", _ago(hours=2), _ago(hours=1, minutes=59, seconds=1),
                 exit_signal="SIGKILL", result="signal"),
            _run(2, "failed", _ago(hours=1), _ago(minutes=55), exit_code=1,
                 result="exit-code"),
            _run(3, "running", _ago(minutes=10), None)]
    text = render.details(_session(invocations=runs, restarts=2, persistent=True), NOW)
    assert "  1. lost (SIGKILL)  " + "0" * 31 + "1" in text
    assert "started Sat 2026-12-05 22:00:00 CET, ended Sat 2026-12-05 22:00:59 CET, " \
           "ran for 59s" in text
    assert "  2. failed (exit code 1)" in text and "ran for 5min" in text
    assert "  3. running" in text and "running for 10min" in text
    assert "Persistent: yes" in text and "  Restarts: 2" in text


def test_a_long_final_result_is_cut_with_a_pointer_to_orch_result() -> None:
    session = _session(final_result="\n".join(f"line {n}" for n in range(1, 26)))
    text = render.details(session, NOW)
    assert "    Result: line 1\n            line 2\n" in text
    assert "line 10" in text and "line 11" not in text
    assert "\u2026 15 more lines: orch result 1a2b3c4d" in text


def test_every_field_of_a_session_is_shown_when_set() -> None:
    # A field added to Session fails this test until `orch show` renders it.
    values: dict[str, tuple[Any, str]] = {
        "id": ("1a2b3c4d-0000-4000-8000-00000000abcd", "(1a2b3c4d-0000-4000-8000-00000000abcd)"),
        "name": ("review", "\u00d7 review"),
        "unit": ("orch-review-1a2b3c4d.service", "orch-review-1a2b3c4d.service (user)"),
        "scope": ("user", "(user)"),
        "status": (Status.FAILED, "Status: failed"),
        "main_pid": (4242, "Main PID: 4242"),
        "invocation_id": ("f" * 32, "Invocation: " + "f" * 32),
        "argv": (["sleep", "300"], "Command: sleep 300"),
        "cwd": ("/srv", "Directory: /srv"),
        "tags": (["ci"], "Tags: ci"),
        "description": ("Review it", " - Review it"),
        "created_at": (_ago(hours=3), "Created: Sat 2026-12-05 21:00:00 CET; 3h 0min ago"),
        "started_at": (_ago(hours=2), "Started: Sat 2026-12-05 22:00:00 CET; 2h 0min ago"),
        "ended_at": (_ago(hours=1), "since Sat 2026-12-05 23:00:00 CET; 1h 0min ago"),
        "exit_code": (3, "(exit code 3, timeout)"),
        "exit_signal": ("SIGTERM", "(SIGTERM)"),
        "result": ("timeout", ", timeout)"),
        "final_result": ("the answer", "Result: the answer"),
        "parent_id": ("0f0f0f0f-0000-4000-8000-000000000000", "Parent: 0f0f0f0f-"),
        "persistent": (True, "Persistent: yes"),
        "restarts": (1, "Restarts: 1"),
        "invocations": ([_run(1, "lost", _ago(hours=4), _ago(hours=3)),
                         _run(2, "failed", _ago(hours=2), _ago(hours=1))], "2. failed"),
        "provider": ("claude", "Provider: claude"),
        "provider_session_id": ("abc-123", "(session abc-123)"),
        "usage": ({"output_tokens": 7}, "Tokens: 7 (output 7)"),
        "cost_usd": (2.5, "Cost: $2.50"),
        "options": ({"model": "opus"}, "Options: model=opus"),
        "worktree": ("/wt/review", "Worktree: /wt/review"),
        "after": (["0e0e0e0e"], "After: 0e0e0e0e"),
        "blocked": ("dependency 0e0e0e0e (x) never ran", "Blocked: dependency 0e0e0e0e"),
        "placement": ("most free memory", "Placement: most free memory"),
        "queue": ("night", "Queue: night (#2 in line, priority 5)"),
        "priority": (5, "priority 5)"),
        "position": (2, "(#2 in line"),
        "resumes_at": (_ago(hours=-2), "Resumes: Sun 2026-12-06 02:00:00 CET; 2h 0min left"),
        "waiting_for": ("usage limit (five_hour)", "left (usage limit (five_hour))"),
        "memory_current": (188_416, "Memory: 184.0K"),
        "cpu_usage_nsec": (1_234_567_890, "CPU: 1.234s"),
        "tasks_current": (3, "Tasks: 3"),
        "io_read_bytes": (5 << 20, "IO: 5.0M read"),
        "io_write_bytes": (1536, "1.5K written"),
        "processes": ([{"pid": 4242, "command": ["claude", "-p", "fix it"],
                        "cpu_usage_nsec": 2_000_000, "memory_rss": 3 << 30}],
                      "Processes: 4242  3.0G  2ms  claude -p 'fix it'"),
    }
    assert set(values) == {f.name for f in dataclasses.fields(Session)}
    session = _session(**{name: value for name, (value, _) in values.items()
                          if name not in ("exit_signal",)})
    text = render.details(session, NOW)
    for name, (_, shown) in values.items():
        if name != "exit_signal":
            assert shown in text, f"{name}: {shown!r} not in\n{text}"
    # A signal shows where there is no exit code.
    signalled = render.details(dataclasses.replace(session, exit_code=None,
                                                   exit_signal="SIGTERM"), NOW)
    assert values["exit_signal"][1].rstrip(")") in signalled


def test_outside_utf8_only_ascii_marks() -> None:
    session = _session(status=Status.STOPPED, final_result="\n".join(["x"] * 20))
    text = render.details(session, NOW, unicode=False)
    assert text.startswith("o review") and "... 10 more lines" in text
    assert text.replace("CET", "").isascii()


def test_options_read_as_they_were_given_durations_and_sizes_as_systemd_writes_them() -> None:
    # Before: timeout_sec=7200.0 memory_max=104857600, where 2h and 100M were given.
    assert render.key_values({"timeout_sec": 7200.0, "memory_max": 104857600, "nice": 3,
                              "cpu_quota": 50, "sandbox": True, "add_dirs": ["/a", "/b c"],
                              "retry_delay_sec": 30.0}) == (
        "timeout=2h memory_max=100.0M nice=3 cpu_quota=50% sandbox=yes add_dirs='/a,/b c' "
        "retry_delay=30s")


def test_an_event_line_says_each_thing_once() -> None:
    from orch.events import Event

    cancelled = Event("2026-12-07T04:20:00+00:00", "a" * 36, "q3", "ended", "killed", None,
                      "canceled", "canceled while queued")
    # Before: "ended, killed (canceled, canceled while queued)".
    assert render.event_line(cancelled).endswith(" aaaaaaaa q3: ended, killed (canceled "
                                                 "while queued)")
    failed = Event("2026-12-07T04:20:00+00:00", "b" * 36, "job", "ended", "failed", 3,
                   "exit-code", None)
    assert render.event_line(failed).endswith(": ended, failed (exit code 3, exit-code)")


def test_a_limited_session_is_limited_since_its_run_ended() -> None:
    # Before: since its failed run started.
    limited = _session(status=Status.LIMITED, main_pid=None, ended_at=_ago(minutes=1),
                       exit_code=1, result="exit-code", resumes_at=_ago(hours=-2),
                       waiting_for="usage limit (five_hour)")
    [line] = [x for x in render.details(limited, NOW).splitlines() if "Status:" in x]
    assert line.endswith("limited since Sat 2026-12-05 23:59:00 CET; 1min 0s ago")


def test_a_queued_session_held_for_memory_says_why_on_its_queue_line() -> None:
    held = _session(status=Status.QUEUED, main_pid=None, started_at=None, queue="night",
                    position=1, waiting_for="free memory (queue night asks for 8.0G "
                    "available)")
    assert ("     Queue: night (#1 in line); waiting for free memory (queue night asks for "
            "8.0G available)") in render.details(held, NOW).splitlines()


def test_an_idle_conversation_says_it_waits_and_since_when_it_runs() -> None:
    lines = render.details(_session(status=Status.IDLE), NOW).splitlines()
    # Not "idle since" its start: the turn it waits after ended later than that.
    assert ("    Status: idle: waiting for its next message; running since "
            "Sat 2026-12-05 23:56:58 CET; 3min 2s ago") in lines


def test_what_others_wrote_is_shown_never_run_by_the_terminal() -> None:
    text = render.details(_session(argv=["claude", "-p", "x\x1b]0;TITLE\x07"],
                                   final_result="ok \x1b[2Jdone\nsecond line",
                                   status=Status.EXITED, exit_code=0, result="success",
                                   ended_at=_ago(minutes=1)), NOW)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;TITLE\\x07" in text and "ok \\x1b[2Jdone" in text
    assert any(line.strip() == "second line" for line in text.splitlines())  # lines kept
