"""Unit names for sessions: readable, valid, unique, and escaped by systemd's rules."""

from __future__ import annotations

PREFIX = "orch-"
SUFFIX = ".service"
MAX_UNIT_NAME = 255  # UNIT_NAME_MAX in systemd, including the suffix
SHORT_ID_LEN = 8

# Bytes systemd keeps as they are in a unit name; every other byte becomes \xNN
# (systemd-escape's rule). '-' is valid in a service name, and keeping it keeps names
# readable ("orch-code-reviewer-1a2b3c4d.service").
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_.-")
_HEX = frozenset("0123456789abcdef")


def escape_label(label: str) -> str:
    """Escape LABEL into unit-name characters, byte by byte, as systemd-escape does."""
    out: list[str] = []
    for index, byte in enumerate(label.encode("utf-8")):
        if byte in _KEEP and not (index == 0 and byte == 0x2E):  # no leading '.'
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def unescape_label(escaped: str) -> str:
    """ESCAPED (escape_label's) back into the label: each \\xNN a byte again, bytes that
    are not UTF-8 shown as U+FFFD."""
    raw = bytearray()
    index = 0
    while index < len(escaped):
        if escaped.startswith("\\x", index) and index + 4 <= len(escaped):
            try:
                raw.append(int(escaped[index + 2:index + 4], 16))
                index += 4
                continue
            except ValueError:
                pass
        raw += escaped[index].encode()
        index += 1
    return raw.decode("utf-8", "replace")


def label_of(unit: str) -> str:
    """The label UNIT (orch-<label>-<short id>.service) was named for, unescaped."""
    stem = unit.removeprefix(PREFIX).removesuffix(SUFFIX)
    label = stem.rsplit("-", 1)[0] if "-" in stem else stem
    return unescape_label(label) or "session"


def _fit(escaped: str, room: int) -> str:
    """Cut ESCAPED to ROOM characters without splitting a \\xNN sequence."""
    if len(escaped) <= room:
        return escaped
    cut = escaped[:room]
    tail = cut.rfind("\\")
    if tail != -1 and len(cut) - tail < 4:
        cut = cut[:tail]
    return cut


def unit_name(label: str, session_id: str) -> str:
    """The unit carrying a session: orch-<label>-<first 8 hex digits of its id>.service."""
    short = session_id.replace("-", "")[:SHORT_ID_LEN]
    room = MAX_UNIT_NAME - len(PREFIX) - len(SUFFIX) - len(short) - 1
    escaped = _fit(escape_label(label), room) or "session"
    return f"{PREFIX}{escaped}-{short}{SUFFIX}"


def is_orch_unit(name: str) -> bool:
    """True for unit names orch builds: PREFIX, a label, "-", a short id, SUFFIX."""
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)) or "\n" in name:
        return False
    middle = name[len(PREFIX):-len(SUFFIX)]  # the label (maybe empty), "-", the short id
    return len(middle) > SHORT_ID_LEN and middle[-SHORT_ID_LEN - 1] == "-" \
        and all(c in _HEX for c in middle[-SHORT_ID_LEN:])


def syslog_identifier(unit: str) -> str:
    """The identifier the session's output carries in the journal: its unit name's stem.

    journald may miss _SYSTEMD_UNIT on the lines of a process that exits at once, but
    the stream header's SYSLOG_IDENTIFIER is always there (shared/systemd-in-a-box.md).
    """
    return unit.removesuffix(SUFFIX)


def object_path(unit: str) -> bytes:
    """The manager's D-Bus object path for UNIT (sd_bus_path_encode's escaping)."""
    out = bytearray(b"/org/freedesktop/systemd1/unit/")
    for index, byte in enumerate(unit.encode("utf-8")):
        if (0x30 <= byte <= 0x39 and index > 0) or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A:
            out.append(byte)
        else:
            out += f"_{byte:02x}".encode()
    return bytes(out)
