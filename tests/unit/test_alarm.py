"""SIGALRM as the backstop of manager calls: installed while held, the caller's handler
back once the last hold ends, a call cut off as ManagerTimeout, and the caller's own
timer neither cancelled nor taken for ours."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from orch.alarm import ALARM, bounded, on_alarm
from orch.errors import ManagerTimeout
from tests.waiting import wait_for


def callers_handler(signum: int, frame: FrameType | None) -> None:
    raise AssertionError("the caller's handler ran")


@pytest.fixture
def caller_handler() -> Iterator[object]:
    previous = signal.signal(signal.SIGALRM, callers_handler)
    yield callers_handler
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_the_handler_is_ours_while_held_and_the_callers_after(caller_handler: object) -> None:
    assert ALARM.hold()
    assert ALARM.hold()  # a nested Manager
    assert signal.getsignal(signal.SIGALRM) is on_alarm
    ALARM.release()
    assert signal.getsignal(signal.SIGALRM) is on_alarm  # the outer one still holds it
    ALARM.release()
    assert signal.getsignal(signal.SIGALRM) is caller_handler
    assert ALARM.holders == 0


def test_a_bounded_body_leaves_the_callers_handler_and_no_timer(caller_handler: object) -> None:
    with bounded(30, "a call"):
        assert signal.getsignal(signal.SIGALRM) is on_alarm
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    assert signal.getsignal(signal.SIGALRM) is caller_handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_body_that_overruns_is_cut_off_as_a_timeout(caller_handler: object) -> None:
    with pytest.raises(ManagerTimeout, match="did not answer a stuck call within"), \
            bounded(0.05, "a stuck call"):
        select.select([], [], [], 30)  # blocks until the alarm interrupts it
    assert signal.getsignal(signal.SIGALRM) is caller_handler
    assert ALARM.holders == 0


def test_a_held_handler_stays_while_bounded_calls_come_and_go(caller_handler: object) -> None:
    assert ALARM.hold()
    try:
        for _ in range(3):
            with bounded(30, "a call"):
                pass
            assert signal.getsignal(signal.SIGALRM) is on_alarm
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        ALARM.release()
    assert signal.getsignal(signal.SIGALRM) is caller_handler


def test_no_handler_outside_the_main_thread(caller_handler: object) -> None:
    seen: list[object] = []

    def body() -> None:
        seen.append(ALARM.hold())
        with bounded(0.05, "a call"):
            seen.append(signal.getitimer(signal.ITIMER_REAL))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=30)
    assert seen == [False, (0.0, 0.0)]
    assert signal.getsignal(signal.SIGALRM) is caller_handler


# --- the caller's own timer: one ITIMER_REAL per process, shared with the caller -------

@pytest.fixture
def recorder() -> Iterator[list[bool]]:
    """SIGALRM's handler records each alarm: whether a bounded call was under way."""
    fired: list[bool] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(
        ALARM.bounding > 0))
    yield fired
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _pass(seconds: float) -> None:
    """Let SECONDS of wall time go by (what a slow call does)."""
    end = time.monotonic() + seconds
    wait_for(lambda: time.monotonic() >= end, what=f"{seconds}s to pass")


def test_a_callers_timer_is_put_back_less_the_time_the_call_took(recorder: list[bool]) -> None:
    signal.setitimer(signal.ITIMER_REAL, 30, 7)
    with bounded(5, "a call"):
        assert signal.getitimer(signal.ITIMER_REAL)[0] <= 5  # our deadline meanwhile
        _pass(0.2)
    left, interval = signal.getitimer(signal.ITIMER_REAL)
    assert 28 < left <= 29.8 and interval == 7
    assert recorder == []


def test_a_callers_timer_that_runs_out_during_a_call_fires_after_it(
        recorder: list[bool]) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    with bounded(30, "a slow call"):  # no ManagerTimeout: the alarm due was the caller's
        _pass(0.3)
    wait_for(lambda: recorder, what="the caller's alarm")
    assert recorder == [False]  # once, after the call


def test_a_callers_timer_between_calls_of_an_open_manager_reaches_its_handler(
        recorder: list[bool]) -> None:
    assert ALARM.hold()  # an open Manager holds the handler between its calls
    try:
        with bounded(30, "a call"):
            signal.setitimer(signal.ITIMER_REAL, 30)  # as if set before the call
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # the caller sets one between calls
        wait_for(lambda: recorder, what="the caller's alarm")
    finally:
        ALARM.release()
    assert recorder == [False]


def test_a_callers_default_alarm_still_ends_the_process() -> None:
    # SIGALRM's default action ends the process; orch holding the handler must not
    # turn that into an exception.
    program = ("import signal\n"
               "from orch.alarm import ALARM\n"
               "assert ALARM.hold()\n"
               "signal.setitimer(signal.ITIMER_REAL, 0.05)\n"
               "signal.pause()\n")  # waits for the signal itself; run()'s timeout bounds it
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == -signal.SIGALRM, done.stderr
