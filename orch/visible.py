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
    return "".join(c if c.isprintable() or c in keep else _ESCAPES.get(c) or
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
                   for c in text)
