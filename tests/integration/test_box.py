"""`orch box` seen from the host: it boots a real systemd and leaves the host alone."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from orch import box
from tests.integration.conftest import ORCH, TEST_USER, Machine, wait_for

pytestmark = pytest.mark.skipif(box.systemd_is_pid1(), reason="systemd is PID 1: no box")

# Settings systemd-sysctl would change if it ran in the box (Debian's defaults).
WATCHED_SYSCTLS = ("kernel/sysrq", "fs/protected_regular", "fs/protected_fifos",
                   "net/ipv4/conf/all/rp_filter", "kernel/core_pattern")


def _host(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ORCH, *args], capture_output=True, text=True, check=False,
                          timeout=120)


def _sysctls() -> dict[str, str]:
    values = {}
    for name in WATCHED_SYSCTLS:
        path = Path("/proc/sys") / name
        if path.exists():
            values[name] = path.read_text()
    return values


def test_rebooting_the_box_keeps_the_hosts_tmp_and_sysctls(machine: Machine) -> None:
    assert _host("box", "down").returncode == 0
    # With no manager at all, session commands say so in one line and name the way out.
    lonely = subprocess.run([ORCH, "ps"], capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/bin:/bin", "ORCH_STATE_DIR": "/var/tmp/none"})
    assert lonely.returncode == 3 and lonely.stderr.count("\n") == 1
    assert "orch box up" in lonely.stderr
    markers = [Path("/tmp") / f"orch-marker-{uuid.uuid4().hex}",
               Path("/var/tmp") / f"orch-marker-{uuid.uuid4().hex}"]
    for marker in markers:
        marker.write_text("still here")
    before = _sysctls()
    try:
        up = _host("box", "up")
        assert up.returncode == 0, up.stderr
        status = json.loads(_host("box", "status", "--json").stdout)
        assert status["state"] in ("running", "degraded")
        assert all(m.read_text() == "still here" for m in markers)
        assert _sysctls() == before
    finally:
        for marker in markers:
            marker.unlink(missing_ok=True)
        _host("box", "up")


def test_the_box_runs_systemd_as_pid_1_of_its_own(machine: Machine) -> None:
    assert machine.sh("cat /proc/1/comm").strip() == "systemd"
    assert machine.sh("systemctl is-system-running || true").strip() in ("running", "degraded")
    # The box sees the host's files (a checkout under /tmp included).
    probe = Path("/tmp") / f"orch-probe-{uuid.uuid4().hex}"
    probe.write_text("shared")
    try:
        assert machine.sh(f"cat {probe}") == "shared"
    finally:
        probe.unlink()


def test_box_exec_passes_the_exit_code_through(machine: Machine) -> None:
    assert _host("box", "exec", "--", "sh", "-c", "exit 7").returncode == 7


# The directory a command starts in: its mount (from fdinfo) among the box's own mounts.
CWD_MOUNT = ("import os; fd = os.open('.', os.O_RDONLY | os.O_DIRECTORY); "
             "mount = next(int(l.split()[1]) for l in open(f'/proc/self/fdinfo/{fd}') "
             "if l.startswith('mnt_id:')); "
             "mine = {int(l.split()[0]) for l in open('/proc/self/mountinfo')}; "
             "print(os.getcwd(), mount in mine)")


def test_box_exec_starts_in_the_callers_directory_as_the_box_sees_it(
        machine: Machine, tmp_path: Path) -> None:
    # Before, nsenter opened it out here (--wd): a directory reached from outside the
    # box's mounts, whose every getcwd() took 0.2 ms (a spawn makes one).
    work = Path("/var/tmp") / f"orch-it-cwd-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        done = subprocess.run([ORCH, "box", "exec", "--", "python3", "-c", CWD_MOUNT],
                              capture_output=True, text=True, check=False, timeout=60,
                              cwd=work)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [str(work), "True"]
    finally:
        work.rmdir()


@pytest.mark.parametrize("user", [None, TEST_USER])
def test_what_a_test_ran_in_the_box_ends_with_the_process_it_started(
        machine: Machine, user: str | None) -> None:
    # The tests' own harness: ending the nsenter a test started (by its PID) ends what
    # it ran inside the box, rather than leaving it to the box's init.
    started = machine.popen(["sh", "-c", "echo $$; exec sleep 300"], user=user)
    assert started.stdout is not None
    inner = started.stdout.readline().strip()
    assert inner.isdigit()
    assert machine.run(["kill", "-0", inner]).returncode == 0
    started.terminate()
    started.wait(timeout=30)
    wait_for(lambda: machine.run(["kill", "-0", inner]).returncode != 0, 30,
             f"the sleep (pid {inner} in the box) to end with its nsenter")


def test_box_needs_root_and_says_so_in_one_line(machine: Machine) -> None:
    done = subprocess.run(["runuser", "-u", TEST_USER, "--", ORCH, "box", "up"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 4
    assert done.stderr.count("\n") == 1 and "needs root" in done.stderr


def test_box_up_inside_a_box_is_refused(machine: Machine) -> None:
    done = machine.run([ORCH, "box", "up"])
    assert done.returncode != 0 and "already PID 1" in done.stderr


def test_host_commands_are_forwarded_into_the_running_box(machine: Machine,
                                                          tmp_path: Path) -> None:
    state = Path("/var/tmp") / f"orch-fwd-{uuid.uuid4().hex}"
    env = {"ORCH_STATE_DIR": str(state)}
    try:
        spawned = subprocess.run([ORCH, "spawn", "--", "/bin/true"], capture_output=True,
                                 text=True, check=False, env={**env, "PATH": "/usr/bin:/bin"})
        assert spawned.returncode == 0, spawned.stderr
        sid = spawned.stdout.strip()
        waited = subprocess.run([ORCH, "wait", sid], capture_output=True, text=True,
                                check=False, env={**env, "PATH": "/usr/bin:/bin"})
        assert waited.returncode == 0, waited.stderr
    finally:
        subprocess.run(["rm", "-rf", str(state)], check=False)
