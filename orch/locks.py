"""Taking an flock() that another process may hold, and saying who holds it: the
kernel's /proc/locks names the process, so that a long wait says whom it waits for."""

from __future__ import annotations

import fcntl
import os
import time

from orch.errors import StateError
from orch.files import OpenFor, describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

PROC_LOCKS = "/proc/locks"


def take(fd: int, path: Path, timeout: float, notice_after: float) -> None:
    """An exclusive flock() on FD (the file at PATH), waited for at most TIMEOUT
    seconds: StateError, naming the holder, after that. A wait beyond NOTICE_AFTER
    seconds says once whom it waits for, as a warning of the "orch" logger: a program
    using the library decides where it goes; with no logging set up (the CLI), Python
    writes it on stderr."""
    started = time.monotonic()
    delay, told = 0.001, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - started
            if waited > timeout or (waited > notice_after and not told):
                who = holder(fd) or "another orch process"
                if waited > timeout:
                    raise StateError(f"{path} stayed locked for {timeout:.0f}s by {who}") \
                        from None
                import logging

                logging.getLogger("orch").warning("orch: waiting for %s, held by %s",
                                                  path, who)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 0.02)


def open_lock(path: Path) -> int:
    """The lock file PATH, made 0600 if new (in a directory that exists), opened; OSError
    as os.open raises it."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def held(path: Path, timeout: float, notice_after: float,
         open_fd: Callable[[], int] | None = None) -> OpenFor:
    """The lock file PATH taken as take() does while a `with` body runs, and closed after
    it. OPEN_FD opens it (a caller that makes its directory first); else open_lock(),
    its failure a StateError."""
    def opened() -> int:
        try:
            return open_lock(path)
        except OSError as err:
            raise StateError(describe(err, path)) from None

    return OpenFor(open_fd or opened, lambda fd: take(fd, path, timeout, notice_after))


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
    from orch.visible import visible  # a wait's notice alone: not every command's start

    text = visible(" ".join([os.path.basename(words[0]), *words[1:]]))  # not ours to trust
    return f" ({text[:77]}...)" if len(text) > 80 else f" ({text})"
