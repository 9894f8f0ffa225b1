"""Which manager a command talks to (the system's or the caller's own) and where its
records live."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path


def xdg_dir(variable: str, default: str) -> Path:
    """The directory the XDG variable names, else DEFAULT. Only an absolute path counts:
    the XDG Base Directory spec says a relative one is invalid and must be ignored."""
    value = os.environ.get(variable, "")
    return Path(value if os.path.isabs(value) else default)


class Scope(StrEnum):
    """A systemd manager: the system manager or the calling user's manager."""

    USER = "user"
    SYSTEM = "system"

    @classmethod
    def default(cls) -> Scope:
        """As systemctl does: root talks to the system manager, everyone else to their own."""
        return cls.SYSTEM if os.geteuid() == 0 else cls.USER

    @classmethod
    def choose(cls, user: bool = False, system: bool = False) -> Scope:
        """The scope that --user / --system ask for, else the default."""
        if user and system:
            from orch.errors import UsageError

            raise UsageError("--user and --system exclude each other")
        if user:
            return cls.USER
        if system:
            return cls.SYSTEM
        return cls.default()

    @classmethod
    def for_command(cls, user: bool = False, system: bool = False) -> Scope:
        """The scope for a command: --user/--system, else the session's own scope when
        called from inside one (ORCH_SCOPE), else the caller's default."""
        if user or system:
            return cls.choose(user, system)
        inside = os.environ.get("ORCH_SCOPE")
        if inside in (cls.USER, cls.SYSTEM):
            return cls(inside)
        return cls.default()

    def state_dir(self) -> Path:
        """Where this scope's state file lives for the caller (ORCH_STATE_DIR overrides)."""
        override = os.environ.get("ORCH_STATE_DIR")
        if override:
            return _absolute("ORCH_STATE_DIR", override)
        if self is Scope.SYSTEM:
            return Path("/var/lib/orch")
        return xdg_dir("XDG_STATE_HOME", os.path.join(Path.home(), ".local", "state")) / "orch"

    def config_path(self) -> Path:
        """This scope's configuration file for the caller (ORCH_CONFIG overrides both
        scopes). Here rather than in orch.config, so that a spawn with no config file
        need not load the config machinery."""
        override = os.environ.get("ORCH_CONFIG")
        if override:
            return _absolute("ORCH_CONFIG", override)
        if self is Scope.SYSTEM:
            return Path("/etc/orch/config.toml")
        return xdg_dir("XDG_CONFIG_HOME", os.path.join(Path.home(), ".config")) / "orch" / \
            "config.toml"

    def runtime_dir(self) -> Path:
        """The manager's runtime directory: /run for the system, XDG_RUNTIME_DIR for a user."""
        if self is Scope.SYSTEM:
            return Path("/run")
        return xdg_dir("XDG_RUNTIME_DIR", f"/run/user/{os.geteuid()}")


PATH_VARIABLES = ("ORCH_STATE_DIR", "ORCH_CONFIG")


def paths_passed_on() -> dict[str, str]:
    """ORCH_STATE_DIR and ORCH_CONFIG, where set (absolute, or UsageError), for what
    orch starts to read the same state and configuration: an exit hook, a timer's
    service, the units `orch units install` writes."""
    return {v: str(_absolute(v, os.environ[v])) for v in PATH_VARIABLES if os.environ.get(v)}


def _absolute(variable: str, value: str) -> Path:
    """VALUE, which VARIABLE names, as a path: an absolute one only. A relative one would
    name another place for the exit hook (run in the session's directory) and for the
    units that `orch units install` writes."""
    if not os.path.isabs(value):
        from orch.errors import UsageError

        raise UsageError(f"{variable}={value}: expected an absolute path")
    return Path(value)
