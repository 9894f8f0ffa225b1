"""What a spawn warns of, a line each, the session spawned all the same: a user manager
that stops with its user's last login (lingering off), and a limit the cgroups here
cannot hold. `orch spawn` says them on stderr; the web API answers them in headers."""

from __future__ import annotations

import os

from orch import api

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.request import SpawnRequest
    from orch.scope import Scope


def lines(asked: SpawnRequest, scope: Scope) -> list[str]:
    """What a spawn of ASKED in SCOPE warns of, each as its own line."""
    lingering = without_lingering(asked.persistent) if str(scope) == "user" else []
    return [*lingering, *unenforced(asked, scope)]


def unenforced(asked: SpawnRequest, scope: Scope) -> list[str]:
    """A line for each limit asked that the scope's cgroups cannot hold (a user manager
    has none of its own on a hybrid cgroup v1 host, or without the controller
    delegated): systemd accepts it and does nothing."""
    said = []
    asked_for = {controller: flag for controller, flag, value in (
        ("memory", "--memory-max", asked.memory_max), ("pids", "--tasks-max", asked.tasks_max),
        ("cpu", "--cpu-quota", asked.cpu_quota)) if value is not None}
    lowest = _lowest_nice(scope) if asked.nice is not None else 0
    if asked.nice is not None and asked.nice < lowest:
        said.append(f"orch: warning: --nice {asked.nice} is not enforced: the {scope} "
                    f"manager may not raise a session's priority above nice {lowest}")
    if asked_for:
        said += [f"orch: warning: {asked_for[controller]} is not enforced: the {scope} "
                 f"manager's sessions have no {controller} cgroup controller here"
                 for controller in api.unenforced_limits(list(asked_for), scope)]
    return said


def _lowest_nice(scope: Scope) -> int:
    """The lowest nice value SCOPE's manager may give: any, as root; else what the
    caller's RLIMIT_NICE allows below nice 0 (a user manager has the user's limits)."""
    import resource

    if str(scope) == "system" or os.geteuid() == 0:
        return -20
    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    return -20 if soft == resource.RLIM_INFINITY else max(-20, min(0, 20 - soft))


def linger_warning(user: str, persistent: bool) -> str:
    """What a user-scope spawn says when USER has no lingering: logind stops a user's
    manager, and every session in it, when their last login session ends, and starts it
    at boot only for lingering users (a --persistent session's recovery runs in it)."""
    after_reboot = ("; after a reboot this --persistent session comes back only when "
                    f"{user} logs in" if persistent else "")
    return (f"orch: warning: lingering is off for {user}: the session ends when {user}'s "
            f"last login session ends{after_reboot}; keep it running with: "
            f"loginctl enable-linger {user}")


def without_lingering(persistent: bool) -> list[str]:
    """A line if logind says the caller does not linger (none if logind cannot be
    asked: no false alarm where there is no logind)."""
    import pwd

    from orch.linger import lingering

    uid = os.geteuid()
    if lingering(uid) is not False:
        return []
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return [linger_warning(user, persistent)]
