"""Following the journal by reading its files through libsystemd's sd-journal, as
journalctl does, but looking for new entries every POLL seconds.

journalctl --follow waits for inotify to say a journal file changed, and journald says
so only when its post-change timer fires: 250 ms after the first write, give or take
sd-event's 250 ms of slack, so a line reaches a follower about half a second after
journald wrote it. The entry itself is in the file (a shared mapping) at once: a reader
that looks again every POLL seconds has it within that. Each look is a few system
calls (the inotify wait, the files' headers), nothing while nothing comes.

Entries come as `journalctl --output json --all` gives them (orch.journal_entries), so
the rest of orch cannot tell which reader read them. Only orch.journal uses this: it
falls back to journalctl --follow where libsystemd cannot be loaded.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Sequence

from orch.errors import OrchError
from orch.journal_entries import Entry, json_value

POLL = 0.05  # seconds between looks for new entries
BATCH = 1000  # entries given at most per read: a backlog comes in pieces
_LOCAL_ONLY = 1  # SD_JOURNAL_LOCAL_ONLY: as journalctl opens the journal

_loaded: ctypes.CDLL | None = None
_failed = False


def _library() -> ctypes.CDLL | None:
    """libsystemd, with the signatures used here; None where it cannot be loaded."""
    global _loaded, _failed
    if _loaded is None and not _failed:
        try:
            lib = ctypes.CDLL("libsystemd.so.0", use_errno=True)
        except OSError:
            _failed = True
            return None
        handle = ctypes.c_void_p
        for name, args in (
                ("sd_journal_open", [ctypes.POINTER(handle), ctypes.c_int]),
                ("sd_journal_add_match", [handle, ctypes.c_char_p, ctypes.c_size_t]),
                ("sd_journal_set_data_threshold", [handle, ctypes.c_size_t]),
                ("sd_journal_seek_head", [handle]),
                ("sd_journal_seek_cursor", [handle, ctypes.c_char_p]),
                ("sd_journal_test_cursor", [handle, ctypes.c_char_p]),
                ("sd_journal_next", [handle]),
                ("sd_journal_get_cursor", [handle, ctypes.POINTER(ctypes.c_void_p)]),
                ("sd_journal_get_realtime_usec", [handle, ctypes.POINTER(ctypes.c_uint64)]),
                ("sd_journal_get_monotonic_usec", [handle, ctypes.POINTER(ctypes.c_uint64),
                                                   ctypes.c_char_p]),
                ("sd_journal_enumerate_data", [handle, ctypes.POINTER(ctypes.c_void_p),
                                               ctypes.POINTER(ctypes.c_size_t)]),
                ("sd_journal_wait", [handle, ctypes.c_uint64])):
            function = getattr(lib, name)
            function.argtypes, function.restype = args, ctypes.c_int
        lib.sd_journal_restart_data.argtypes = [handle]
        lib.sd_journal_restart_data.restype = None
        lib.sd_journal_close.argtypes = [handle]
        lib.sd_journal_close.restype = None
        libc = ctypes.CDLL(None)
        lib.free = libc.free  # type: ignore[attr-defined]  # for the cursor's string
        lib.free.argtypes, lib.free.restype = [ctypes.c_void_p], None
        _loaded = lib
    return _loaded


def available() -> bool:
    """Whether the journal can be read here without journalctl."""
    return _library() is not None


class Poller:
    """The entries matching MATCHES ("FIELD=value", as journalctl takes them) that come
    after CURSOR (from the journal's start without one), as they are written."""

    def __init__(self, matches: Sequence[str], cursor: str | None) -> None:
        lib = _library()
        if lib is None:
            raise OrchError("libsystemd cannot be loaded")
        self.lib = lib
        self.handle = ctypes.c_void_p()
        self._check(lib.sd_journal_open(ctypes.byref(self.handle), _LOCAL_ONLY), "open")
        try:
            lib.sd_journal_set_data_threshold(self.handle, 0)  # every field whole (--all)
            for match in matches:
                data = match.encode()
                self._check(lib.sd_journal_add_match(self.handle, data, len(data)), "match")
            if cursor is None:
                self._check(lib.sd_journal_seek_head(self.handle), "seek")
                self._skip: bytes | None = None
            else:
                self._check(lib.sd_journal_seek_cursor(self.handle, cursor.encode()), "seek")
                self._skip = cursor.encode()  # the cursor's own entry, if it matches
        except BaseException:
            self.close()
            raise

    def _check(self, code: int, what: str) -> int:
        if code < 0:
            raise OrchError(f"reading the journal failed ({what}: {os.strerror(-code)})")
        return code

    def read(self, timeout: float | None) -> list[Entry]:
        """The entries there are, or that come within TIMEOUT seconds (None: wait for
        some); at most BATCH at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            entries = self._next_entries()
            if entries:
                return entries
            left = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if left <= 0:
                return []
            # Back early if inotify tells of a change; the entries may be there before.
            # A signal cutting the wait short is the caller's to handle, not a failure.
            waited = self.lib.sd_journal_wait(self.handle, int(left * 1e6))
            if waited != -errno.EINTR:
                self._check(waited, "wait")

    def _next_entries(self) -> list[Entry]:
        entries: list[Entry] = []
        while len(entries) < BATCH and self._check(self.lib.sd_journal_next(self.handle),
                                                   "next") > 0:
            if self._skip is not None:
                skip, self._skip = self._skip, None
                if self.lib.sd_journal_test_cursor(self.handle, skip) > 0:
                    continue
            entries.append(self._entry())
        return entries

    def _entry(self) -> Entry:
        """The current entry, as journalctl's json gives it."""
        lib, handle = self.lib, self.handle
        entry: Entry = {}
        pointer = ctypes.c_void_p()
        if lib.sd_journal_get_cursor(handle, ctypes.byref(pointer)) >= 0 and pointer.value:
            entry["__CURSOR"] = ctypes.string_at(pointer.value).decode()
            lib.free(pointer)
        usec = ctypes.c_uint64()
        if lib.sd_journal_get_realtime_usec(handle, ctypes.byref(usec)) >= 0:
            entry["__REALTIME_TIMESTAMP"] = str(usec.value)
        if lib.sd_journal_get_monotonic_usec(handle, ctypes.byref(usec), None) >= 0:
            entry["__MONOTONIC_TIMESTAMP"] = str(usec.value)
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        repeated: set[str] = set()
        lib.sd_journal_restart_data(handle)
        while lib.sd_journal_enumerate_data(handle, ctypes.byref(data), ctypes.byref(size)) > 0:
            name, _, value = ctypes.string_at(data.value or 0, size.value).partition(b"=")
            key, shaped = name.decode(errors="replace"), json_value(value)
            if key not in entry:
                entry[key] = shaped
            elif key in repeated:
                entry[key].append(shaped)
            else:  # a field given twice: a list of its values, as journalctl gives it
                entry[key] = [entry[key], shaped]
                repeated.add(key)
        return entry

    def close(self) -> None:
        """Let go of the journal."""
        if self.handle:
            self.lib.sd_journal_close(self.handle)
            self.handle = ctypes.c_void_p()
