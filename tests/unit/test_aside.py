"""Work done aside, in a forked child: its result comes back as the work gave it, a
child that fails costs nothing but the time, and no child is left behind."""

from __future__ import annotations

import os
import threading

from orch import aside
from orch.aside import Aside


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child any more: waited for already
    return False


def test_a_forked_childs_result_comes_back_as_marshal_carries_it() -> None:
    parent = os.getpid()
    work = Aside(lambda: {"pid": os.getpid(), "values": (1, None, "x"), "big": [7] * 100_000},
                 fork=True)
    result = work.result()
    assert result["pid"] != parent  # done in the child
    assert result["values"] == (1, None, "x") and result["big"] == [7] * 100_000


def test_a_child_that_fails_leaves_the_work_to_this_process() -> None:
    parent = os.getpid()

    def work() -> int:
        if os.getpid() != parent:
            raise RuntimeError("the child's trouble")
        return 42

    assert Aside(work, fork=True).result() == 42


def test_without_a_fork_the_work_is_done_at_once() -> None:
    seen: list[int] = []
    work = Aside(lambda: seen.append(os.getpid()) or len(seen), fork=False)
    assert seen == [os.getpid()]  # before anyone asks
    assert work.result() == 1 and work.result() == 1 and len(seen) == 1


def test_leaving_without_the_result_waits_for_the_child() -> None:
    with Aside(lambda: 1, fork=True) as work:
        child = work._child
        assert child is not None
    assert _reaped(child[0])


def test_no_fork_while_another_thread_runs() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not aside._may_fork()
    finally:
        release.set()
        thread.join()
