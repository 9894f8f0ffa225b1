"""The unit files orch ships: boot-time recovery, a daily reap, and the web API's
socket (`orch serve`, started at the first connection), for the system manager and for
user managers.

The files under units/ in the source tree are these texts rendered for /usr/bin/orch
(a test keeps them in step); `orch units install` renders them for this installation.
"""

from __future__ import annotations

import os
from pathlib import Path

from orch import files
from orch.errors import OrchError, PermissionDenied
from orch.scope import Scope, paths_passed_on, xdg_dir
from orch.systemd import Manager

RECOVER = "orch-recover.service"
REAP = "orch-reap.service"
REAP_TIMER = "orch-reap.timer"
WEB_SOCKET = "orch-web.socket"
WEB = "orch-web.service"
ENABLED = (RECOVER, REAP_TIMER, WEB_SOCKET)
STARTED = (REAP_TIMER, WEB_SOCKET)  # at install; recovery runs at the next boot
# %t is /run for the system manager, $XDG_RUNTIME_DIR for a user's.
WEB_SOCKET_PATH = "%t/orch/web.sock"


def word(text: str, exec_line: bool = False) -> str:
    """TEXT as one word of a unit file setting: '%' doubled (systemd expands specifiers
    there), and double-quoted, with C escapes, when it holds blanks, quotes or backslashes.
    On an EXEC_LINE (ExecStart=), '$' is doubled too: systemd expands variables there."""
    text = text.replace("%", "%%")
    if exec_line:
        text = text.replace("$", "$$")
    if text and not any(c in text for c in " \t\n\"'\\;$"):
        return text  # (an empty word is quoted: bare, it would be no word at all)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _environment(state_dir: str | None, config: str | None) -> str:
    return "".join(f"Environment={word(f'{name}={value}')}\n"
                   for name, value in (("ORCH_STATE_DIR", state_dir), ("ORCH_CONFIG", config))
                   if value)


def render(scope: Scope, orch: str, state_dir: str | None = None,
           config: str | None = None) -> dict[str, str]:
    """The unit files for SCOPE, running ORCH; STATE_DIR and CONFIG (the configuration
    file: a queue's limits, for recover to start what waits) are baked in when given."""
    flag = f"--{scope}"
    wanted_by = "multi-user.target" if scope is Scope.SYSTEM else "default.target"
    env = _environment(state_dir, config)
    return {
        RECOVER: (
            "[Unit]\n"
            "Description=Recover orch sessions (reconcile records, restart persistent ones)\n"
            "Documentation=man:orch(1)\n"
            "After=basic.target\n\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"{env}"
            f"ExecStart={word(orch)} recover {flag}\n\n"
            "[Install]\n"
            f"WantedBy={wanted_by}\n"
        ),
        REAP: (
            "[Unit]\n"
            "Description=Reap ended orch sessions older than the reap age\n"
            "Documentation=man:orch(1)\n\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"{env}"
            f"ExecStart={word(orch)} reap {flag}\n"
        ),
        REAP_TIMER: (
            "[Unit]\n"
            "Description=Reap ended orch sessions daily\n"
            "Documentation=man:orch(1)\n\n"
            "[Timer]\n"
            "OnCalendar=daily\n"
            "Persistent=true\n"
            "RandomizedDelaySec=1h\n\n"
            "[Install]\n"
            "WantedBy=timers.target\n"
        ),
        WEB_SOCKET: (
            "[Unit]\n"
            "Description=orch's web API and dashboard (its socket)\n"
            "Documentation=man:orch(1)\n\n"
            "[Socket]\n"
            f"ListenStream={WEB_SOCKET_PATH}\n"
            "SocketMode=0600\n"
            "DirectoryMode=0700\n"
            "RemoveOnStop=yes\n\n"  # uninstalled, or the manager gone: no socket left
            "[Install]\n"
            "WantedBy=sockets.target\n"
        ),
        WEB: (
            "[Unit]\n"
            "Description=orch's web API and dashboard\n"
            "Documentation=man:orch(1)\n"
            f"Requires={WEB_SOCKET}\n"
            f"After={WEB_SOCKET}\n\n"
            "[Service]\n"
            f"{env}"
            f"ExecStart={word(orch)} serve {flag}\n"
            # It answers only the socket's owner (the peer's credentials), and stops
            # after a while with no connection; the socket starts it again.
            "NoNewPrivileges=yes\n"
            "WorkingDirectory=~\n"
        ),
    }


def unit_dir(scope: Scope) -> Path:
    """Where `orch units install` writes: the administrator's or the user's unit directory."""
    if scope is Scope.SYSTEM:
        return Path("/etc/systemd/system")
    return xdg_dir("XDG_CONFIG_HOME", os.path.join(Path.home(), ".config")) / "systemd" / "user"


def this_orch() -> str:
    """The absolute path of this installation's `orch` command."""
    from orch.locate import orch_bin_dir

    directory = orch_bin_dir()
    if directory is None:
        raise OrchError("cannot tell where this orch's command is installed",
                        hint="run `orch units install` through the orch command itself")
    return str(Path(directory) / "orch")


def install(scope: Scope) -> list[Path]:
    """Write the units for SCOPE (running this orch, with ORCH_STATE_DIR and ORCH_CONFIG
    if set), reload
    the manager, enable recovery and the reap timer, and start the timer."""
    directory = unit_dir(scope)
    passed = paths_passed_on()
    texts = render(scope, this_orch(), passed.get("ORCH_STATE_DIR"), passed.get("ORCH_CONFIG"))
    written = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            path = directory / name
            files.write_atomically(path, text.encode(), 0o644)
            written.append(path)
    except OSError as err:
        raise _refused(err)(f"cannot write units to {directory}: {err.strerror}") from None
    except files.WriteFailed as failed:
        raise _refused(failed.error)(f"cannot write units: {failed}") from None
    with Manager(scope) as manager:
        manager.reload()
        manager.enable(list(ENABLED))
        for unit in STARTED:
            manager.start(unit)
    return written


def uninstall(scope: Scope) -> list[Path]:
    """Stop and disable the units of SCOPE, remove their files, reload the manager."""
    directory = unit_dir(scope)
    present = [directory / name for name in render(scope, "orch") if (directory / name).exists()]
    with Manager(scope) as manager:
        for unit in (*STARTED, WEB):
            manager.stop(unit)
        if present:
            manager.disable(list(ENABLED))
        for path in present:
            try:
                path.unlink()
            except OSError as err:
                raise OrchError(f"cannot remove {path}: {err.strerror}") from None
        manager.reload()
    return present


def write_tree(root: str, orch: str = "/usr/bin/orch") -> None:
    """Render the shipped units into ROOT (system) and ROOT/user (user managers)."""
    for scope, directory in ((Scope.SYSTEM, Path(root)), (Scope.USER, Path(root) / "user")):
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in render(scope, orch).items():
            files.write_atomically(directory / name, text.encode(), 0o644)


def _refused(err: OSError) -> type[OrchError]:
    """The error to raise for ERR: a refusal (exit 4) where it was one."""
    return PermissionDenied if files.is_permission(err) else OrchError
