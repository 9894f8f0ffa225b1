"""A manager's end of a direct D-Bus connection, faked: it accepts one client, answers
its authentication, and on demand sends signals and hangs up; the client's end is
pystemd's real sd-bus. (What sd-bus does when the manager goes is the point.)"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _padded(data: bytes, to: int) -> bytes:
    return data + b"\0" * (-len(data) % to)


def _string(data: bytes, text: str) -> bytes:
    data = _padded(data, 4)
    raw = text.encode()
    return data + struct.pack("<I", len(raw)) + raw + b"\0"


def signal(serial: int, member: str, body: str | None = None) -> bytes:
    """A signal of the manager's interface, with a string BODY or none: the kind no
    callback of orch's matches (Reloading, UnitFilesChanged)."""
    fields: list[tuple[int, str, str]] = [(1, "o", "/org/freedesktop/systemd1"),
                                          (2, "s", "org.freedesktop.systemd1.Manager"),
                                          (3, "s", member)]
    payload = b"" if body is None else _string(b"", body)
    if body is not None:
        fields.append((8, "g", "s"))
    head = b"l\x04\x01\x01" + struct.pack("<II", len(payload), serial)
    array = b""
    for code, kind, value in fields:  # each a struct, aligned to 8 in the message
        whole = _padded(head + b"\0\0\0\0" + array, 8) + bytes([code, 1]) + kind.encode() + b"\0"
        whole = whole + bytes([len(value)]) + value.encode() + b"\0" if kind == "g" \
            else _string(whole, value)
        array = whole[len(head) + 4:]
    return _padded(head + struct.pack("<I", len(array)) + array, 8) + payload


class Peer:
    """The manager's end: SEND what it sends, then hang up."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.conn: socket.socket | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.conn, _ = self.listener.accept()
        said = b""
        while b"BEGIN\r\n" not in said:
            said += self.conn.recv(4096)
        answer = b"OK " + b"0" * 32 + b"\r\n"
        if b"NEGOTIATE_UNIX_FD" in said:
            answer += b"AGREE_UNIX_FD\r\n"
        self.conn.sendall(answer)
        self.ready.set()

    def send_and_hang_up(self, messages: list[bytes]) -> None:
        assert self.conn is not None
        self.conn.sendall(b"".join(messages))
        self.conn.close()


@contextmanager
def connected(directory: Path) -> Iterator[tuple[Peer, Any]]:
    """A fake manager listening in DIRECTORY, and pystemd's bus to it, running."""
    from pystemd.dbuslib import DBusAddress

    path = directory / "private"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    peer = Peer(listener)
    bus = DBusAddress(f"unix:path={path}".encode(), peer_to_peer=True)
    bus.open()
    assert peer.ready.wait(10)
    try:
        yield peer, bus
    finally:
        listener.close()
