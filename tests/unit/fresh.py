"""Probes that must run in a fresh interpreter: what a module loads, and how, depends on
what the test process has loaded long before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def probe(code: str, prelude: str = "") -> dict[str, object]:
    """Run PRELUDE and CODE in a fresh interpreter at the checkout's root; CODE sets
    the dict `out`, which comes back."""
    script = f"import json, sys\n{prelude}out = {{}}\n{code}\nprint(json.dumps(out))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result
