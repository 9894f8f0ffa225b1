"""How long a call to a manager may take, and SIGALRM as the backstop that holds it to
that: sd-bus honours SYSTEMD_BUS_TIMEOUT for method calls, and the alarm covers what it
does not (the authentication of a new connection to a frozen manager hangs for 90 s
otherwise). The process has one real-time timer: a caller's own is kept.
"""

from __future__ import annotations

import os
import sys
import time
from types import FrameType, TracebackType

from orch.errors import ManagerTimeout

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~5 ms of every command's start
    import signal
    from typing import Any
else:
    # The C module that signal wraps, with the same functions: signal's enums of
    # signals and handlers cost every command 0.8 ms at start. (A handler it returns is
    # an int, where signal's would be the equal Handlers member.)
    import _signal as signal

DEFAULT_CALL_TIMEOUT = 20.0


def call_timeout() -> float:
    """Seconds one D-Bus call may take: ORCH_CALL_TIMEOUT, a time span above 0 and
    below infinity, overrides the default (UsageError for anything else)."""
    value = os.environ.get("ORCH_CALL_TIMEOUT")
    if not value:
        return DEFAULT_CALL_TIMEOUT
    from orch.timespan import parse_seconds

    return parse_seconds(value, "ORCH_CALL_TIMEOUT", zero=False, infinity=False)


class _Deadline(Exception):
    pass


def on_alarm(signum: int, frame: FrameType | None) -> None:
    """SIGALRM's handler while held: the end of a bounded call, else the caller's alarm."""
    if ALARM.bounding:
        raise _Deadline
    ALARM.forward(signum, frame)  # the caller's own timer, between our calls


class _AlarmHandler:
    """on_alarm as SIGALRM's handler while anyone holds it (main thread only).
    Installing a handler costs more than a call does, so a Manager holds it while open
    and its calls only set the timer. An alarm outside a bounded call is the caller's:
    it goes to the handler the caller had."""

    def __init__(self) -> None:
        self.holders = 0
        self.bounding = 0  # bounded sections under way
        self.previous: Any = None

    def hold(self) -> bool:
        """Take a hold; False (and no hold) outside the main thread."""
        if not _on_main_thread():
            return False
        if self.holders == 0:
            self.previous = signal.signal(signal.SIGALRM, on_alarm)
        self.holders += 1
        return True

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            # None: a handler Python did not install, which cannot be put back.
            previous = signal.SIG_DFL if self.previous is None else self.previous
            signal.signal(signal.SIGALRM, previous)
            self.previous = None

    def forward(self, signum: int, frame: FrameType | None) -> None:
        """Do what the caller's handler would have done with this SIGALRM."""
        if callable(self.previous):
            self.previous(signum, frame)
        elif self.previous in (signal.SIG_DFL, None):
            # The default action ends the process: let it, as it would have without us.
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGALRM)


def _on_main_thread() -> bool:
    """Whether this is the main thread. Without threading loaded (a command line loads
    it for nothing else: 2 ms) no thread was started through it, so this is the main
    one; orch's idle reaper, a bare _thread, never calls a manager."""
    threading = sys.modules.get("threading")
    return threading is None or threading.current_thread() is threading.main_thread()


ALARM = _AlarmHandler()
# What a timer of the caller's that ran out during a bounded call is set to afterwards,
# so that it still fires (0 would cancel it).
_OVERDUE = 1e-6


class bounded:  # lower case: used as `with bounded(...)`, as the function it was
    """Raise ManagerTimeout if the body runs longer than SECONDS (main thread only;
    elsewhere SYSTEMD_BUS_TIMEOUT alone bounds the calls). A class, not a
    @contextmanager: a spawn enters ten of these, at a third of the cost.

    The process has one real-time timer: a caller's own (setitimer, alarm) is put back
    afterwards with the time the body took taken off, its interval kept; one that ran
    out meanwhile fires right after. The body is bounded by SECONDS even when the
    caller's timer is due sooner: theirs then fires once the call returns (late by at
    most the call), never inside orch's call, where it would be taken for our deadline.
    """

    __slots__ = ("held", "interval", "seconds", "started", "theirs", "what")

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what

    def __enter__(self) -> None:
        self.held = ALARM.hold()
        if self.held:
            self.theirs, self.interval = signal.getitimer(signal.ITIMER_REAL)
            self.started = time.monotonic()
            ALARM.bounding += 1
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.held:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        ALARM.bounding -= 1
        ALARM.release()  # first, so that the caller's timer finds the caller's handler
        if self.theirs > 0:
            left = self.theirs - (time.monotonic() - self.started)
            signal.setitimer(signal.ITIMER_REAL, max(left, _OVERDUE), self.interval)
        if kind is _Deadline:
            raise unanswered(self.what, self.seconds) from None


def unanswered(what: str, seconds: float) -> ManagerTimeout:
    """The error of a manager that did not answer WHAT within SECONDS."""
    return ManagerTimeout(f"the systemd manager did not answer {what} within {seconds:.0f}s")
