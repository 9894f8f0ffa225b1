"""Whether systemd runs this machine, and what to do where it does not: the manager
adapter asks to word why no manager answers, the box asks before it boots one."""

from __future__ import annotations

from pathlib import Path

# Where systemd is not PID 1, orch's own box gives it a manager (orch.box).
NO_SYSTEMD_HINT = "boot a private one with `orch box up` (as root)"


def systemd_is_pid1() -> bool:
    """True where this process's PID 1 is systemd (sd_booted(3)'s test)."""
    return Path("/run/systemd/system").is_dir()
