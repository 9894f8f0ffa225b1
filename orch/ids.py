"""Session ids: random (version 4) UUIDs in their canonical text form, the form records,
unit names and environments carry.

Made here rather than with the uuid module: importing uuid loads platform (some 2.5 ms
of every `orch spawn`), and a session id needs only 122 random bits and their layout.
"""

from __future__ import annotations

import os


def new_session_id() -> str:
    """A fresh random id, as str(uuid.uuid4()) gives it."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
