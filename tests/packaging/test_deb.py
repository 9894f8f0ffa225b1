"""The Debian package, built, checked, installed into a fresh bookworm root and booted.

`make deb` builds the .deb (lintian runs as part of it), from the checkout and from a
copy of its files that is no git repository (a release tarball) alike; a copy of a
cached debootstrap root (tests/packaging/debroot.py) gets the package and boots with a
real systemd as PID 1 (`orch box up --root`), in a cgroup of its own beside any other
box. The tests then run in order, as one story: the boot itself, boot recovery, a
user's sessions, a persistent session across a reboot, and purge.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from orch import __version__
from tests.packaging import debroot
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.packaging]

REPO = Path(__file__).resolve().parents[2]
DEV_ORCH = str(Path(sys.executable).parent / "orch")
USER = "alice"
WORK = Path("/var/tmp/orch-deb-test")
BOOT_TIMEOUT = 30.0  # a boot, with recovery, takes about a second here


class BootedRoot:
    """A Debian root booted in its own box; commands run inside it through nsenter."""

    def __init__(self, root: Path, box_dir: Path, cgroup: str) -> None:
        self.root = root
        # Its own record and cgroup: the host-root box of the integration tests (or of
        # whoever else uses this machine) stays up, and the two systemds keep apart.
        self.env = {**os.environ, "ORCH_BOX_DIR": str(box_dir), "ORCH_BOX_CGROUP": cgroup}

    def _box(self, *args: str) -> None:
        done = subprocess.run([DEV_ORCH, "box", *args], capture_output=True, text=True,
                              env=self.env, timeout=120, check=False)
        assert done.returncode == 0, f"orch box {' '.join(args)}: {done.stderr}"

    def boot(self) -> None:
        self._box("up", "--root", str(self.root))

    def power_off(self) -> None:
        self._box("down")

    def run(self, argv: Sequence[str], user: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """ARGV inside the root, as root or as USER (with their runtime dir)."""
        if user is not None:
            uid = self.uid(user)
            argv = ["runuser", "-u", user, "--", "env", f"XDG_RUNTIME_DIR=/run/user/{uid}",
                    f"HOME=/home/{user}", *argv]
        return subprocess.run([DEV_ORCH, "box", "exec", "--", *argv], capture_output=True,
                              text=True, env=self.env, cwd="/", timeout=timeout, check=False)

    def ok(self, argv: Sequence[str], user: str | None = None) -> str:
        done = self.run(argv, user)
        assert done.returncode == 0, f"{' '.join(argv)} (as {user or 'root'}): {done.stderr}"
        assert "Traceback" not in done.stderr
        return done.stdout

    def uid(self, user: str) -> int:
        for line in (self.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2])
        raise KeyError(user)

    def unit(self, unit: str, *props: str, user: str | None = None) -> dict[str, str]:
        """Properties of UNIT in the root's system manager (or USER's manager)."""
        scope = ["--user"] if user else []
        out = self.ok(["systemctl", *scope, "show", unit, *(f"-p{p}" for p in props)], user)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def orch_json(self, *args: str, user: str | None = None) -> Any:
        return json.loads(self.ok(["orch", *args, "--json"], user))


def make_deb(tree: Path) -> Path:
    """The package `make deb` builds in TREE (with lintian's verdict part of the build)."""
    done = subprocess.run(["make", "deb"], cwd=tree, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert not re.search(r"^E: ", done.stdout + done.stderr, re.M)
    built = sorted((tree / "dist").glob(f"orch_{__version__}_*.deb"))
    assert len(built) == 1, built
    return built[0]


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """What a release tarball of the checkout holds (on CI's fresh clone, HEAD's files),
    unpacked where there is no git repository; None if the checkout is none either. It
    is taken just before `deb` copies the checkout, so that both build the same files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=REPO, capture_output=True, check=False)
    if listed.returncode != 0:
        return None
    tree = tmp_path_factory.mktemp("tarball") / f"orch-{__version__}"
    tree.mkdir()
    archive = subprocess.run(["tar", "-c", "--null", "-T", "-"], cwd=REPO,
                             input=listed.stdout, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


@pytest.fixture(scope="module")
def deb(tarball: Path | None) -> Path:
    """The package `make deb` builds from the checkout."""
    if os.geteuid() != 0:
        pytest.skip("building and booting the package needs root")
    return make_deb(REPO)


@pytest.fixture(scope="module")
def booted(deb: Path) -> Iterator[BootedRoot]:
    """A fresh copy of the cached bookworm root, booted, with the package installed."""
    work = WORK / uuid.uuid4().hex[:12]
    work.mkdir(parents=True)
    machine = BootedRoot(debroot.fresh_copy(work / "root"), work / "box",
                         cgroup=f"orch-deb-test-{work.name}")
    try:
        shutil.copy(deb, machine.root / "root" / "orch.deb")
        machine.boot()
        machine.ok(["dpkg", "-i", "/root/orch.deb"])
        yield machine
    finally:
        subprocess.run([DEV_ORCH, "box", "down"], env=machine.env, capture_output=True,
                       timeout=120, check=False)
        shutil.rmtree(work)


def test_package_carries_units_completion_man_page_and_docs(deb: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    expected = {
        "/usr/bin/orch",
        "/usr/lib/python3/dist-packages/orch/cli.py",
        "/usr/lib/python3/dist-packages/orch/_vendor/typer/__init__.py",
        "/usr/lib/python3/dist-packages/orch/_vendor/fastapi/__init__.py",
        "/usr/lib/python3/dist-packages/orch/_vendor/uvicorn/__init__.py",
        "/usr/lib/python3/dist-packages/orch/web/dashboard.html",
        "/usr/share/man/man1/orch.1.gz",
        "/usr/share/bash-completion/completions/orch",
        "/usr/share/zsh/vendor-completions/_orch",
        "/usr/share/fish/vendor_completions.d/orch.fish",
        "/usr/share/doc/orch/copyright",
        "/usr/lib/systemd/system-preset/80-orch.preset",
        "/usr/lib/systemd/user-preset/80-orch.preset",
    }
    for scope in ("system", "user"):
        for unit in ("orch-recover.service", "orch-reap.service", "orch-reap.timer",
                     "orch-web.socket", "orch-web.service"):
            expected.add(f"/usr/lib/systemd/{scope}/{unit}")
    assert expected <= paths, sorted(expected - paths)
    assert any(p.startswith("/usr/share/doc/orch/README.md") for p in paths)
    assert not any(p.startswith("/lib/") for p in paths)  # units live under /usr/lib only

    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True,
                            text=True, check=True).stdout
    for needed in ("python3", "libsystemd0", "python3-pystemd", "python3-psutil",
                   "python3-tomli-w"):
        assert re.search(rf"(^|, ){re.escape(needed)}( |,|$)", fields.strip()), fields
    assert "python3-typer" not in fields  # bookworm's is too old: typer is vendored


def dpkg_contents(deb: Path) -> list[tuple[str, str, str, str]]:
    """DEB's files: mode, owner, size and name (a link's with its target)."""
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    entries = []
    for line in listing.splitlines():
        mode, owner, size, _date, _time, name = line.split(maxsplit=5)
        entries.append((mode, owner, size, name))
    return entries


def test_a_source_tree_without_git_builds_the_same_package(deb: Path,
                                                           tarball: Path | None) -> None:
    if tarball is None:
        pytest.skip("the tree under test is no git checkout: nothing to compare with")
    tree = tarball
    # With what a developer's tree holds besides its source planted in it.
    assert subprocess.run(["git", "rev-parse", "--git-dir"], cwd=tree,
                          capture_output=True, check=False).returncode != 0
    planted = [".venv/pyvenv.cfg", "env-3.11/pyvenv.cfg", "orch/__pycache__/planted.pyc",
               "orch.egg-info/planted", "orch/_vendor/planted.py", ".mypy_cache/planted",
               "build/planted", "tests/planted.pyc"]
    for name in planted:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("not source\n")

    from_tarball = make_deb(tree)

    copied = tree / "build" / "deb" / f"orch-{__version__}"
    assert (copied / "orch" / "cli.py").is_file() and (copied / "debian" / "rules").is_file()
    assert [name for name in planted if (copied / name).exists()] == []
    assert dpkg_contents(from_tarball) == dpkg_contents(deb)
    fields = [subprocess.run(["dpkg-deb", "-f", str(built)], capture_output=True, text=True,
                             check=True).stdout for built in (from_tarball, deb)]
    assert fields[0] == fields[1]


def test_the_root_boots_with_a_real_roots_mode_and_its_manager_runs(
        booted: BootedRoot) -> None:
    # A root left 0700 (mkdtemp's mode) kept dbus-daemon, as messagebus, from reading
    # its configuration: systemd's D-Bus activation timed out and the box never ran.
    assert stat.S_IMODE(debroot.cached_root().stat().st_mode) == debroot.ROOT_MODE
    assert booted.ok(["stat", "-c", "%a %U", "/"]).split() == ["755", "root"]
    assert booted.ok(["systemctl", "is-active", "dbus.service"]).strip() == "active"
    assert booted.ok(["busctl", "--system", "call", "org.freedesktop.systemd1",
                      "/org/freedesktop/systemd1", "org.freedesktop.DBus.Peer", "Ping"]) \
        .strip() == ""
    assert booted.run(["systemctl", "is-system-running"]).stdout.strip() == "running"


def test_installed_orch_runs_on_debians_python_and_libraries(booted: BootedRoot) -> None:
    assert booted.ok(["orch", "--version"]).strip() == f"orch {__version__}"
    # What the CLI loads: bookworm's pystemd and psutil, not vendored copies.
    loaded = booted.ok(["python3", "-c", "import orch.cli, pystemd, psutil; "
                        "print(pystemd.__version__, pystemd.__file__, psutil.__version__)"])
    pystemd_version, pystemd_file, psutil_version = loaded.split()
    assert pystemd_version.startswith("0.11.") and psutil_version.startswith("5.9."), loaded
    assert pystemd_file.startswith("/usr/lib/python3/dist-packages/pystemd/"), loaded
    assert booted.ok(["systemctl", "is-enabled", "orch-recover.service",
                      "orch-reap.timer"]).split() == ["enabled", "enabled"]
    assert booted.ok(["systemctl", "--global", "is-enabled", "orch-recover.service",
                      "orch-reap.timer"]).split() == ["enabled", "enabled"]
    assert booted.ok(["systemctl", "is-active", "orch-reap.timer"]).strip() == "active"
    # The web API's socket listens (root's alone); a connection starts `orch serve`,
    # which runs on the vendored FastAPI and uvicorn.
    assert booted.ok(["systemctl", "is-active", "orch-web.socket"]).strip() == "active"
    answer = booted.ok(["python3", "-c", UNIX_GET, "/run/orch/web.sock", "/api/sessions"])
    assert answer.splitlines()[0] == "200" and json.loads(answer.split("\n", 1)[1]) == []
    top = booted.run(["orch", "top"])  # the vendored rich loads; no terminal here
    assert top.returncode == 2 and "needs a terminal" in top.stderr, top.stderr
    unit = booted.unit("orch-recover.service", "ExecStart", "FragmentPath")
    # bookworm's systemd names it by /lib, which merged /usr makes the same file.
    shipped = "usr/lib/systemd/system/orch-recover.service"
    loaded_from = booted.root / unit["FragmentPath"].lstrip("/")
    assert loaded_from.resolve() == (booted.root / shipped).resolve(), unit
    assert "path=/usr/bin/orch" in unit["ExecStart"]


# GET PATH on the Unix socket SOCKET: its status, then its body.
UNIX_GET = """
import http.client, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sys.argv[1])
connection = Unix("localhost", timeout=60)
connection.request("GET", sys.argv[2])
response = connection.getresponse()
print(response.status)
print(response.read().decode())
"""


def test_recover_runs_at_boot_for_the_system_and_lingering_users(
        booted: BootedRoot) -> None:
    booted.ok(["useradd", "--create-home", "--shell", "/bin/sh", USER])
    booted.ok(["loginctl", "enable-linger", USER])
    booted.power_off()
    booted.boot()
    for user in (None, USER):
        if user:
            wait_for(lambda: booted.run(["systemctl", "is-active",
                                         f"user@{booted.uid(USER)}.service"]).stdout.strip()
                     == "active", timeout=BOOT_TIMEOUT, what=f"{USER}'s manager at boot")

        def recovered(user: str | None = user) -> dict[str, str] | None:
            props = booted.unit("orch-recover.service", "Result", "ExecMainStatus",
                                "ExecMainExitTimestampMonotonic", user=user)
            return props if props["ExecMainExitTimestampMonotonic"] not in ("", "0") else None

        props = wait_for(recovered, timeout=BOOT_TIMEOUT,
                         what=f"orch-recover of {user or 'the system'}")
        assert props["Result"] == "success" and props["ExecMainStatus"] == "0", props


def test_a_user_spawns_lists_reads_logs_and_waits(booted: BootedRoot) -> None:
    # Settings go through bookworm's tomli-w 1.0 and back through tomllib.
    booted.ok(["orch", "config", "set", "--user", "spawn.memory_max", "2G"], USER)
    assert booted.ok(["orch", "config", "get", "--user", "spawn.memory_max"], USER) == "2G\n"
    sid = booted.ok(["orch", "spawn", "--name", "greeter", "--",
                     "sh", "-c", "echo hello from bookworm; echo second line"], USER).strip()
    assert booted.run(["orch", "wait", sid], USER).returncode == 0
    listed = booted.orch_json("ps", user=USER)
    assert [s["id"] for s in listed if s["name"] == "greeter"] == [sid]
    assert booted.ok(["orch", "logs", "-o", "cat", sid], USER).splitlines() == [
        "hello from bookworm", "second line"]
    shown = booted.orch_json("show", sid, user=USER)
    assert shown["status"] == "exited" and shown["scope"] == "user"
    # Another user (root, on the system manager) does not see it.
    assert sid not in {s["id"] for s in booted.orch_json("ps")}


def test_persistent_sessions_come_back_after_a_reboot(booted: BootedRoot) -> None:
    user_sid = booted.ok(["orch", "spawn", "--persistent", "--name", "keeper", "--",
                          "sleep", "infinity"], USER).strip()
    system_sid = booted.ok(["orch", "spawn", "--persistent", "--name", "keeper", "--",
                            "sleep", "infinity"]).strip()
    before = {sid: booted.orch_json("show", sid, user=user)
              for sid, user in ((user_sid, USER), (system_sid, None))}
    assert all(s["status"] == "running" for s in before.values()), before

    booted.power_off()
    booted.boot()
    for sid, user in ((user_sid, USER), (system_sid, None)):
        def back(sid: str = sid, user: str | None = user) -> dict[str, Any] | None:
            done = booted.run(["orch", "show", "--json", sid], user)
            shown: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
            return shown if shown.get("status") == "running" and shown.get("restarts") else None

        shown = wait_for(back, timeout=BOOT_TIMEOUT,
                         what=f"persistent session {sid} after the reboot")
        assert shown["restarts"] == 1, shown
        assert shown["invocation_id"] != before[sid]["invocation_id"], shown


def test_purge_leaves_no_units_or_state(booted: BootedRoot) -> None:
    running = booted.ok(["orch", "spawn", "--", "sleep", "infinity"]).strip()
    assert booted.orch_json("show", running)["status"] == "running"
    assert (booted.root / "var/lib/orch").is_dir()
    # The user's sessions are the user's: they end them (purge never reaches homes).
    for session in booted.orch_json("ps", user=USER):
        if session["status"] == "running":
            booted.ok(["orch", "stop", session["id"]], USER)

    booted.ok(["dpkg", "--purge", "orch"])

    assert booted.run(["dpkg", "-s", "orch"]).returncode != 0
    leftovers = booted.ok(["sh", "-c", "find /usr /etc /var/lib/systemd /run/systemd/system "
                           "-name '*orch*' 2>/dev/null; ls -d /var/lib/orch /etc/orch "
                           "/run/orch 2>/dev/null; true"])
    assert leftovers.split() == []
    # The system session running at purge was stopped, and its unit is gone.
    units = booted.ok(["systemctl", "list-units", "--all", "--no-legend", "orch-*"])
    assert units.strip() == ""
    user_units = booted.ok(["systemctl", "--user", "list-units", "--all", "--no-legend",
                            "orch-*"], USER)
    assert user_units.strip() == ""
