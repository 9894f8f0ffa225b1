"""The fleet itself: hosts that are apart from each other and from the machine, reached
by ssh with checked host keys, that lose sshd or power and come back."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from orch import box
from tests.remote.fleet import SSHD_UNIT, Fleet, Host

pytestmark = pytest.mark.integration

HEALTHY = ("running", "degraded")


def _others(fleet: Fleet, host: Host) -> list[Host]:
    return [other for other in fleet.hosts if other is not host]


def _main_box_run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    """ARGV run inside the machine's main box (/run/orch-box), or None if none runs."""
    main = box.running_box()
    if main is None:
        return None
    return subprocess.run(["nsenter", "-t", str(main.pid), *box.NAMESPACES, "--", *argv],
                          capture_output=True, text=True, check=False, timeout=60)


def test_the_fleet_has_at_least_two_hosts(fleet: Fleet) -> None:
    assert len(fleet.hosts) >= 2, "set ORCH_FLEET_SIZE to 2 or more"
    assert len({h.address for h in fleet.hosts}) == len(fleet.hosts)


def test_each_host_answers_ssh_with_a_machine_id_of_its_own(fleet: Fleet) -> None:
    ids = {}
    for host in fleet.hosts:
        done = subprocess.run(["ssh", "-F", str(fleet.ssh_config), f"root@{host.address}",
                               "cat", "/etc/machine-id"],
                              capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
        ids[host.name] = done.stdout.strip()
        assert ids[host.name] == host.machine_id
    assert len(set(ids.values())) == len(fleet.hosts)
    assert Path("/etc/machine-id").read_text().strip() not in ids.values()


def test_each_host_runs_a_manager_of_its_own_in_its_own_cgroup(fleet: Fleet) -> None:
    for host in fleet.hosts:
        assert fleet.ssh(host, ["systemctl", "is-system-running"]).stdout.strip() in HEALTHY
        assert fleet.run_in(host, ["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
        # Its namespace's root is the host's own cgroup, in every hierarchy systemd uses.
        cgroups = dict(line.split(":", 2)[1:] for line in
                       Path(f"/proc/{host.pid}/cgroup").read_text().splitlines())
        for hierarchy in ("name=systemd", "", "memory", "pids", "devices"):
            if hierarchy in cgroups:
                assert cgroups[hierarchy].endswith(f"/{host.cgroup}/init.scope"), cgroups
        # Its network is its own: its address, loopback, and nothing of the machine's.
        addresses = fleet.run_in(host, ["ip", "-o", "-4", "addr", "show"]).stdout
        assert f"{host.address}/24" in addresses and "127.0.0.1/8" in addresses
        assert all(f" {other.address}/" not in addresses for other in _others(fleet, host))


def test_a_unit_started_on_one_host_is_seen_by_no_other_manager(fleet: Fleet) -> None:
    h1 = fleet.hosts[0]
    unit = f"fleet-probe-{uuid.uuid4().hex[:8]}.service"
    main_before = _main_box_run(["systemctl", "is-system-running"])
    started = fleet.run_in(h1, ["systemd-run", f"--unit={unit}", "sleep", "infinity"])
    assert started.returncode == 0, started.stderr
    try:
        assert fleet.run_in(h1, ["systemctl", "is-active", unit]).stdout.strip() == "active"
        for other in _others(fleet, h1):
            seen = fleet.run_in(other, ["systemctl", "is-active", unit])
            assert seen.stdout.strip() == "inactive", (other.name, seen.stdout)
        in_main = _main_box_run(["systemctl", "is-active", unit])
        if in_main is not None:
            assert in_main.stdout.strip() == "inactive"
        # The unit's cgroup is under h1's own tree.
        mine = [d / "system.slice" / unit for d in h1.cgroups if "systemd" in d.parts]
        assert mine and all(d.is_dir() for d in mine), mine
    finally:
        fleet.run_in(h1, ["systemctl", "stop", unit])
    main_after = _main_box_run(["systemctl", "is-system-running"])
    if main_before is not None and main_after is not None:
        assert main_after.stdout.strip() == main_before.stdout.strip()


def test_var_lib_orch_is_private_to_each_host(fleet: Fleet) -> None:
    h1, h2 = fleet.hosts[:2]
    name = f"probe-{uuid.uuid4().hex}"
    written = fleet.ssh(h1, ["sh", "-c", f"echo from-h1 > /var/lib/orch/{name}"])
    assert written.returncode == 0, written.stderr
    assert fleet.ssh(h1, ["cat", f"/var/lib/orch/{name}"]).stdout == "from-h1\n"
    assert (h1.state_dir / name).read_text() == "from-h1\n"  # where it really lives
    assert fleet.ssh(h2, ["test", "-e", f"/var/lib/orch/{name}"]).returncode == 1
    assert fleet.run_in(h2, ["test", "-e", f"/var/lib/orch/{name}"]).returncode == 1
    assert not (Path("/var/lib/orch") / name).exists()


def test_ssh_checks_host_keys(fleet: Fleet, tmp_path: Path) -> None:
    h1 = fleet.hosts[0]
    lines = fleet.known_hosts.read_text().splitlines()
    without_h1 = tmp_path / "known_hosts"
    without_h1.write_text("".join(f"{line}\n" for line in lines
                                  if not line.startswith(f"{h1.address} ")))
    refused = subprocess.run(["ssh", "-F", str(fleet.ssh_config), "-o",
                              f"UserKnownHostsFile={without_h1}", h1.name, "true"],
                             capture_output=True, text=True, check=False, timeout=60)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr
    # Another host's key in h1's place is refused just the same.
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"{h1.address} {lines[1].split(' ', 1)[1]}\n")
    spoofed = subprocess.run(["ssh", "-F", str(fleet.ssh_config), "-o",
                              f"UserKnownHostsFile={wrong}", h1.name, "true"],
                             capture_output=True, text=True, check=False, timeout=60)
    assert spoofed.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in spoofed.stderr


def test_a_host_without_sshd_is_unreachable_while_the_others_answer(fleet: Fleet) -> None:
    h1 = fleet.hosts[0]
    fleet.stop_sshd(h1)
    try:
        assert fleet.run_in(h1, ["systemctl", "is-active", SSHD_UNIT]).stdout.strip() \
            == "inactive"
        down = fleet.ssh(h1, ["true"])
        assert down.returncode == 255 and "refused" in down.stderr, down.stderr
        for other in _others(fleet, h1):
            assert fleet.ssh(other, ["true"]).returncode == 0
    finally:
        fleet.start_sshd(h1)
    assert fleet.ssh(h1, ["true"]).returncode == 0


def test_a_power_cut_then_a_boot_keeps_the_hosts_state_and_nothing_else(fleet: Fleet) -> None:
    h1 = fleet.hosts[-1]
    name = f"kept-{uuid.uuid4().hex}"
    assert fleet.ssh(h1, ["sh", "-c", f"echo kept > /var/lib/orch/{name} && "
                                      f"echo lost > /run/{name}"]).returncode == 0
    before = h1.pid
    fleet.power_cut(h1)
    assert not Path(f"/proc/{before}").exists() or not h1.running()
    assert fleet.ssh(h1, ["true"]).returncode == 255
    for other in _others(fleet, h1):
        assert fleet.ssh(other, ["true"]).returncode == 0
    fleet.boot(h1)
    assert h1.pid != before
    assert fleet.ssh(h1, ["systemctl", "is-system-running"]).stdout.strip() in HEALTHY
    assert fleet.ssh(h1, ["cat", f"/var/lib/orch/{name}"]).stdout == "kept\n"
    assert fleet.ssh(h1, ["test", "-e", f"/run/{name}"]).returncode == 1  # a fresh /run
    assert fleet.ssh(h1, ["cat", "/etc/machine-id"]).stdout.strip() == h1.machine_id
