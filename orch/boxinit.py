"""PID 1 of a fresh box: prepare /run, then become systemd.

Run by `orch box up` through unshare(1), already inside new PID, mount, UTS, IPC and
cgroup namespaces. Everything here touches only the box's private mounts: /run is a
fresh tmpfs, so the masks and tmpfiles shadows below vanish with the box.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEMD = "/lib/systemd/systemd"

# Units that would touch the kernel or host shared with the box, or do work no test
# needs (see shared/systemd-in-a-box.md). Everything enabled under /etc is masked too.
MASKED_UNITS = (
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "systemd-modules-load.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-remount-fs.service",
    "systemd-pstore.service",
    "systemd-timesyncd.service",
    "systemd-firstboot.service",
    "systemd-repart.service",
    "systemd-machine-id-commit.service",
    "systemd-random-seed.service",
    "systemd-hwdb-update.service",
    "systemd-udev-trigger.service",
    "systemd-udevd.service",
    "e2scrub_reap.service",
    "postgresql.service",
    "getty.target",
    "console-getty.service",
)

# tmpfiles rules that clean or recreate /tmp and /var/tmp: shadowed by empty files
# of the same name, or booting the box would wipe the host's /tmp.
SHADOWED_TMPFILES = ("tmp.conf", "systemd-tmp.conf", "x11.conf", "systemd-pstore.conf")


def enabled_in_etc(etc: Path = Path("/etc/systemd/system")) -> list[str]:
    """Names of units the host enabled through .wants/ links under /etc."""
    names: set[str] = set()
    for wants in etc.glob("*.wants"):
        # orch's own units (orch units install) are what a box boot should run.
        names.update(link.name for link in wants.iterdir() if not link.name.startswith("orch-"))
    return sorted(names)


def prepare_run() -> None:
    """Mount a private /run and write the runtime masks and tmpfiles shadows into it."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755,nosuid,nodev", "tmpfs", "/run"],
                   check=True)
    tmpfiles = Path("/run/tmpfiles.d")
    tmpfiles.mkdir()
    for name in SHADOWED_TMPFILES:
        (tmpfiles / name).write_text("")
    system = Path("/run/systemd/system")
    system.mkdir(parents=True)
    for name in sorted({*MASKED_UNITS, *enabled_in_etc()}):
        (system / name).symlink_to("/dev/null")


def bind_private(binds: str) -> None:
    """Bind host paths over the box's: BINDS is "SRC:DST,SRC:DST..." (ORCH_BOX_BINDS),
    e.g. a journal directory and a machine ID of the box's own. A missing DST directory
    is created (on the shared file system: empty, it hides nothing)."""
    for pair in filter(None, binds.split(",")):
        source, _, target = pair.partition(":")
        if Path(source).is_dir():
            Path(target).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", source, target], check=True)


def remount_cgroups() -> None:
    """Mount every cgroup hierarchy afresh over the host's mounts: a mount made inside
    the box's cgroup namespace shows that namespace's root (the box's own cgroup) as its
    top, where the host's mounts show the whole tree. Without this, a box booted in a
    cgroup of its own (ORCH_BOX_CGROUP) would still read and write the machine's top
    cgroups (init.scope, system.slice) through /sys/fs/cgroup, as every other box does."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        point, (fstype, _, options) = fields.split()[4], rest.split()[:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        kept = [o for o in options.split(",") if o not in ("rw", "ro")
                and not o.startswith("release_agent=")]
        # The kernel refuses a hierarchy over its own mount: out with the host's first
        # (from the box's private mount namespace only).
        subprocess.run(["umount", point], check=True)
        subprocess.run(["mount", "-t", fstype, *(["-o", ",".join(kept)] if kept else []),
                        fstype, point], check=True)


def add_units(directory: str) -> None:
    """Copy DIRECTORY's unit files and .wants/ links (ORCH_BOX_UNITS) among the box's
    runtime units, so that they start at boot and vanish with the box."""
    shutil.copytree(directory, "/run/systemd/system", symlinks=True, dirs_exist_ok=True)


def enter_root(root: str) -> None:
    """Make ROOT (another OS tree, e.g. a debootstrap) the box's /: a fresh /proc, the
    host's /sys and /dev bound in, then pivot_root so the host's tree is out of reach."""
    subprocess.run(["mount", "--bind", root, root], check=True)  # pivot_root wants a mount
    subprocess.run(["mount", "-t", "proc", "proc", f"{root}/proc"], check=True)
    for shared in ("/sys", "/dev"):
        subprocess.run(["mount", "--rbind", shared, f"{root}{shared}"], check=True)
    os.chdir(root)
    # pivot_root(".", ".") stacks the old root on the new one; detaching it leaves ROOT.
    subprocess.run(["pivot_root", ".", "."], check=True)
    subprocess.run(["umount", "-l", "."], check=True)
    os.chdir("/")


def main() -> None:
    """Prepare the box, then exec systemd as its PID 1."""
    if os.getpid() != 1:
        sys.exit("orch.boxinit must run as PID 1 of a new PID namespace")
    root = os.environ.get("ORCH_BOX_ROOT")
    if root:
        enter_root(root)
    prepare_run()
    if os.environ.get("ORCH_BOX_CGROUP"):
        remount_cgroups()
    binds = os.environ.get("ORCH_BOX_BINDS")
    if binds:
        bind_private(binds)
    units = os.environ.get("ORCH_BOX_UNITS")
    if units:
        add_units(units)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"container": "other", "PATH": path}
    os.execve(SYSTEMD, [SYSTEMD, "--system", "--unit=multi-user.target"], env)


if __name__ == "__main__":
    main()
