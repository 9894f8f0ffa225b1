"""A fresh Debian bookworm root for the package test, made by debootstrap and cached.

debootstrap takes about a minute and a few hundred MB of downloads, so a finished root
is kept under ORCH_TEST_CACHE (default /var/cache/orch-tests, outside the repo) and
each test run boots a copy of it. The cache's name carries everything that shapes it
(suite, mirror, packages), so a change to any of them makes a new one; a root is only
renamed into the cache once debootstrap has finished.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("ORCH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("ORCH_TEST_CACHE", "/var/cache/orch-tests"))
# What a bookworm server running orch has: systemd as init, logind (for lingering user
# managers) and the Debian packages orch's own package depends on, so that installing
# the .deb needs no network.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "libpam-systemd", "python3", "libsystemd0",
            "python3-psutil", "python3-pystemd", "python3-tomli-w")
DEBOOTSTRAP_TIMEOUT = 900.0


def cached_root() -> Path:
    """The cached debootstrap root, made first if it is missing."""
    key = hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    final = CACHE / f"{SUITE}-minbase-{key}"
    if final.is_dir():
        return final
    CACHE.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one debootstrap at a time; others reuse it
        if final.is_dir():
            return final
        work = Path(tempfile.mkdtemp(dir=CACHE, prefix=".debootstrap-"))
        try:
            done = subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                 SUITE, str(work), MIRROR],
                capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False)
            if done.returncode != 0:
                tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
                raise RuntimeError("debootstrap failed: " + " | ".join(tail))
            os.rename(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work)
    return final


def fresh_copy(destination: Path) -> Path:
    """A private copy of the cached root at DESTINATION (the cache stays pristine)."""
    source = cached_root()
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(destination)], check=True)
    return destination
