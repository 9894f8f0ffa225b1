"""Durations: orch reads a time span exactly as systemd does, checked against systemd's own
parser (`systemd-analyze timespan`) for hand-picked and generated spans."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from orch import ssh
from orch.alarm import DEFAULT_CALL_TIMEOUT, call_timeout
from orch.errors import UsageError
from orch.request import spawn_request
from orch.scope import Scope
from orch.timespan import USEC_INFINITY, parse_seconds, parse_usec

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def systemd_usec(text: str) -> int | None:
    """What systemd makes of TEXT: microseconds, USEC_INFINITY, or None if it refuses."""
    assert ANALYZE is not None
    done = subprocess.run([ANALYZE, "timespan", "--", text], capture_output=True, text=True,
                          check=False, timeout=30)
    if done.returncode != 0:
        return None
    for line in done.stdout.splitlines():
        head, _, value = line.strip().partition(": ")
        if head == "\u03bcs":
            return USEC_INFINITY if value == "infinity" else int(value)
    raise AssertionError(f"no \u03bcs line in {done.stdout!r}")


def ours(text: str) -> int | None:
    try:
        return parse_usec(text)
    except ValueError:
        return None


HARD_CASES = [
    "2m", "30M", "1h30", "1h30m", "2h 30min", " 5 s ", ".5", "+3", "\v5", "\v-0", "1.5M",
    "infinity", " infinity ", "infinityx", "1 infinity", "3.", "12.34.56", "12.34 .56",
    "12.34s.56", "5secs", "5 seconds", "0.0000005s", "-0", "-5", "1h-5m", "1y", "5 6", "2\u03bcs",
    "2\u00b5s", "1.5us", "1.5ms", "1.25msec", "3 weeks 2 days", "1hr", "18446744073709551615us",
    "18446744073709551614us", "9223372036854775807us", "9223372036854775808", "584542y",
    "", " ", "nan", "inf", "1e3", "0x10", "m30", "h", "10m5", "1..5h", "00012", "1 .", "+-5",
    "3.+1", "1Min", "1S", "1month2days",
]


@needs_analyze
@pytest.mark.parametrize("text", HARD_CASES)
def test_hard_cases_read_as_systemd_reads_them(text: str) -> None:
    assert ours(text) == systemd_usec(text)


_TOKENS = st.sampled_from([
    "0", "1", "7", "30", "00", "999999999999", "9223372036854775807", ".", ".5", "1.25", " ",
    "\t", "+", "-", "s", "sec", "seconds", "m", "min", "minutes", "M", "month", "ms", "msec",
    "h", "hr", "hours", "d", "days", "w", "weeks", "y", "years", "us", "usec", "\u03bcs",
    "\u00b5s", "infinity", "x", "e",
])


@needs_analyze
@settings(max_examples=300)
@given(st.lists(_TOKENS, min_size=1, max_size=7).map("".join))
@example("1h 30min 20s 100ms")
def test_generated_spans_read_as_systemd_reads_them(text: str) -> None:
    assert ours(text) == systemd_usec(text)


@pytest.mark.parametrize(("value", "seconds"), [
    ("90", 90), (90, 90), ("2m", 120), ("30M", 30 * 2_629_800), ("2h 30min", 9000),
    ("1.5d", 129600), ("250ms", 0.25), ("0", 0), ("infinity", math.inf),
])
def test_parse_seconds(value: str | int, seconds: float) -> None:
    assert parse_seconds(value) == seconds


@pytest.mark.parametrize("value", ["2x", "-1", -1, "", "1..5h", True])
def test_parse_seconds_refuses_in_one_line_naming_the_option(value: str | int) -> None:
    with pytest.raises(UsageError) as err:
        parse_seconds(value, "--timeout")
    message = err.value.message
    assert "\n" not in message and err.value.exit_code == 2
    # As a spawn setting's flag says it (wait's read `--timeout "2x": expected ...`).
    assert message.startswith("--timeout: expected a duration such as 90s, 30m, 1h30m, "
                              "2h 30min or infinity")
    assert "a bare number is seconds" in message
    assert message.endswith(", got " + (f'"{value}"' if isinstance(value, str) else
                                        str(value)))


@pytest.mark.parametrize(("value", "zero", "infinity", "bound"), [
    ("0", False, True, "more than 0"), ("infinity", True, False, "less than infinity"),
    (" infinity", False, False, "more than 0 and less than infinity"),
])
def test_parse_seconds_refuses_zero_or_infinity_where_they_mean_nothing(
        value: str, zero: bool, infinity: bool, bound: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_seconds(value, "ORCH_CALL_TIMEOUT", zero=zero, infinity=infinity)
    assert err.value.message.startswith(f"ORCH_CALL_TIMEOUT: expected a duration {bound}, "
                                        "such as 90s, 30m, 1h30m, 2h 30min (as")
    assert err.value.message.endswith(f', got "{value}"')


def test_a_value_that_is_no_duration_is_told_so_without_the_bounds() -> None:
    for value in ("abc", "-5", ""):  # before: "expected a duration less than infinity"
        with pytest.raises(UsageError) as err:
            parse_seconds(value, "--older-than", infinity=False)
        assert "infinity" not in err.value.message.split("expected", 1)[1].split(",")[0]
        assert ": expected a duration such as 90s" in err.value.message
        # Nor offered as an example where it is refused (before: "... 2h 30min or infinity").
        assert "infinity" not in err.value.message


# --- every option and variable that takes a duration reads it so ------------------------

def orch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """orch ARGS in a child (the fixture's private state directory, no manager needed)."""
    return subprocess.run([sys.executable, "-m", "orch", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, check=False, timeout=60)


@pytest.mark.parametrize("span", ["2m", "1h 30min", "infinity", "30M", "90"])
def test_wait_timeout_takes_a_time_span(span: str) -> None:
    # The span is read before the session: an unknown one is what stops the command.
    done = orch("wait", "--timeout", span, "nosuch")
    assert done.returncode == 2
    assert done.stderr == "orch: no session matches 'nosuch'\n"


@pytest.mark.parametrize(("args", "env", "named"), [
    # One shape for all: `--timeout: expected ..., got "2x"`, as a spawn flag's.
    (["wait", "--timeout", "2x", "nosuch"], {}, "--timeout: expected"),
    (["reap", "--older-than", "7 dayz", "--dry-run"], {}, "--older-than: expected"),
    (["reap", "--older-than", "infinity", "--dry-run"], {}, "--older-than: expected"),
    (["spawn", "--timeout", "soon", "--", "true"], {}, "--timeout: expected"),
    (["ps"], {"ORCH_CALL_TIMEOUT": "20 sex"}, "ORCH_CALL_TIMEOUT: expected"),
    (["ps"], {"ORCH_CALL_TIMEOUT": "0"}, "ORCH_CALL_TIMEOUT: expected"),
])
def test_a_bad_duration_is_one_line_and_exit_2(args: list[str], env: dict[str, str],
                                               named: str) -> None:
    done = orch(*args, env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"orch: {named}"), done.stderr
    assert "a bare number is seconds" in done.stderr


def test_call_timeout_takes_a_time_span(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_CALL_TIMEOUT", "1min 30s")
    assert call_timeout() == 90
    monkeypatch.setenv("ORCH_CALL_TIMEOUT", "500ms")
    assert call_timeout() == 0.5
    monkeypatch.delenv("ORCH_CALL_TIMEOUT")
    assert call_timeout() == DEFAULT_CALL_TIMEOUT


def test_host_timeout_and_ssh_persist_take_time_spans(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("ORCH_HOST_TIMEOUT", "1m")
    assert ssh.host_timeout() == 60
    assert "ConnectTimeout=60" in ssh.options()
    for value, option in [("2min", "120"), ("1.5s", "2"), ("infinity", "yes"), ("0", None),
                          ("no", None), ("90", "90")]:
        monkeypatch.setenv("ORCH_SSH_PERSIST", value)
        assert ssh.persist_option() == option, value
    monkeypatch.setenv("ORCH_SSH_PERSIST", "1 hour")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(Scope, "default", classmethod(lambda cls: Scope.USER))
    assert "ControlPersist=3600" in ssh.options()
    for name, value in [("ORCH_HOST_TIMEOUT", "infinity"), ("ORCH_HOST_TIMEOUT", "ten"),
                        ("ORCH_SSH_PERSIST", "forever")]:
        monkeypatch.delenv("ORCH_HOST_TIMEOUT")
        monkeypatch.setenv(name, value)
        with pytest.raises(UsageError, match=f'^{name}: expected a duration.*, got "{value}"$'):
            ssh.options()


@pytest.mark.parametrize(("span", "usec"), [
    ("249us", 249), ("1.000001s", 1_000_001), ("2h 30min", 9_000_000_000), ("0", None),
    ("infinity", None),
])
def test_spawn_timeout_reaches_systemd_to_the_microsecond(span: str, usec: int | None) -> None:
    options = spawn_request(None, None, {"timeout": span}).options()
    props = dict((name, value) for name, _, value in options.properties(Scope.USER, "/"))
    assert props.get("RuntimeMaxUSec") == usec


# --- --since: one reading for logs and events ---------------------------------------------

@pytest.mark.parametrize(("text", "ago_s"), [
    ("1h", 3600), ("30min", 1800), ("2 min ago", 120), ("-1h", 3600), ("1h 30min ago", 5400),
    ("now", 0)])
def test_since_takes_a_time_span_ago(text: str, ago_s: int) -> None:
    import time

    from orch.timespan import since_usec

    before = int(time.time() * 1_000_000)
    found = since_usec(text)
    after = int(time.time() * 1_000_000)
    assert before - ago_s * 1_000_000 <= found <= after - ago_s * 1_000_000


def test_since_takes_an_iso_time_local_where_it_has_no_zone_and_days() -> None:
    from datetime import datetime, timedelta

    from orch.timespan import since_usec

    assert since_usec("2026-12-06T09:00:00+00:00") == 1796547600 * 1_000_000
    assert since_usec("2026-12-06 09:00") == \
        int(datetime(2026, 12, 6, 9, 0).astimezone().timestamp()) * 1_000_000
    # Midnights as local times: the day before a change of summer time has another offset.
    today = datetime.combine(datetime.now().date(), datetime.min.time())
    assert since_usec("today") == int(today.astimezone().timestamp()) * 1_000_000
    assert since_usec("Yesterday") == \
        int((today - timedelta(days=1)).astimezone().timestamp()) * 1_000_000


def test_since_takes_a_time_of_day_today_or_yesterday_as_journalctl_does() -> None:
    from datetime import UTC, datetime, timedelta

    from orch.timespan import since_usec

    today = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)

    def at(day: datetime, hour: int, minute: int, second: int = 0) -> int:
        local = datetime(day.year, day.month, day.day, hour, minute, second).astimezone()
        return int(local.timestamp()) * 1_000_000

    assert since_usec("15:09:36") == at(today, 15, 9, 36)  # as `orch logs` prints a time
    assert since_usec("  07:30 ") == at(today, 7, 30)
    assert since_usec("today 15:09") == at(today, 15, 9)
    assert since_usec("yesterday 18:00:05") == at(today - timedelta(days=1), 18, 0, 5)
    assert since_usec("15:00+00:00") == int(datetime(
        today.year, today.month, today.day, 15, tzinfo=UTC).timestamp()) * 1_000_000
    assert since_usec("15:00-05:00") == int(datetime(
        today.year, today.month, today.day, 20, tzinfo=UTC).timestamp()) * 1_000_000
    assert since_usec("9:05") == at(today, 9, 5)  # as journalctl takes an hour's one digit
    assert since_usec("12:00:00.5") == at(today, 12, 0) + 500_000


def test_since_takes_a_time_as_systemd_and_orch_show_write_it() -> None:
    import time
    from datetime import UTC, datetime

    from orch.timespan import since_usec

    stamp = int(datetime(2026, 12, 7, 18, 0, 5, tzinfo=UTC).timestamp()) * 1_000_000
    assert since_usec("Mon 2026-12-07 18:00:05 UTC") == stamp  # pasted from orch show
    assert since_usec("2026-12-07 18:00:05 UTC") == stamp
    local = int(datetime(2026, 12, 7, 18, 0, 5).astimezone().timestamp()) * 1_000_000
    assert since_usec(f"Monday 2026-12-07 18:00:05 {time.tzname[0]}") == local


@pytest.mark.parametrize("text", ["yesterday-ish", "", "ago", "infinity", "1x", "-", "h", "25:00",
                                  "yesterday 9", "today 7:5x", "Mon", "today 12:61"])
def test_what_since_cannot_read_is_one_line(text: str) -> None:
    from orch.timespan import since_usec

    with pytest.raises(UsageError) as err:
        since_usec(text)
    assert err.value.message.startswith(f"--since {text!r}: expected an ISO 8601 time")
    assert err.value.exit_code == 2


@pytest.mark.parametrize(("infinity", "tail"), [(True, ", or infinity"), (False, "")])
def test_a_well_formed_span_beyond_what_systemd_counts_is_called_too_long(
        infinity: bool, tail: str) -> None:
    for value in ("99999999999y", "9223372036854775808us"):  # 292,271 years, in µs
        with pytest.raises(UsageError) as err:  # before: "expected a duration such as ..."
            parse_seconds(value, "ORCH_HOST_TIMEOUT", infinity=infinity)
        assert err.value.message == ("ORCH_HOST_TIMEOUT: expected a duration below 292,271 "
                                     f'years{tail}, got "{value}"')
    # Every span below that bound is counted, in any unit.
    assert parse_seconds("292270y") == 292270 * 31_557_600
