"""Server-Sent Events, as the API's streams send them and as another host's
`orch logs -f --sse` writes them for an `orch serve` to pass on."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at import
    from collections.abc import Callable
    from typing import TextIO


def event(data: str, event_id: str | None = None, kind: str | None = None) -> bytes:
    """One Server-Sent Event: each line of DATA a data: field."""
    head = (f"id: {event_id}\n" if event_id else "") + (f"event: {kind}\n" if kind else "")
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return (head + body + "\n").encode()


def writer(stream: TextIO) -> tuple[Callable[[str], None], Callable[[str | None], None]]:
    """A writer of each text to STREAM, at once, as an event whose id is the journal
    cursor of its line; and the mark() that hears that cursor before the text comes."""
    cursor: list[str | None] = [None]

    def write(text: str) -> None:
        stream.buffer.write(event(text.removesuffix("\n"), cursor[0]))
        stream.flush()

    return write, lambda at: cursor.__setitem__(0, at)
