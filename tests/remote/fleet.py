"""A fleet of "remote hosts" on this one machine, for orch's remote-host tests.

Each host is a box (`orch box up`, a private systemd as PID 1 of fresh namespaces) booted
inside a network namespace of its own, joined to the machine by a veth pair: the machine
is 10.231.N.1, the host 10.231.N.2. Each host has its own machine ID, journal directory,
/var/lib/orch and /root/.local/state (host directories bound over the box's), its own
cgroup (ORCH_BOX_CGROUP: boxes booted from one process would otherwise share one tree)
and an sshd of its own, a runtime unit of the box with a host key generated here.
`fleet.ssh_config` reaches every host as root with a client key generated here, with
strict host key checking against the hosts' real keys.

Everything the fleet writes lives in a root-owned 0700 directory under
/var/lib/orch-fleet (sshd's StrictModes refuses files under a world-writable /tmp), and
down() removes it with the namespaces, links and cgroups.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch import box
from tests.waiting import wait_for

FLEET_ROOT = Path("/var/lib/orch-fleet")
SUBNET = "10.231"
SSHD_UNIT = "fleet-sshd.service"
BOOT_TIMEOUT = 90.0
POWEROFF_TIMEOUT = 60.0
SSH_TIMEOUT = 30.0
REQUIRED_COMMANDS = ("ip", "nsenter", "unshare", "ssh", "ssh-keygen", "/usr/sbin/sshd")


def orch_command() -> str:
    """The orch the boxes boot with: the one next to this interpreter, else the dev venv's."""
    beside = Path(sys.executable).parent / "orch"
    return str(beside) if beside.exists() else "/opt/orch-dev/venv/bin/orch"


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run a fleet, in words (empty when nothing)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the fleet needs root (network namespaces, boxes)")
    if box.systemd_is_pid1():
        problems.append("systemd is PID 1 here: the fleet needs `orch box`, which refuses it")
    for command in REQUIRED_COMMANDS:
        if shutil.which(command) is None:
            problems.append(f"{command} is missing (apt-get install openssh-server "
                            "openssh-client iproute2 util-linux)")
    if not Path(orch_command()).exists():
        problems.append(f"no orch at {orch_command()} (make install)")
    else:
        # An orch without ORCH_BOX_CGROUP would boot every host into the machine's own
        # cgroup tree, where their systemds fight each other and any main box.
        python = Path(orch_command()).parent / "python"
        probe = subprocess.run([str(python), "-c", "from orch import box, boxinit; "
                                "box.cgroup_dirs, boxinit.remount_cgroups"],
                               capture_output=True, check=False)
        if probe.returncode != 0:
            problems.append(f"the orch at {orch_command()} predates ORCH_BOX_CGROUP "
                            "(reinstall it: make install)")
    return problems


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise FleetError(f"{shlex.join(argv)} failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()}")
    return done


def _gone(host: Host) -> Callable[[], bool]:
    return lambda: not host.running()


def _cgroups_removed(dirs: Sequence[Path], relative: str) -> Callable[[], bool]:
    def attempt() -> bool:
        box.remove_cgroups(dirs, relative)
        return not any(d.exists() for d in dirs)
    return attempt


class FleetError(Exception):
    """The fleet could not be brought up or down."""


@dataclass
class Host:
    """One remote host: its address and network namespace, its box, and the host-side
    directories bound over its private paths."""

    name: str
    index: int
    address: str  # the host's side of its veth: 10.231.N.2
    gateway: str  # the machine's side: 10.231.N.1
    netns: str
    veth: str  # the machine-side end of the pair
    directory: Path  # everything of this host's, under the fleet's workdir
    cgroup: str  # ORCH_BOX_CGROUP: relative to the fleet process's own cgroups
    machine_id: str
    pid: int = 0  # host PID of the box's systemd (0: not booted)
    start_ticks: int = 0
    cgroups: list[Path] = field(default_factory=list)

    @property
    def box_dir(self) -> Path:
        """The box's record (ORCH_BOX_DIR)."""
        return self.directory / "box"

    @property
    def state_dir(self) -> Path:
        """Bound over /var/lib/orch, orch's system state."""
        return self.directory / "var-lib-orch"

    @property
    def user_state_dir(self) -> Path:
        """Bound over /root/.local/state (orch --user as root)."""
        return self.directory / "root-local-state"

    @property
    def journal_dir(self) -> Path:
        """Bound over /var/log/journal."""
        return self.directory / "journal"

    @property
    def machine_id_file(self) -> Path:
        """Bound over /etc/machine-id."""
        return self.directory / "machine-id"

    @property
    def ssh_dir(self) -> Path:
        """sshd_config, the host key and authorized_keys."""
        return self.directory / "ssh"

    @property
    def units_dir(self) -> Path:
        """Runtime units the box adds at boot (ORCH_BOX_UNITS)."""
        return self.directory / "units"

    @property
    def host_key(self) -> Path:
        return self.ssh_dir / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.ssh_dir / "sshd_config"

    @property
    def binds(self) -> dict[Path, str]:
        """Host-side path -> the path it hides inside the box."""
        return {self.state_dir: "/var/lib/orch",
                self.user_state_dir: "/root/.local/state",
                self.journal_dir: "/var/log/journal",
                self.machine_id_file: "/etc/machine-id"}

    def running(self) -> bool:
        """Whether the box's systemd (as booted last) is still there."""
        return self.pid > 0 and box.start_ticks(self.pid) == self.start_ticks


class Fleet:
    """COUNT remote hosts h1..hN; up() boots them, down() removes every trace."""

    def __init__(self, count: int = 3, workdir: Path | str | None = None) -> None:
        if not 1 <= count <= 250:
            raise ValueError("a fleet has 1 to 250 hosts")
        self.run_id = secrets.token_hex(3)
        self.workdir = Path(workdir) if workdir else FLEET_ROOT / self.run_id
        self.client_dir = self.workdir / "client"
        self.client_key = self.client_dir / "id_ed25519"
        self.known_hosts = self.client_dir / "known_hosts"
        self.ssh_config = self.client_dir / "ssh_config"
        self.hosts = [self._plan(n) for n in range(1, count + 1)]
        self._made_workdir = False

    def _plan(self, n: int) -> Host:
        name = f"h{n}"
        return Host(name=name, index=n, address=f"{SUBNET}.{n}.2", gateway=f"{SUBNET}.{n}.1",
                    netns=f"orch-fleet-{self.run_id}-{name}", veth=f"of{self.run_id}{name}",
                    directory=self.workdir / name,
                    cgroup=f"orch-fleet-{self.run_id}/{name}",
                    machine_id=secrets.token_hex(16))

    def host(self, name: str) -> Host:
        """The host called NAME (h1, h2, ...)."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    # -- bringing it up --------------------------------------------------------------

    def up(self) -> None:
        """Create the files, networks and boxes; return once every host's manager runs and
        its sshd accepts the fleet's key. On failure, undo what was done and raise."""
        problems = missing_prerequisites()
        if problems:
            raise FleetError("cannot bring a fleet up: " + "; ".join(problems))
        try:
            self._write_files()
            for host in self.hosts:
                self._add_network(host)
            launched = [(host, self._launch(host)) for host in self.hosts]
            for host, launch in launched:
                self._finish_boot(host, launch)
            for host in self.hosts:
                self.wait_ssh(host)
        except BaseException:
            self.down()
            raise

    def _write_files(self) -> None:
        FLEET_ROOT.mkdir(mode=0o700, exist_ok=True)
        os.chmod(FLEET_ROOT, 0o700)
        self.workdir.mkdir(mode=0o700)
        self._made_workdir = True
        self.client_dir.mkdir(mode=0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"fleet-{self.run_id}",
              "-f", str(self.client_key)])
        client_public = self.client_key.with_suffix(".pub").read_text()
        known = []
        for host in self.hosts:
            known.append(f"{host.address} {self._write_host(host, client_public)}")
        self.known_hosts.write_text("\n".join(known) + "\n")
        self.ssh_config.write_text(self._client_config())

    def _write_host(self, host: Host, client_public: str) -> str:
        """Write HOST's private directories, sshd files and runtime units; its host
        public key ("ssh-ed25519 AAAA...")."""
        host.directory.mkdir(mode=0o700)
        for directory in (host.box_dir, host.user_state_dir, host.ssh_dir, host.units_dir):
            directory.mkdir(mode=0o700)
        host.state_dir.mkdir(mode=0o755)
        host.journal_dir.mkdir()
        shutil.chown(host.journal_dir, group="systemd-journal")
        os.chmod(host.journal_dir, 0o2755)
        host.machine_id_file.write_text(host.machine_id + "\n")
        host.machine_id_file.chmod(0o444)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{host.name}-host-key",
              "-f", str(host.host_key)])
        authorized = host.ssh_dir / "authorized_keys"
        authorized.write_text(client_public)
        authorized.chmod(0o600)
        host.sshd_config.write_text(
            f"# sshd of fleet host {host.name}\n"
            "Port 22\n"
            f"ListenAddress {host.address}\n"
            f"HostKey {host.host_key}\n"
            f"AuthorizedKeysFile {authorized}\n"
            "PidFile none\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "StrictModes yes\n"
            "UsePAM no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n")
        (host.units_dir / SSHD_UNIT).write_text(
            "[Unit]\n"
            f"Description=OpenSSH server of fleet host {host.name}\n"
            "\n[Service]\n"
            f"ExecStartPre=/usr/sbin/sshd -t -f {host.sshd_config}\n"
            f"ExecStart=/usr/sbin/sshd -D -e -f {host.sshd_config}\n"
            "ExecReload=/bin/kill -HUP $MAINPID\n"
            "RuntimeDirectory=sshd\n"
            "RuntimeDirectoryMode=0755\n"
            "KillMode=process\n")
        wants = host.units_dir / "multi-user.target.wants"
        wants.mkdir()
        (wants / SSHD_UNIT).symlink_to(f"../{SSHD_UNIT}")
        kind, key = host.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"{kind} {key}"

    def _client_config(self) -> str:
        blocks = [f"Host {host.name} {host.address}\n    HostName {host.address}\n"
                  for host in self.hosts]
        common = ("Host *\n"
                  "    User root\n"
                  f"    IdentityFile {self.client_key}\n"
                  "    IdentitiesOnly yes\n"
                  f"    UserKnownHostsFile {self.known_hosts}\n"
                  "    GlobalKnownHostsFile /dev/null\n"
                  "    StrictHostKeyChecking yes\n"
                  "    CheckHostIP no\n"
                  "    BatchMode yes\n"
                  "    ConnectTimeout 5\n"
                  "    ControlMaster no\n"
                  "    LogLevel ERROR\n")
        return f"# fleet {self.run_id}\n" + "".join(blocks) + common

    def _add_network(self, host: Host) -> None:
        subnet = f"{SUBNET}.{host.index}.0/24"
        taken = _run(["ip", "-o", "-4", "addr", "show", "to", subnet]).stdout.strip()
        if taken:
            raise FleetError(f"{subnet} is already in use here (a fleet left behind?): {taken}")
        _run(["ip", "netns", "add", host.netns])
        _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
              "netns", host.netns])
        _run(["ip", "addr", "add", f"{host.gateway}/24", "dev", host.veth])
        _run(["ip", "link", "set", host.veth, "up"])
        _run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
        _run(["ip", "-n", host.netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", host.netns, "link", "set", "lo", "up"])

    def _launch(self, host: Host) -> subprocess.Popen[str]:
        """Start `orch box up` for HOST inside its network namespace (not waiting)."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("ORCH_")}
        env.update(
            ORCH_BOX_DIR=str(host.box_dir),
            ORCH_BOX_CGROUP=host.cgroup,
            ORCH_BOX_BINDS=",".join(f"{src}:{dst}" for src, dst in host.binds.items()),
            ORCH_BOX_UNITS=str(host.units_dir),
        )
        return subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{host.netns}", "--", orch_command(), "box", "up"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd="/")

    @staticmethod
    def _read_record(host: Host) -> None:
        """Take HOST's box PID and cgroups from its box record, if there is one."""
        try:
            record = json.loads((host.box_dir / "box.json").read_text())
            host.pid, host.start_ticks = int(record["pid"]), int(record["start_ticks"])
            host.cgroups = [Path(c) for c in record.get("cgroups", [])]
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def _finish_boot(self, host: Host, launch: subprocess.Popen[str]) -> None:
        try:
            out, err = launch.communicate(timeout=BOOT_TIMEOUT)
        except subprocess.TimeoutExpired:
            launch.kill()
            launch.communicate()
            self._read_record(host)  # down() must still find and stop the box
            raise FleetError(f"{host.name}: orch box up took over {BOOT_TIMEOUT:.0f}s") from None
        # Read the record even on failure: a box that booted badly must still be stopped.
        self._read_record(host)
        if launch.returncode != 0:
            console = host.box_dir / "console.log"
            tail = console.read_text(errors="replace")[-2000:] if console.exists() else ""
            raise FleetError(f"{host.name}: orch box up failed ({launch.returncode}): "
                             f"{(err or out).strip()}\n{tail}")
        if not host.cgroups:
            raise FleetError(f"{host.name}: the box did not record its cgroups")

    def boot(self, host: Host) -> None:
        """Boot HOST's box again (after power_cut), with the same private directories;
        return once its sshd answers."""
        if host.running():
            raise FleetError(f"{host.name} is running already (pid {host.pid})")
        self._finish_boot(host, self._launch(host))
        self.wait_ssh(host)

    def wait_ssh(self, host: Host, timeout: float = SSH_TIMEOUT) -> None:
        """Return once HOST's sshd lets the fleet's key in."""
        wait_for(lambda: self.ssh(host, ["true"], timeout=10).returncode == 0, timeout,
              f"{host.name}'s sshd on {host.address}", error=FleetError)

    # -- using it --------------------------------------------------------------------

    def run_in(self, host: Host, argv: Sequence[str],
               **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run ARGV inside HOST's box (all its namespaces, the network's included)."""
        if not host.running():
            raise FleetError(f"{host.name} is not running")
        options: dict[str, Any] = {"capture_output": True, "text": True, "check": False,
                                   "timeout": 60, "cwd": "/"}
        options.update(kw)
        command = ["nsenter", "-t", str(host.pid), "-p", "-m", "-u", "-i", "-C", "-n", "--",
                   *argv]
        done: subprocess.CompletedProcess[str] = subprocess.run(command, **options)
        return done

    def ssh(self, host: Host, argv: Sequence[str],
            **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run ARGV on HOST through ssh -F ssh_config (quoted for the remote shell)."""
        options: dict[str, Any] = {"capture_output": True, "text": True, "check": False,
                                   "timeout": 60}
        options.update(kw)
        command = ["ssh", "-F", str(self.ssh_config), host.name, "--", shlex.join(argv)]
        done: subprocess.CompletedProcess[str] = subprocess.run(command, **options)
        return done

    def stop_sshd(self, host: Host) -> None:
        """Stop HOST's sshd (its unit, inside the box)."""
        done = self.run_in(host, ["systemctl", "stop", SSHD_UNIT])
        if done.returncode != 0:
            raise FleetError(f"{host.name}: systemctl stop {SSHD_UNIT}: {done.stderr.strip()}")

    def start_sshd(self, host: Host) -> None:
        """Start HOST's sshd again and wait until it answers."""
        done = self.run_in(host, ["systemctl", "start", SSHD_UNIT])
        if done.returncode != 0:
            raise FleetError(f"{host.name}: systemctl start {SSHD_UNIT}: {done.stderr.strip()}")
        self.wait_ssh(host)

    def power_cut(self, host: Host) -> None:
        """SIGKILL HOST's systemd (the kernel then kills the whole box) and wait till gone."""
        if not host.running():
            raise FleetError(f"{host.name} is not running")
        os.kill(host.pid, signal.SIGKILL)
        wait_for(_gone(host), POWEROFF_TIMEOUT, f"{host.name}'s PID 1 to die",
                 error=FleetError)

    # -- taking it down ----------------------------------------------------------------

    def down(self) -> None:
        """Power every host off cleanly, then remove namespaces, links, cgroups and files.
        Safe after a partial up() and when called twice; raises after cleaning what it can
        if something would not go."""
        errors: list[str] = []
        for host in self.hosts:
            if not host.running():
                self._read_record(host)  # a box up() started but did not hear back from
        running = [host for host in self.hosts if host.running()]
        for host in running:
            # SIGRTMIN+4 asks systemd as PID 1 to power off, as `systemctl poweroff` would.
            os.kill(host.pid, signal.SIGRTMIN + 4)
        for host in running:
            try:
                wait_for(_gone(host), POWEROFF_TIMEOUT, f"{host.name} to power off",
                         error=FleetError)
            except FleetError as err:
                errors.append(str(err))
                os.kill(host.pid, signal.SIGKILL)
                wait_for(_gone(host), 10, f"{host.name} to die", error=FleetError)
        for host in self.hosts:
            dirs = host.cgroups or box.cgroup_dirs(host.cgroup)
            try:
                wait_for(_cgroups_removed(dirs, host.cgroup), 10,
                         f"{host.name}'s cgroups to go", error=FleetError)
            except FleetError as err:
                errors.append(f"{err}: {[str(d) for d in dirs if d.exists()]}")
            if Path(f"/run/netns/{host.netns}").exists():
                done = _run(["ip", "netns", "del", host.netns], check=False)
                if done.returncode != 0:
                    errors.append(f"ip netns del {host.netns}: {done.stderr.strip()}")
            if Path(f"/sys/class/net/{host.veth}").exists():
                _run(["ip", "link", "del", host.veth], check=False)
            if Path(f"/sys/class/net/{host.veth}").exists():
                errors.append(f"link {host.veth} is left")
            host.pid = host.start_ticks = 0
        if self._made_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self.workdir.exists():
                errors.append(f"{self.workdir} is left")
            self._made_workdir = False
            with contextlib.suppress(OSError):  # only when no other fleet's is in it
                FLEET_ROOT.rmdir()
        if errors:
            raise FleetError("fleet down: " + "; ".join(errors))
