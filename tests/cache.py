"""Where the tests keep what is slow to make and safe to reuse between runs (a
debootstrap root, the copilot CLI's unpacked runtime): ORCH_TEST_CACHE, outside the
repository; `.ci/run` and a clean-clone check point it at an empty folder."""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("ORCH_TEST_CACHE", "/var/cache/orch-tests"))
