"""Files orch writes whole (state snapshots, config.toml, unit files): the one place that
writes one atomically and durably, or renames one (a log rotated), and words what went
wrong; and a descriptor held open for a `with` body (a lock, a conversation's input).

A file is written to a temp file beside it (O_EXCL, never through a symbolic link),
fsynced, and renamed over the target, so a reader sees the old file or the new one,
never a part; then the directory is fsynced, so the rename survives a power cut.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class WriteFailed(Exception):
    """Writing a file failed: ERROR, at PATH (the temp file or the target)."""

    def __init__(self, error: OSError, path: Path) -> None:
        super().__init__(describe(error, path))
        self.error = error
        self.path = path

    @property
    def permission(self) -> bool:
        """Whether the file system said no (the caller may word it as a refusal)."""
        return is_permission(self.error)


def is_permission(error: OSError) -> bool:
    """Whether ERROR is the file system refusing access."""
    return error.errno in (errno.EACCES, errno.EPERM)


def describe(error: OSError, path: Path) -> str:
    """ERROR at PATH in one line, as orch words it everywhere."""
    if is_permission(error):
        return f"{path}: permission denied"
    if error.errno == errno.ELOOP:
        return f"{path} is a symbolic link; orch does not follow it"
    return f"{path}: {error.strerror or error}"


def sync_directory(directory: Path) -> None:
    """Make what was created, renamed or removed in DIRECTORY durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rotate(current: Path, previous: Path) -> None:
    """Make CURRENT the PREVIOUS file, replacing it, in one rename (a log that starts
    anew: its next writer creates CURRENT again); durable with the directory's next
    fsync."""
    os.replace(current, previous)


def write_atomically(target: Path, data: bytes, mode: int = 0o600, *,
                     sync_dir: bool = True) -> None:
    """DATA as TARGET's contents, with MODE (whatever the umask), atomically and durably;
    SYNC_DIR false leaves the directory's fsync to a caller that has more to make durable
    with it. WriteFailed if it could not be done, and then TARGET is as it was."""
    tmp = target.parent / f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
    except OSError as err:
        raise WriteFailed(err, tmp) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        if sync_dir:
            sync_directory(target.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(err, target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class OpenFor:
    """The descriptor OPEN_FD gives (-1: none), held while a `with` body runs: PREPARE
    runs on it first, and it is closed if that fails, and as the body ends. Not
    reentrant. (A class rather than a contextmanager: see orch.errors.suppress.)"""

    def __init__(self, open_fd: Callable[[], int], prepare: Callable[[int], object]) -> None:
        self._open_fd, self._prepare = open_fd, prepare
        self._fd = -1

    def __enter__(self) -> None:
        if self._fd >= 0:
            raise RuntimeError("a descriptor held already: OpenFor is not reentrant")
        self._fd = self._open_fd()  # kept at once: __exit__ closes it, whatever follows
        if self._fd < 0:
            return
        try:
            self._prepare(self._fd)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *_: object) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
