"""Private copies of the CLI's dependencies that a distribution package may carry.

Debian's package ships typer, rich, FastAPI and uvicorn (and what they need) in
orch/_vendor because bookworm's are too old (packaging/README.md). Only the CLI puts
that directory on sys.path, and first, so an older system copy never shadows it: before
typer (orch.cli, orch.app), and in the commands that use the others (`orch top`,
`orch serve`), which the fast path runs without typer. `import orch` as a library never
touches sys.path.
"""

from __future__ import annotations

import sys
from pathlib import Path

VENDOR_DIR = Path(__file__).with_name("_vendor")


def activate() -> None:
    """Put orch/_vendor first on sys.path if this installation carries one."""
    where = str(VENDOR_DIR)
    if VENDOR_DIR.is_dir() and where not in sys.path:
        sys.path.insert(0, where)
