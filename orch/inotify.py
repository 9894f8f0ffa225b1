"""Waiting for a directory to change (Linux inotify through libc), for `orch events
--follow`: the standard library has no inotify, and polling is what this avoids."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
# A file written, closed after writing, created or moved in.
_MASK = 0x00000002 | 0x00000008 | 0x00000100 | 0x00000080
_BUFFER = 4096


class Watch:
    """An inotify watch on a directory; wait() returns once something in it changed."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self._fd, os.fsencode(directory), _MASK) < 0:
            error = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(error, os.strerror(error), str(directory))

    def wait(self, timeout: float | None = None) -> None:
        """Block until the directory changes (then drain what inotify queued), or
        TIMEOUT seconds have passed."""
        waiting = select.poll()  # not select(): a server's descriptors pass 1,023
        waiting.register(self._fd, select.POLLIN)
        if not waiting.poll(None if timeout is None else timeout * 1000):
            return
        try:
            while os.read(self._fd, _BUFFER):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Remove the watch."""
        os.close(self._fd)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
