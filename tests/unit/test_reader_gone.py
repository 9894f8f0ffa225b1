"""A follower learns that nobody reads its output (pager.when_reader_leaves): at once
when a pipe's reader goes, never for a file or a reader that stays. And any command
whose reader has gone ends quietly (orch.cli), not as an internal error."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from orch import events, pager


def test_a_pipe_whose_reader_goes_calls_then_at_once() -> None:
    readable, writable = os.pipe()
    gone = threading.Event()
    with os.fdopen(writable, "w") as stream:
        pager.when_reader_leaves(stream, gone.set)
        assert not gone.wait(0.2)  # a reader that stays: nothing (the wait is the check)
        os.close(readable)
        assert gone.wait(10.0)


def test_a_file_never_calls_then(tmp_path: Path) -> None:
    gone = threading.Event()
    with (tmp_path / "out").open("w") as stream:
        pager.when_reader_leaves(stream, gone.set)
        stream.write("a line\n")
        assert not gone.wait(0.2)


def test_a_stream_with_no_file_descriptor_is_left_alone() -> None:
    import io

    def watchers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "orch-reader-gone"}

    before = watchers()
    pager.when_reader_leaves(io.StringIO(), lambda: None)
    assert watchers() == before  # no thread started for it


# --- a command whose reader left ends quietly (cli) ---------------------------------------

def _orch_into_a_closed_pipe(args: list[str],
                             env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """orch ARGS with stdout a pipe whose reader has already gone (`orch ... | head`,
    once head has read enough)."""
    readable, writable = os.pipe()
    os.close(readable)
    try:
        return subprocess.run([sys.executable, "-m", "orch", *args], stdout=writable,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
                              check=False, timeout=60)
    finally:
        os.close(writable)


def test_output_written_in_the_midst_of_a_command_ends_it_quietly(tmp_path: Path) -> None:
    # Some 200 KB of events: written (and failing) while the command runs, not at exit.
    for n in range(1000):
        events.append(tmp_path, events.Event(f"2026-12-06T12:00:00.{n:06d}+00:00",
                                             f"session-{n:04d}", "job", "spawned",
                                             "starting"))
    done = _orch_into_a_closed_pipe(["events", "--json"], {"ORCH_STATE_DIR": str(tmp_path)})
    assert (done.returncode, done.stderr) == (0, "")  # before: 70, "internal error: ..."


def test_output_flushed_at_exit_ends_it_quietly_with_its_status() -> None:
    done = _orch_into_a_closed_pipe(["--version"], {})
    assert (done.returncode, done.stderr) == (0, "")


def test_events_follow_ends_once_its_reader_goes_not_at_the_next_event(
        tmp_path: Path) -> None:
    # `orch --host H events -f` whose ssh client went lingered on the host until the
    # next event was written (maybe hours later), and failed only then.
    readable, writable = os.pipe()
    follower = subprocess.Popen([sys.executable, "-m", "orch", "events", "--follow"],
                                stdout=writable, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "ORCH_STATE_DIR": str(tmp_path)})
    os.close(writable)
    try:
        with os.fdopen(readable) as reader:
            events.append(tmp_path, events.Event("2026-12-06T12:00:00.000000+00:00",
                                                 "session-1", "job", "spawned", "starting"))
            assert "job: spawned" in reader.readline()  # it follows, and is read
        # Its reader has gone: it ends, with nothing more written.
        assert follower.wait(timeout=30) == 0
        assert follower.stderr is not None and follower.stderr.read() == ""
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
