"""What reaches a terminal of text that is not orch's own (a program's output, an agent's
words and tools' output, a prompt, a name): each character a terminal would take as a
command shown escaped instead, as systemctl and journalctl show them. orch's own styling
is added afterwards, to text made visible first."""

from __future__ import annotations

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
MULTILINE = "\n\t"  # what a text of several lines keeps as it is


def visible(text: str, keep: str = "") -> str:
    """TEXT with what a terminal would not print as one character (an escape sequence, a
    newline in an argument) shown escaped: one cell, one line; KEEP's characters left as
    they are."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _ESCAPES.get(c) or _escape(ord(c))
                   for c in text)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
