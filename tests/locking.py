"""Another process holding a lock file, as a test needs one: an flock() taken by a child
process of the test's own, held until the test lets go."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()  # held until the test closes our input
"""


@contextmanager
def held_elsewhere(lock: Path, script: Path) -> Iterator[int]:
    """LOCK held by a child process running SCRIPT (written here), until the block ends;
    the child's pid."""
    script.write_text(HOLD)
    holder = subprocess.Popen([sys.executable, "-I", str(script), str(lock)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # it lets go, and ends
        holder.wait(10)
