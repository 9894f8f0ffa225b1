"""A private systemd for machines whose PID 1 is not systemd.

`orch box up` boots systemd 252 as PID 1 of fresh PID, mount, UTS, IPC and cgroup
namespaces (see orch.boxinit); the host's /tmp, sysctls and services stay untouched.
The box shares the host's file system except /run, so orch commands run inside it
through nsenter(1) see the same checkout, state files and journal.

This module is the one place that runs systemd's own programs (systemctl inside the
box, to wait for boot): the product talks to managers over D-Bus only (orch.systemd).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

from orch import jsontext
from orch.booted import systemd_is_pid1 as systemd_is_pid1  # the box's question too
from orch.errors import OrchError, PermissionDenied

BOOT_TIMEOUT = 60.0
POWEROFF_TIMEOUT = 60.0
NAMESPACES = ("-p", "-m", "-u", "-i", "-C")


def box_dir() -> Path:
    """Where the host keeps the running box's record (ORCH_BOX_DIR overrides it)."""
    return Path(os.environ.get("ORCH_BOX_DIR", "/run/orch-box"))


@dataclass(frozen=True)
class BoxInfo:
    """A running box: its systemd's host PID, that process's start time, its state, and
    the OS tree it booted ("/": the host's own, shared)."""

    pid: int
    start_ticks: int
    state: str = "unknown"
    root: str = "/"


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionDenied(
            "orch box needs root: it creates namespaces and runs systemd as their PID 1",
            hint="run it with sudo",
        )


def _read_record() -> BoxInfo | None:
    try:
        data = jsontext.loads((box_dir() / "box.json").read_text())
        info = BoxInfo(pid=int(data["pid"]), start_ticks=int(data["start_ticks"]),
                       root=str(data.get("root", "/")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # A PID from an earlier boot, or reused since, is not our box.
    if start_ticks(info.pid) != info.start_ticks:
        return None
    return info


def running_box() -> BoxInfo | None:
    """The box this host runs, or None."""
    return _read_record()


def _inside(info: BoxInfo, argv: Sequence[str], cwd: str | None = None) -> list[str]:
    # A box sharing the host's tree starts the command in the same directory, opened
    # there (--wdns): one opened out here (--wd) is reached from outside the box's
    # mounts, and each getcwd() in it then costs 0.2 ms, not 0.5 µs (a spawn calls one).
    # A box over another tree starts it at that tree's root.
    shared = info.root == "/"
    where = ([f"--wdns={cwd}"] if cwd else []) if shared else ["--root", "--wd"]
    return ["nsenter", "-t", str(info.pid), *NAMESPACES, *where, "--", *argv]


def system_state(info: BoxInfo, wait: bool = False, timeout: float = 10.0) -> str:
    """The box manager's `is-system-running` answer ('running', 'degraded', ...)."""
    argv = ["systemctl", "is-system-running", *(["--wait"] if wait else [])]
    try:
        out = subprocess.run(_inside(info, argv), capture_output=True, text=True,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "unresponsive"
    return out.stdout.strip() or "unknown"


def _cgroup_mounts() -> list[tuple[frozenset[str], Path]]:
    """The cgroup hierarchies mounted here at their roots: each one's options (its
    controllers, or "name=systemd", among them; an empty set for cgroup2) and mount
    point."""
    from orch.cgroups import hierarchies

    listed = hierarchies(Path("/proc/self/mountinfo").read_text())
    return [(options, Path(point)) for root, options, point in listed if root == "/"]


def cgroup_dirs(relative: str) -> list[Path]:
    """RELATIVE under this process's cgroup, in every hierarchy it belongs to but cpuset
    (a new cpuset cgroup has no CPUs; systemd leaves cpuset alone on cgroup v1)."""
    mounts = _cgroup_mounts()
    dirs = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        wanted = frozenset(controllers.split(",")) if controllers else frozenset()
        if "cpuset" in wanted or path.startswith("/.."):
            continue
        for options, mount in mounts:
            if (wanted <= options) if wanted else not options:
                dirs.append(mount / path.lstrip("/") / relative.strip("/"))
                break
    return dirs


def _remove_cgroup_tree(top: Path, keep_top: bool = False) -> None:
    """Remove the empty cgroups under TOP, deepest first (and TOP unless KEEP_TOP)."""
    if not top.is_dir():
        return
    subdirs = sorted((d for d in top.rglob("*") if d.is_dir()),
                     key=lambda d: len(d.parts), reverse=True)
    for cgroup in [*subdirs, *([] if keep_top else [top])]:
        with contextlib.suppress(OSError):  # still in use: left for the next boot to reuse
            cgroup.rmdir()


def remove_cgroups(dirs: Sequence[str | Path], relative: str) -> None:
    """Remove the box cgroups DIRS and then their parents that RELATIVE created."""
    depth = len(Path(relative.strip("/")).parts)
    for directory in map(Path, dirs):
        _remove_cgroup_tree(directory)
        for parent in list(directory.parents)[:depth - 1]:
            try:
                parent.rmdir()
            except OSError:
                break


def _enter_cgroups(dirs: Sequence[Path]) -> None:
    """Move the calling process into DIRS (run in the launcher before unshare --cgroup)."""
    for directory in dirs:
        (directory / "cgroup.procs").write_text(str(os.getpid()))


def _wait_booted(info: BoxInfo, deadline: float) -> str:
    """Wait until the manager answers and has finished booting; its last answer."""
    state = "unknown"
    while time.monotonic() < deadline:
        # Right after exec, systemd has no socket yet and systemctl answers nothing.
        state = system_state(info, wait=True, timeout=max(1.0, deadline - time.monotonic()))
        if state not in ("unknown", "offline", "unresponsive", ""):
            return state
        time.sleep(0.05)
    return state


def _child_of(pid: int, deadline: float) -> int:
    """The PID that unshare --fork started (the box's PID 1), once it is systemd."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    while time.monotonic() < deadline:
        try:
            kids = children.read_text().split()
        except OSError:
            kids = []
        if kids:
            child = int(kids[0])
            try:
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return child
            except OSError:
                pass
        elif not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.02)
    raise OrchError("the box's systemd did not start", hint=f"see {box_dir() / 'console.log'}")


def _os_tree(root: Path) -> str:
    """ROOT as an absolute path, once it looks like a tree systemd can boot."""
    if not root.is_dir():
        raise OrchError(f"--root {root}: not a directory")
    for name in ("proc", "sys", "dev", "run"):
        if not (root / name).is_dir():
            raise OrchError(f"--root {root}: no /{name} directory: not an OS tree")
    if not os.access(root / "lib/systemd/systemd", os.X_OK):
        raise OrchError(f"--root {root}: no /lib/systemd/systemd to boot")
    return str(root.resolve())


def up(root: Path | None = None) -> BoxInfo:
    """Boot a box (or return the one already running) and wait until its manager runs.
    ROOT boots another OS tree (a debootstrap, say) instead of sharing the host's."""
    _require_root()
    tree = _os_tree(root) if root is not None else None
    if systemd_is_pid1():
        raise OrchError("systemd is already PID 1 here: orch uses it and needs no box")
    existing = running_box()
    if existing:
        return BoxInfo(existing.pid, existing.start_ticks, system_state(existing),
                       existing.root)
    directory = box_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    console = (directory / "console.log").open("wb")
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYTHONPATH": package_root}
    if tree is not None:
        env["ORCH_BOX_ROOT"] = tree
    for name in ("ORCH_BOX_BINDS", "ORCH_BOX_UNITS", "ORCH_BOX_CGROUP"):  # for orch.boxinit
        value = os.environ.get(name)
        if value:
            env[name] = value
    # Several boxes at once each need a cgroup of their own to be their namespace's
    # root, or their systemds would share (and fight over) one tree.
    relative = os.environ.get("ORCH_BOX_CGROUP", "").strip("/")
    cgroups = cgroup_dirs(relative) if relative else []
    for cgroup in cgroups:
        cgroup.mkdir(parents=True, exist_ok=True)
        _remove_cgroup_tree(cgroup, keep_top=True)  # what a killed box left behind
    try:
        launcher = subprocess.Popen(
            ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--cgroup",
             "--mount-proc", "--propagation", "private",
             sys.executable, "-m", "orch.boxinit"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd="/",
            preexec_fn=(lambda: _enter_cgroups(cgroups)) if cgroups else None,
        )
    except OSError as err:
        raise OrchError(f"cannot run unshare(1): {err.strerror}") from err
    finally:
        console.close()
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        pid = _child_of(launcher.pid, deadline)
    except OrchError:
        launcher.wait(timeout=5)
        reason = (directory / "console.log").read_text(errors="replace").strip().splitlines()
        why = reason[-1] if reason else "unshare exited"
        raise OrchError(f"the kernel refused the box's namespaces: {why}") from None
    ticks = start_ticks(pid)
    assert ticks is not None
    info = BoxInfo(pid, ticks, root=tree or "/")
    record: dict[str, object] = {"pid": pid, "start_ticks": ticks, "root": info.root}
    if cgroups:
        record.update(cgroup=relative, cgroups=[str(c) for c in cgroups])
    (directory / "box.json").write_text(jsontext.dumps(record))
    state = _wait_booted(info, deadline)
    if state not in ("running", "degraded"):
        raise OrchError(f"the box's manager did not come up (state: {state})",
                        hint=f"see {directory / 'console.log'}; `orch box down` stops it")
    return BoxInfo(pid, ticks, state, info.root)


def down() -> bool:
    """Power the box off cleanly and wait for it to exit; False if none was running."""
    _require_root()
    info = running_box()
    if info is None:
        _remove_recorded_cgroups()
        (box_dir() / "box.json").unlink(missing_ok=True)
        return False
    # SIGRTMIN+4 asks systemd as PID 1 to power off, as `systemctl poweroff` would.
    os.kill(info.pid, signal.SIGRTMIN + 4)
    deadline = time.monotonic() + POWEROFF_TIMEOUT
    while start_ticks(info.pid) == info.start_ticks:
        if time.monotonic() > deadline:
            raise OrchError(f"the box (pid {info.pid}) did not power off within "
                            f"{POWEROFF_TIMEOUT:.0f}s")
        time.sleep(0.05)
    _remove_recorded_cgroups()
    (box_dir() / "box.json").unlink(missing_ok=True)
    return True


def _remove_recorded_cgroups() -> None:
    """Remove the cgroups the box's record names (ORCH_BOX_CGROUP), once it is gone."""
    try:
        data = jsontext.loads((box_dir() / "box.json").read_text())
        remove_cgroups([str(d) for d in data.get("cgroups", [])], str(data["cgroup"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass


def status() -> BoxInfo | None:
    """The running box with its manager's state, or None."""
    info = running_box()
    if info is None:
        return None
    return BoxInfo(info.pid, info.start_ticks, system_state(info), info.root)


def as_dict(info: BoxInfo) -> dict[str, object]:
    """The box as JSON data."""
    return asdict(info)


def exec_inside(argv: Sequence[str]) -> NoReturn:
    """Replace this process with ARGV run inside the box, in the caller's directory."""
    _require_root()
    info = running_box()
    if info is None:
        raise OrchError("no box is running", hint="start one with `orch box up`")
    command = _inside(info, argv, cwd=os.getcwd())
    os.execvp(command[0], command)
