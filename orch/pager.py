"""Long output through a pager on a terminal, chosen as systemd's tools choose it.

$SYSTEMD_PAGER, else $PAGER, else less, else more; one of them set to "" or "cat" means
no pager. less gets LESS=$SYSTEMD_LESS, by default FRSXMK (quit if one screen, raw
colours, chop long lines, no init, prompt, quit on ^C): as in systemd's tools, the
user's own $LESS has no effect (journalctl(1), ENVIRONMENT). A pager that cannot be
started is skipped for the next, and without any the output is written directly.
And the other side of a reader: a follower learns when nobody reads any more, and a
command whose reader left ends quietly.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import IO, Any

LESS_DEFAULT = "FRSXMK"


_WELL_KNOWN = (["less"], ["more"])  # tried in turn, as systemd does


def pager_commands(env: Mapping[str, str]) -> list[list[str]]:
    """The pagers to try, in order, as ENV chooses them; none to write directly."""
    for name in ("SYSTEMD_PAGER", "PAGER"):
        value = env.get(name)
        if value is None:
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
        if not words or words == ["cat"]:
            return []
        return [words] + [p for p in _WELL_KNOWN if p != words]
    return list(_WELL_KNOWN)


def pager_env(env: Mapping[str, str]) -> dict[str, str]:
    """ENV for the pager: less's options as systemd gives them ($SYSTEMD_LESS, else
    FRSXMK, whatever $LESS says)."""
    return {**env, "LESS": env.get("SYSTEMD_LESS") or LESS_DEFAULT}


@contextmanager
def kept_open() -> Iterator[None]:
    """Meanwhile, less stays up even for a text that fits one screen (its options
    without F): for a caller that draws over the terminal as soon as the pager ends
    (`orch top`), where a short log would flash by unread."""
    before = os.environ.get("SYSTEMD_LESS")
    os.environ["SYSTEMD_LESS"] = (before or LESS_DEFAULT).replace("F", "") or "R"
    try:
        yield
    finally:
        if before is None:
            del os.environ["SYSTEMD_LESS"]
        else:
            os.environ["SYSTEMD_LESS"] = before


def _start(env: Mapping[str, str]) -> subprocess.Popen[str] | None:
    for command in pager_commands(env):
        try:
            return subprocess.Popen(command, stdin=subprocess.PIPE, env=pager_env(env),
                                    text=True, encoding=sys.stdout.encoding or "utf-8",
                                    errors="replace")
        except OSError:
            continue
    return None


@contextmanager
def paged(enabled: bool = True) -> Iterator[IO[str]]:
    """Where to write: a pager's input if ENABLED and stdout is a terminal (and a pager
    can be started), else stdout. A reader who quits the pager early ends the writing
    quietly."""
    pager = _start(os.environ) if enabled and sys.stdout.isatty() else None
    if pager is None or pager.stdin is None:
        yield sys.stdout
        return
    sys.stdout.flush()
    try:
        yield pager.stdin
        pager.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit the pager
    finally:
        with suppress(BrokenPipeError):
            pager.stdin.close()
        pager.wait()


def when_reader_leaves(stream: Any, then: Callable[[], None] | None = None) -> None:
    """Call THEN (by default: interrupt the main thread, as Ctrl-C does) once nobody
    reads STREAM any more: a pipe whose reader is gone (`| head`, or an ssh channel
    that a client closed) says so on poll, and a follower of a quiet session would
    otherwise learn it only when it writes its next line. A file or a terminal that
    stays never calls it."""
    import threading

    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        return
    if then is None:
        import _thread

        then = _thread.interrupt_main

    def watch() -> None:
        if _hung_up(fd, None):
            then()

    threading.Thread(target=watch, daemon=True, name="orch-reader-gone").start()


def _hung_up(fd: int, timeout_ms: int | None) -> bool:
    """Whether pipe FD's reader has gone, waiting up to TIMEOUT_MS (None: as long as it
    takes): no event is asked for, so only an error or a hang-up wakes the poll."""
    import select

    poller = select.poll()
    try:
        poller.register(fd, 0)
        return bool(poller.poll(timeout_ms))
    except OSError:
        return False


def write_now(text: str) -> None:
    """TEXT on stdout at once: a follower's reader waits for each line."""
    sys.stdout.write(text)
    sys.stdout.flush()


def reader_gone(stream: Any) -> bool:
    """Whether STREAM is a pipe whose reader has left (poll says so at once)."""
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, OSError):
        return False
    return _hung_up(fd, 0)


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
