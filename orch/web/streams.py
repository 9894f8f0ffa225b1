"""Server-Sent Events for `orch serve`: a session's output until it ends (each event's id
its journal cursor, to resume after), another host's output as that host's orch writes
the events, and the state changes. Each is read in a thread of its own and handed to the
event loop as it comes; a comment now and then learns whether the client is still there.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi.responses import StreamingResponse

from orch import api, jsontext, sse
from orch.errors import OrchError
from orch.scope import Scope

# How often a follower asks whether its session has ended, and sends a comment to learn
# whether its client is still there.
CHECK_S = 1.0
KEEPALIVE_S = 15.0


class EventStream(StreamingResponse):
    """Server-Sent Events, sent as they come, never cached."""

    media_type = "text/event-stream"

    def __init__(self, events: Any) -> None:
        super().__init__(events, headers={"cache-control": "no-store"})


async def _from_thread(work: Any, stop: threading.Event) -> Any:
    """Items WORK(put) puts, as they come, until it returns; STOP is set once the
    consumer goes (the client left), and WORK should end soon after."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("item", item))

    def run() -> None:
        try:
            work(put)
        except OrchError as err:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", err.message))
        except OSError as err:  # the journal or the state directory could not be read
            loop.call_soon_threadsafe(queue.put_nowait, ("error", str(err)))
        except Exception:  # a bug: said as a request's is, its trace in the server's log
            import traceback

            traceback.print_exc()
            loop.call_soon_threadsafe(queue.put_nowait,
                                      ("error", "internal error (the server's log has its trace)"))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

    threading.Thread(target=run, daemon=True, name="orch-web-follow").start()
    try:
        while True:
            try:
                kind, item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ("keepalive", None)
                continue
            yield (kind, item)
            if kind == "end":
                return
    finally:
        stop.set()


async def follow_logs(record: Any, lines: int | None, format: str | None,
                      after: str | None) -> Any:
    """RECORD's output as events (as `orch logs -f`: its last LINES, or what came AFTER a
    cursor), each with its journal cursor as id, until the session ends."""
    from orch import journal

    stop = threading.Event()
    end = journal.SessionEnd()
    scope = Scope(record.scope)
    current: list[str | None] = [None]

    def work(put: Any) -> None:
        failed: list[Exception] = []
        watcher = threading.Thread(target=_watch_end,
                                   args=(record.id, scope, end, stop, failed),
                                   daemon=True, name="orch-web-end")
        watcher.start()
        journal.follow_logs(record, lambda text: put((current[0], text)), end, lines=lines,
                            output=None if format is None else journal.LogFormat(format),
                            # as `orch logs -f`: a restart's invocation, once it shows up
                            refresh=lambda: journal.invocation_starts(
                                api.find_record(record.id, scope)),
                            after=after, mark=lambda cursor: current.__setitem__(0, cursor))
        if failed:  # whether it ended is not known: said as an error, not as its end
            raise failed[0]

    errored = False
    async for kind, item in _from_thread(work, stop):
        if kind == "item":
            cursor, text = item
            yield sse.event(text.removesuffix("\n"), cursor)
        elif kind == "error":
            errored = True
            yield sse.event(item, kind="error")
        elif kind == "end":
            # Only a session that ended has an end; after an error the stream just
            # closes, and a client that connects again (EventSource does) reads on.
            if not errored:
                yield sse.event("{}", kind="end")
        else:
            yield b": keepalive\n\n"


async def follow_on_host(name: str, host: Any, args: list[str]) -> Any:
    """`orch ARGS` (logs -f --sse) on host NAME: the events that host's orch writes,
    passed on line by line as they come (their ids its journal's cursors), then ours:
    an error if one came, and the end."""
    from orch import ssh

    stop = threading.Event()

    def work(put: Any) -> None:
        try:
            # logs -f exits as wait: 1 is a session that ended unsuccessfully.
            ssh.stream(host.address, [host.orch, *args], put, stop.is_set, done=(0, 1))
        except ssh.Unanswered as err:
            raise OrchError(f"host {name}: {err.reason}") from None  # an error event

    async for kind, item in _from_thread(work, stop):
        if kind == "item":
            yield (item + "\n").encode()
        elif kind == "keepalive":
            yield b": keepalive\n"  # a comment line: no blank line to end an event early
        else:  # after a blank line, which ends what an interrupted stream left unfinished
            yield b"\n" + sse.event(item if kind == "error" else "{}", kind=kind)


def _watch_end(session_id: str, scope: Scope, end: Any, stop: threading.Event,
               failed: list[Exception]) -> None:
    """Set END once the session has ended (with time for its last lines if it was seen
    running), at once when STOP is set (the client left), or once whether it has ended
    cannot be told (the reason in FAILED)."""
    from orch.errors import NotFound
    from orch.usecases.common import RESULT_GRACE

    seen_running = False
    while not stop.is_set():
        try:
            outcome = api.wait([session_id], scope, timeout=CHECK_S)
        except NotFound:  # reaped meanwhile: it has ended, and nothing more comes
            break
        except Exception as err:  # the manager, or the files: the stream says so
            failed.append(err)
            break
        if outcome.sessions[0].status.ended:
            break
        seen_running = True
        if not outcome.timed_out:  # an idle conversation: wait returns at once
            stop.wait(CHECK_S)
    end.set(RESULT_GRACE if seen_running and not stop.is_set() else 0.0)


async def follow_events(scope: Scope, last_event_id: str | None) -> Any:
    """SCOPE's state changes as events, from now on or after LAST_EVENT_ID (a position in
    its events log), each with its position as id."""
    from orch import events
    from orch.state import StateStore

    directory = scope.state_dir()
    StateStore(directory).prepare()  # its events file may not be there yet
    start = events.Position.parse(last_event_id or "") or events.end(directory)
    stop = threading.Event()
    offset: list[events.Position] = [start]

    def work(put: Any) -> None:
        events.follow(directory, start, lambda event: put((offset[0], event)),
                      until=stop.is_set, every=CHECK_S,
                      offsets=lambda at: offset.__setitem__(0, at))

    async for kind, item in _from_thread(work, stop):
        if kind == "item":
            at, event = item
            yield sse.event(jsontext.dumps(event.to_json()), str(at))
        elif kind == "keepalive":
            yield b": keepalive\n\n"
        elif kind == "error":
            yield sse.event(item, kind="error")
