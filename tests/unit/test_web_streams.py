"""A session's output as Server-Sent Events (orch.web.streams): it ends with `end` only
once the session has ended; where that cannot be told, an `error` says why and the
stream closes without an `end` (the client, connecting again, reads on)."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from orch import api, journal
from orch.errors import NotFound, OrchError
from orch.session import Status
from orch.web import streams


def _events(monkeypatch: pytest.MonkeyPatch, wait: Any) -> list[bytes]:
    """The events of a follower whose journal has one line, with api.wait as WAIT."""
    def follow_logs(record: Any, write: Any, end: journal.SessionEnd, **_: Any) -> None:
        write("a line\n")
        pause = threading.Event()  # never set: a wait of 10 ms between looks at the end
        while not end.is_set():
            pause.wait(0.01)

    monkeypatch.setattr(journal, "follow_logs", follow_logs)
    monkeypatch.setattr(api, "wait", wait)
    monkeypatch.setattr(streams, "CHECK_S", 0.01)
    record = SimpleNamespace(id="0123", scope="user")

    async def collect() -> list[bytes]:
        return [event async for event in streams.follow_logs(record, None, None, None)]

    return asyncio.run(asyncio.wait_for(collect(), 30))


def _ended(*_: Any, **__: Any) -> Any:
    return SimpleNamespace(sessions=[SimpleNamespace(status=Status.EXITED)], timed_out=False)


def test_a_session_that_ended_has_an_end(monkeypatch: pytest.MonkeyPatch) -> None:
    said = _events(monkeypatch, _ended)
    assert said[0].startswith(b"data: a line\n") and said[-1] == b"event: end\ndata: {}\n\n"


def test_a_session_reaped_meanwhile_has_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    def reaped(*_: Any, **__: Any) -> Any:
        raise NotFound("no session 0123")

    assert _events(monkeypatch, reaped)[-1] == b"event: end\ndata: {}\n\n"


@pytest.mark.parametrize("failure", [OrchError("the user manager did not answer"),
                                     OSError(24, "Too many open files")])
def test_a_failure_to_tell_is_an_error_and_no_end(monkeypatch: pytest.MonkeyPatch,
                                                  failure: Exception) -> None:
    # Before, an OrchError read as the end (the client stopped with lines still to
    # come), and an OSError killed the watcher: no end ever, the stream open for good.
    def failing(*_: Any, **__: Any) -> Any:
        raise failure

    said = _events(monkeypatch, failing)
    assert said[0].startswith(b"data: a line\n")
    assert said[-1].startswith(b"event: error\ndata: ") and str(failure).encode() in said[-1]
    assert not any(event.startswith(b"event: end") for event in said)
