"""A follower learns that nobody reads its output (pager.when_reader_leaves): at once
when a pipe's reader goes, never for a file or a reader that stays."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from orch import pager


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
