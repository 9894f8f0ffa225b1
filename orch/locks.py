"""Who holds a lock: the kernel's /proc/locks names the process holding a flock() on a
file, so that a wait for the state lock can say whom it waits for."""

from __future__ import annotations

import os

from orch.visible import visible

PROC_LOCKS = "/proc/locks"


def holder(fd: int, locks: str | None = None) -> str | None:
    """The process holding a flock() on the file open as FD, as "pid N (COMMAND)";
    None if LOCKS (/proc/locks' text, read if not given) names none."""
    info = os.fstat(fd)
    # /proc/locks names a file as MAJOR:MINOR:INODE, the device numbers in hex.
    named = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    if locks is None:
        try:
            with open(PROC_LOCKS, encoding="ascii", errors="replace") as file:
                locks = file.read()
        except OSError:
            return None
    for line in locks.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"; a waiter's line has "->".
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == named \
                and fields[4].isdigit() and fields[4] != "0":
            return f"pid {fields[4]}{_command(int(fields[4]))}"
    return None


def _command(pid: int) -> str:
    """PID's command, " (orch recover)", without the interpreter that runs it; "" if
    it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            words = [w.decode(errors="replace") for w in file.read().split(b"\0") if w]
    except OSError:
        return ""
    if words and os.path.basename(words[0]).startswith("python"):
        words = words[1:]
        while words and words[0].startswith("-"):  # the interpreter's own options
            words = words[1:]
    if not words:
        return ""
    text = visible(" ".join([os.path.basename(words[0]), *words[1:]]))  # not ours to trust
    return f" ({text[:77]}...)" if len(text) > 80 else f" ({text})"
