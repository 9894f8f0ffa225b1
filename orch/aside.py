"""Work done aside: in a forked child, on another CPU, while this process goes on.

`orch ps` at a thousand sessions opens three cgroup files a session, some 20 ms of
system calls that depend on nothing else it does; a child forked before the state file
is read does them while the parent reads its records and waits for the manager's list.
A fork is only safe, and only pays, in a process with one thread and more than one CPU
to run on: anywhere else the work is done in this process at once, so that its result
tells of the same moment either way.
"""

from __future__ import annotations

import marshal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Value = Any  # what marshal carries: numbers, strings, tuples, lists, dicts, None


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _may_fork() -> bool:
    return len(os.sched_getaffinity(0)) > 1 and _single_threaded()


class Aside:
    """WORK() started in a forked child where that may be done (see the module; FORK
    decides instead if given), else done here and now. Use as a context manager:
    leaving it without asking for the result waits for the child all the same, so
    none is left behind."""

    def __init__(self, work: Callable[[], Value], *, fork: bool | None = None) -> None:
        self._work = work
        self._child: tuple[int, int] | None = None
        self._done: tuple[Value] | None = None
        if fork if fork is not None else _may_fork():
            self._child = self._start()
        else:
            self._done = (work(),)

    def _start(self) -> tuple[int, int]:
        readable, writable = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the work, its result down the pipe, and out at once
            code = 1
            try:
                os.close(readable)
                data = marshal.dumps(self._work())
                while data:
                    data = data[os.write(writable, data):]
                code = 0
            finally:
                os._exit(code)  # no atexit, no flushing of the parent's buffers
        os.close(writable)
        return pid, readable

    def result(self) -> Value:
        """What WORK() gave: from the child if one was started and ended well, else
        done here (the child's failure is not this process's)."""
        if self._done is not None:
            return self._done[0]
        data, code = self._finish()
        if code == 0:
            try:
                return marshal.loads(data)
            except (EOFError, ValueError, TypeError):
                pass
        return self._work()

    def _finish(self) -> tuple[bytes, int | None]:
        """The child's output and exit status (None: no child was started)."""
        if self._child is None:
            return b"", None
        pid, readable = self._child
        self._child = None
        chunks = []
        try:
            while chunk := os.read(readable, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(readable)
            _, status = os.waitpid(pid, 0)
        return b"".join(chunks), os.waitstatus_to_exitcode(status)

    def __enter__(self) -> Aside:
        return self

    def __exit__(self, *_: object) -> None:
        self._finish()
