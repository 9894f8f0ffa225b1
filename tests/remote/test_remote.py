"""orch on other hosts, against real ones: each fleet host is a box with its own network
namespace, systemd, sshd, journal and state (tests/remote/fleet.py). The machine's orch
reaches them through ssh with keys and known_hosts the fleet generated.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from orch.scope import Scope
from orch.unitfiles import RECOVER, render
from tests.browser import chromium, table_row, until
from tests.remote.fleet import Fleet, Host, orch_command
from tests.terminals import running
from tests.waiting import wait_for

DEADLINE = 60.0


@pytest.fixture(scope="module")
def env(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the machine's orch: a fleet config naming h1..hN (h1 labelled
    small, the others big), the fleet's ssh config, no shared connections (so no ssh
    process outlives a command)."""
    path = tmp_path_factory.mktemp("remote") / "config.toml"
    blocks = []
    for host in fleet.hosts:
        label = "small" if host.name == "h1" else "big"
        blocks.append(f'[hosts.{host.name}]\naddress = "root@{host.address}"\n'
                      f'orch = "{orch_command()}"\nlabels = ["{label}"]\n')
    path.write_text("\n".join(blocks))
    return {**os.environ, "ORCH_CONFIG": str(path), "ORCH_SSH_CONFIG": str(fleet.ssh_config),
            "ORCH_HOST_TIMEOUT": "5", "ORCH_SSH_PERSIST": "no"}


def orch(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([orch_command(), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"orch {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return done


def on_host(fleet: Fleet, host: Host, *args: str) -> Any:
    """`orch ARGS --json` run inside HOST by the test itself (not through orch's ssh)."""
    done = fleet.run_in(host, [orch_command(), *args, "--json"])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def cleanup(fleet: Fleet) -> Iterator[None]:
    """Every test leaves each host with no session of orch's and no record."""
    yield
    for host in fleet.hosts:
        if host.running():
            fleet.run_in(host, [orch_command(), "reap", "--all", "--older-than", "0"])


def test_spawn_on_a_named_host_runs_and_records_there_only(fleet: Fleet, env: dict[str, str],
                                                           cleanup: None) -> None:
    h1, h2 = fleet.host("h1"), fleet.host("h2")
    session_id = orch(env, "--host", "h1", "spawn", "--name", "there", "--",
                      "sh", "-c", "echo from $(cat /etc/machine-id); exec sleep 300"
                      ).stdout.strip()
    [record] = [s for s in on_host(fleet, h1, "ps") if s["id"] == session_id]
    assert record["status"] == "running" and record["name"] == "there"
    # The unit is in h1's manager, with the MainPID h1 sees, and nowhere else.
    shown = fleet.run_in(h1, ["systemctl", "show", "-P", "MainPID", record["unit"]])
    assert int(shown.stdout) == record["main_pid"]
    assert fleet.run_in(h2, ["systemctl", "is-active", record["unit"]]).stdout.strip() != "active"
    assert on_host(fleet, h2, "ps") == []
    # The record is in h1's own state directory; this machine keeps no copy.
    assert any(session_id in p.read_text(errors="replace")
               for p in h1.state_dir.rglob("*") if p.is_file())
    for directory in (h2.state_dir, Path("/var/lib/orch"), Scope.USER.state_dir()):
        if directory.exists():
            assert not any(session_id in p.read_text(errors="replace")
                           for p in directory.rglob("*") if p.is_file() and p.stat().st_size
                           < 50_000_000)
    # show, logs, stop through --host (after the command name here) are h1's own.
    shown_json = json.loads(orch(env, "show", "there", "--host", "h1", "--json").stdout)
    assert shown_json["id"] == session_id and shown_json["main_pid"] == record["main_pid"]
    wait_for(lambda: h1.machine_id in orch(env, "logs", "there", "--host", "h1").stdout,
             DEADLINE, "h1's journal to show the session's line")
    orch(env, "--host", "h1", "stop", "there")
    assert on_host(fleet, h1, "show", session_id)["status"] == "stopped"
    assert fleet.run_in(h1, ["systemctl", "is-active", record["unit"]]).stdout.strip() != "active"


def test_logs_and_wait_of_a_remote_session(fleet: Fleet, env: dict[str, str],
                                           cleanup: None) -> None:
    gate = "/run/orch-remote-gate"
    fleet.run_in(fleet.host("h2"), ["rm", "-f", gate])
    script = (f"echo first line; while [ ! -e {gate} ]; do sleep 0.05; done; "
              "echo second line; exit 3")
    session_id = orch(env, "spawn", "--host", "h2", "--name", "waited", "--",
                      "sh", "-c", script).stdout.strip()
    waiting = subprocess.Popen([orch_command(), "--host", "h2", "wait", session_id, "--json"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_for(lambda: "first line" in orch(env, "--host", "h2", "logs", session_id).stdout,
                 DEADLINE, "the first line in h2's journal")
        assert waiting.poll() is None  # still waiting: the session runs on
        fleet.run_in(fleet.host("h2"), ["touch", gate])
        out, err = waiting.communicate(timeout=DEADLINE)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 1, err  # wait's own code for a failed session
    [ended] = json.loads(out)
    assert ended["status"] == "failed" and ended["exit_code"] == 3
    lines = orch(env, "--host", "h2", "logs", session_id).stdout
    assert lines.index("first line") < lines.index("second line")
    # The same answer as orch on h2 itself gives.
    assert on_host(fleet, fleet.host("h2"), "show", session_id)["exit_code"] == 3
    fleet.run_in(fleet.host("h2"), ["rm", "-f", gate])


def test_ps_across_hosts_with_one_host_down(fleet: Fleet, env: dict[str, str],
                                            cleanup: None) -> None:
    ids = {}
    for host in fleet.hosts:
        ids[host.name] = orch(env, "--host", host.name, "spawn", "--name", f"on-{host.name}",
                              "--", "sleep", "300").stdout.strip()
    down = fleet.hosts[-1]
    fleet.stop_sshd(down)
    try:
        listed = orch(env, "ps", "--all-hosts", "--json")
        sessions = json.loads(listed.stdout)
        seen = {(s["host"], s["id"]) for s in sessions}
        for host in fleet.hosts[:-1]:
            assert (host.name, ids[host.name]) in seen
        assert not any(s["host"] == down.name for s in sessions)
        warnings = [line for line in listed.stderr.splitlines() if down.name in line]
        assert len(warnings) == 1 and warnings[0].startswith(f"orch: warning: host {down.name}")
        table = orch(env, "ps", "--all-hosts").stdout.splitlines()
        assert table[0].split()[:3] == ["HOST", "ID", "NAME"]
        assert any(row.split()[:3] == ["h1", ids["h1"][:8], "on-h1"] for row in table)
        # A command on the host that is down: one line, exit 3, no trace.
        failed = orch(env, "--host", down.name, "ps", check=False)
        assert failed.returncode == 3
        assert failed.stderr.count("\n") == 1 and f"cannot reach host {down.name}" in failed.stderr
    finally:
        fleet.start_sshd(down)
    # Its session ran on while nobody could reach it.
    back = orch(env, "ps", "--all-hosts", "--json")
    assert (down.name, ids[down.name], "running") in {
        (s["host"], s["id"], s["status"]) for s in json.loads(back.stdout)}


def _limit(fleet: Fleet, host: Host, memory_max: str) -> None:
    done = fleet.run_in(host, ["systemctl", "set-property", "--runtime", "system.slice",
                               f"MemoryMax={memory_max}"])
    assert done.returncode == 0, done.stderr


def _placed(fleet: Fleet, session_id: str) -> tuple[str, dict[str, Any]]:
    found = [(host.name, s) for host in fleet.hosts for s in on_host(fleet, host, "ps")
             if s["id"] == session_id]
    assert len(found) == 1, found  # on exactly one host
    return found[0]


def test_spawn_auto_takes_the_host_with_most_free_memory(fleet: Fleet, env: dict[str, str],
                                                         cleanup: None) -> None:
    # The hosts share one kernel: the limits on their sessions' slice tell them apart,
    # read from each host's own manager (MemoryAvailable=, D-Bus over ssh).
    sizes = {"h1": "300M", "h2": "2G", "h3": "1G"}
    for host in fleet.hosts:
        _limit(fleet, host, sizes.get(host.name, "500M"))
    try:
        spawned = orch(env, "spawn", "--host", "auto", "--", "sleep", "300")
        name, session = _placed(fleet, spawned.stdout.strip())
        assert name == "h2"
        assert "placing the session on h2 (auto: most free memory" in spawned.stderr
        # Each limit less what that host's slice uses already: the hosts' own figures.
        words = re.fullmatch(r"h2 \(auto: most free memory, ([\d.]+)G; h1 (\d+)M free, "
                             r"h3 (\d+)M free(?:, .*)?\)", session["placement"])
        assert words is not None, session["placement"]
        assert 1.5 < float(words[1]) <= 2.0
        assert 150 < int(words[2]) <= 300 and 800 < int(words[3]) <= 1024
        # --label chooses among the hosts that carry it: h1 is the only "small" one.
        small = orch(env, "spawn", "--label", "small", "--", "sleep", "300")
        assert _placed(fleet, small.stdout.strip())[0] == "h1"
        if len(fleet.hosts) > 2:
            _limit(fleet, fleet.host("h2"), "200M")
            moved = orch(env, "--host", "auto", "--label", "big", "spawn", "--", "sleep", "300")
            name, session = _placed(fleet, moved.stdout.strip())
            assert name == "h3" and session["placement"].startswith("h3 (auto (label big)")
        none = orch(env, "spawn", "--label", "nowhere", "--", "true", check=False)
        assert none.returncode == 2 and "no host with label 'nowhere'" in none.stderr
    finally:
        for host in fleet.hosts:
            _limit(fleet, host, "infinity")


def test_a_remote_power_cut_is_recovered_by_that_host(fleet: Fleet, env: dict[str, str],
                                                      cleanup: None) -> None:
    host = fleet.hosts[-1]
    # That host's own boot recovery, as `orch units install --system` would enable it.
    recover = render(Scope.SYSTEM, orch_command())[RECOVER]
    (host.units_dir / RECOVER).write_text(recover)
    wants = host.units_dir / "multi-user.target.wants" / RECOVER
    if not wants.is_symlink():
        wants.symlink_to(f"../{RECOVER}")
    session_id = orch(env, "--host", host.name, "spawn", "--persistent", "--name", "survivor",
                      "--", "sleep", "600").stdout.strip()
    before = on_host(fleet, host, "show", session_id)
    assert before["status"] == "running"
    fleet.power_cut(host)
    down = orch(env, "--host", host.name, "show", session_id, check=False)
    assert down.returncode == 3
    fleet.boot(host)

    def recovered() -> dict[str, Any] | None:
        done = orch(env, "--host", host.name, "show", session_id, "--json", check=False)
        if done.returncode != 0:
            return None
        shown: dict[str, Any] = json.loads(done.stdout)
        return shown if shown["status"] == "running" and shown["restarts"] == 1 else None

    after = wait_for(recovered, DEADLINE,
                     f"{host.name}'s boot recovery to start the session again")
    assert after["invocation_id"] != before["invocation_id"]
    assert [run["status"] for run in after["invocations"]] == ["lost", "running"]
    assert after["argv"] == ["sleep", "600"] and after["name"] == "survivor"
    # Recovered by that host's own orch-recover.service, from its own record.
    ran = fleet.run_in(host, ["systemctl", "show", "-P", "Result", RECOVER])
    started = fleet.run_in(host, ["systemctl", "show", "-P", "ExecMainStartTimestampMonotonic",
                                  RECOVER])
    assert ran.stdout.strip() == "success" and int(started.stdout) > 0
    assert on_host(fleet, host, "ps")[0]["id"] == session_id


def test_kill_recover_and_reap_through_host(fleet: Fleet, env: dict[str, str],
                                            cleanup: None) -> None:
    h1 = fleet.host("h1")
    session_id = orch(env, "--host", "h1", "spawn", "--name", "victim", "--",
                      "sleep", "300").stdout.strip()
    orch(env, "--host", "h1", "kill", "victim", "--signal", "KILL")
    killed = wait_for(lambda: (s := on_host(fleet, h1, "show", session_id))["status"] == "killed"
                      and s, DEADLINE, "the session to be killed on h1")
    assert killed["exit_signal"] == "SIGKILL"
    recovered = json.loads(orch(env, "recover", "--host", "h1", "--json").stdout)
    assert recovered["counts"] == on_host(fleet, h1, "recover")["counts"]
    reaped = orch(env, "--host", "h1", "reap", "--older-than", "0")
    assert "reaped 1 session" in reaped.stderr + reaped.stdout
    assert on_host(fleet, h1, "ps") == []
    unknown = orch(env, "--host", "h1", "show", session_id, check=False)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1


def test_one_shared_connection_per_host(fleet: Fleet, env: dict[str, str]) -> None:
    from orch import ssh
    from orch.hosts import Address

    shared = {**env, "ORCH_SSH_PERSIST": "30s"}
    control = Path("/run/orch-ssh")
    before = set(control.iterdir()) if control.is_dir() else set()
    address = Address(fleet.host("h2").address, "root")
    try:
        orch(shared, "--host", "h2", "ps")
        sockets = set(control.iterdir()) - before
        assert len(sockets) == 1 and control.stat().st_mode & 0o777 == 0o700
        [socket] = sockets
        # The next command rides on it: ssh -O check finds the master alive.
        orch(shared, "--host", "h2", "ps")
        assert set(control.iterdir()) - before == sockets
        check = subprocess.run(["ssh", "-F", str(fleet.ssh_config), "-o",
                                f"ControlPath={socket}", "-O", "check", address.destination],
                               capture_output=True, text=True, timeout=30, check=False)
        assert check.returncode == 0, check.stderr
    finally:
        os.environ["ORCH_SSH_CONFIG"] = str(fleet.ssh_config)
        try:
            ssh.close_master(address)
        finally:
            del os.environ["ORCH_SSH_CONFIG"]
    assert set(control.iterdir()) - before == set()


def test_attach_to_a_terminal_session_on_another_host(fleet: Fleet, env: dict[str, str],
                                                      cleanup: None) -> None:
    session_id = orch(env, "spawn", "--host", "h2", "--tty", "--", "/bin/sh").stdout.strip()
    # Through `ssh -t`: this terminal's keys and window reach the program on h2.
    with running([orch_command(), "--host", "h2", "attach", session_id], rows=30,
                 columns=100, env=env) as terminal:
        terminal.expect(b"Ctrl-\\ detaches")
        terminal.type(b"echo remote-$((6*7)); stty size\r")
        terminal.expect(b"remote-42")
        terminal.expect(b"30 100")
        terminal.type(b"\x1c")
        assert terminal.ended() == 0
    assert on_host(fleet, fleet.host("h2"), "show", session_id)["status"] == "running"


def test_top_over_the_fleet_and_on_one_host(fleet: Fleet, env: dict[str, str],
                                            cleanup: None) -> None:
    h2 = fleet.host("h2")
    session_id = orch(env, "spawn", "--host", "h2", "--name", "far", "--", "sleep",
                      "300").stdout.strip()
    # On every host at once, from here: a HOST column, and keys that act over ssh.
    with running([orch_command(), "top", "--all-hosts", "--interval", "0.5"], rows=30,
                 columns=120, env=env) as terminal:
        terminal.expect(b"HOST", drawn=True)
        terminal.expect(b"far", drawn=True)
        terminal.type(b"s")
        wait_for(lambda: on_host(fleet, h2, "show", session_id)["status"] == "stopped",
                 DEADLINE, "the remote session to stop")
        terminal.type(b"q")
        assert terminal.ended() == 0
    # On that host itself, through `ssh -t`: the same view, drawn there.
    with running([orch_command(), "--host", "h2", "top"], rows=30, columns=120,
                 env=env) as terminal:
        terminal.expect(b"far", drawn=True)
        terminal.expect(b"0 running", drawn=True)
        terminal.type(b"q")
        assert terminal.ended() == 0


TOKEN = "remote-token-0123456789-abcdefgh"


@contextmanager
def serving(env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """`orch serve` of the machine on a loopback port (the token TOKEN), ended with it."""
    import socket

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([orch_command(), "serve", "--listen", f"127.0.0.1:{port}",
                               "--token-file", str(token_file)], env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None and "serving" in server.stderr.readline()
        yield port
    finally:
        server.terminate()  # ours, by its PID
        server.wait(timeout=30)


def request(port: int, method: str, path: str,
            headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    connection.request(method, path, headers={"Authorization": f"Bearer {TOKEN}",
                                              **(headers or {})})
    return connection.getresponse()


def next_event(response: http.client.HTTPResponse) -> dict[str, str]:
    """The next Server-Sent Event of RESPONSE, as its fields (a comment line skipped)."""
    fields: dict[str, str] = {}
    while (line := response.readline().decode()) != "\n" or not fields:
        assert line, "the stream ended"
        if line.strip() and not line.startswith(":"):
            name, _, value = line.rstrip("\n").partition(": ")
            fields[name] = value
    return fields


@contextmanager
def gated_on_h2(fleet: Fleet, env: dict[str, str], name: str,
                ending: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """Session NAME on h2: it says `far first`, waits for its gate, says `far second`
    and then runs ENDING (shell words). Its id, and what opens the gate (gone after)."""
    h2 = fleet.host("h2")
    gate = f"/run/orch-remote-gate-{name}"
    fleet.run_in(h2, ["rm", "-f", gate])
    script = (f"echo far first; while [ ! -e {gate} ]; do sleep 0.05; done; "
              f"echo far second; {ending}")
    session_id = orch(env, "spawn", "--host", "h2", "--name", name, "--",
                      "sh", "-c", script).stdout.strip()

    def open_gate() -> None:
        fleet.run_in(h2, ["touch", gate])

    try:
        yield session_id, open_gate
    finally:
        fleet.run_in(h2, ["rm", "-f", gate])


def test_the_web_api_answers_for_another_host(fleet: Fleet, env: dict[str, str],
                                              cleanup: None, tmp_path: Path) -> None:
    h2 = fleet.host("h2")
    session_id = orch(env, "spawn", "--host", "h2", "--name", "far-web", "--", "sleep",
                      "300").stdout.strip()
    with serving(env, tmp_path) as port:
        def call(method: str, path: str) -> tuple[int, Any]:
            response = request(port, method, path)
            return response.status, json.loads(response.read())

        status, hosts = call("GET", "/api/hosts")
        assert status == 200 and set(hosts) == {h.name for h in fleet.hosts}
        status, listed = call("GET", "/api/sessions?host=h2")
        assert status == 200 and [s["id"] for s in listed] == [session_id]
        status, stopped = call("POST", f"/api/sessions/{session_id}/stop?host=h2")
        assert status == 200 and stopped["status"] == "stopped"
        assert on_host(fleet, h2, "show", session_id)["status"] == "stopped"
        status, missing = call("GET", f"/api/sessions/{session_id}?host=h1")
        # h1's orch: no such session, answered as a local one is (its exit status, 2).
        assert status == 404 and missing["error"].startswith("host h1: no session ")


def test_the_web_api_follows_another_hosts_output(fleet: Fleet, env: dict[str, str],
                                                  cleanup: None, tmp_path: Path) -> None:
    h2 = fleet.host("h2")
    with gated_on_h2(fleet, env, "far-follow", "exit 3") as (session_id, open_gate), \
            serving(env, tmp_path) as port:
        path = f"/api/sessions/{session_id}/logs?follow=true&host=h2&format=cat&lines=5"
        response = request(port, "GET", path)
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        first = next_event(response)  # while the session still runs
        assert first["data"] == "far first" and first["id"]  # h2's journal cursor
        response.close()
        # Resumed where it left: the next line only, not the first again.
        response = request(port, "GET", path, {"Last-Event-ID": first["id"]})
        open_gate()
        second = next_event(response)
        assert second["data"] == "far second" and second["id"] not in ("", first["id"])
        assert next_event(response) == {"event": "end", "data": "{}"}
        missing = request(port, "GET", "/api/sessions/nosuch/logs?follow=true&host=h2")
        assert missing.status == 200  # the host's refusal comes as the stream's error
        assert b"event: error\ndata: host h2: " in missing.read()

        # A client that leaves a quiet session's stream leaves no follower on the host.
        quiet = orch(env, "spawn", "--host", "h2", "--name", "far-quiet", "--", "sh", "-c",
                     "echo quiet; exec sleep 300").stdout.strip()
        left = request(port, "GET", f"/api/sessions/{quiet}/logs?follow=true&host=h2"
                                    "&format=cat")
        assert next_event(left)["data"] == "quiet"

        def followers() -> list[str]:
            listing = fleet.run_in(h2, ["ps", "-eww", "-o", "args"]).stdout.splitlines()
            return [p for p in listing if "logs -f" in p and quiet in p]

        assert followers()  # h2's orch follows it for us now
        left.close()
        wait_for(lambda: not followers(), DEADLINE, "h2's follower to end with the client")


def test_the_dashboard_follows_another_hosts_output(fleet: Fleet, env: dict[str, str],
                                                    cleanup: None, tmp_path: Path) -> None:
    from selenium.webdriver.support.select import Select

    with gated_on_h2(fleet, env, "far-page", "exec sleep 300") as (_, open_gate), \
            serving(env, tmp_path) as port, chromium() as driver:
        driver.get(f"http://127.0.0.1:{port}/?token={TOKEN}")
        host = until(lambda: driver.find_element("id", "host"), what="the host selector")
        until(lambda: Select(host).select_by_value("h2") is None, what="h2 to choose")
        until(lambda: table_row(driver, "far-page"), what="h2's session listed").click()
        log = driver.find_element("id", "log")
        until(lambda: "far first" in log.text, what="its output so far")
        open_gate()
        until(lambda: "far second" in log.text, what="its new line, followed over ssh")
        assert log.text.count("far first") == 1
