"""SIGALRM as the backstop of manager calls: installed while held, the caller's handler
back once the last hold ends, a call cut off as ManagerTimeout."""

from __future__ import annotations

import select
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from orch.errors import ManagerTimeout
from orch.systemd import _ALARM, _bounded, _on_alarm


def callers_handler(signum: int, frame: FrameType | None) -> None:
    raise AssertionError("the caller's handler ran")


@pytest.fixture
def caller_handler() -> Iterator[object]:
    previous = signal.signal(signal.SIGALRM, callers_handler)
    yield callers_handler
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def test_the_handler_is_ours_while_held_and_the_callers_after(caller_handler: object) -> None:
    assert _ALARM.hold()
    assert _ALARM.hold()  # a nested Manager
    assert signal.getsignal(signal.SIGALRM) is _on_alarm
    _ALARM.release()
    assert signal.getsignal(signal.SIGALRM) is _on_alarm  # the outer one still holds it
    _ALARM.release()
    assert signal.getsignal(signal.SIGALRM) is caller_handler
    assert _ALARM.holders == 0


def test_a_bounded_body_leaves_the_callers_handler_and_no_timer(caller_handler: object) -> None:
    with _bounded(30, "a call"):
        assert signal.getsignal(signal.SIGALRM) is _on_alarm
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    assert signal.getsignal(signal.SIGALRM) is caller_handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_body_that_overruns_is_cut_off_as_a_timeout(caller_handler: object) -> None:
    with pytest.raises(ManagerTimeout, match="did not answer a stuck call within"), \
            _bounded(0.05, "a stuck call"):
        select.select([], [], [], 30)  # blocks until the alarm interrupts it
    assert signal.getsignal(signal.SIGALRM) is caller_handler
    assert _ALARM.holders == 0


def test_a_held_handler_stays_while_bounded_calls_come_and_go(caller_handler: object) -> None:
    assert _ALARM.hold()
    try:
        for _ in range(3):
            with _bounded(30, "a call"):
                pass
            assert signal.getsignal(signal.SIGALRM) is _on_alarm
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        _ALARM.release()
    assert signal.getsignal(signal.SIGALRM) is caller_handler


def test_no_handler_outside_the_main_thread(caller_handler: object) -> None:
    seen: list[object] = []

    def body() -> None:
        seen.append(_ALARM.hold())
        with _bounded(0.05, "a call"):
            seen.append(signal.getitimer(signal.ITIMER_REAL))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(timeout=30)
    assert seen == [False, (0.0, 0.0)]
    assert signal.getsignal(signal.SIGALRM) is caller_handler
