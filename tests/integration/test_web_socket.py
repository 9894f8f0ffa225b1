"""`orch-web.socket` against real managers: installed by `orch units install`, it starts
`orch serve` at the first connection, which answers the socket's owner only (the peer's
credentials), and exits once idle, to be started again by the next connection."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

from tests.integration.conftest import ORCH, Orch
from tests.waiting import wait_for

# A client on the socket: prints the status and body of GET PATH, or why it could not
# connect.
CLIENT = """
import http.client, socket, sys

class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(sys.argv[1])

try:
    connection = UnixConnection(sys.argv[3])  # what the Host header names
    connection.request("GET", sys.argv[2])
    response = connection.getresponse()
    print(response.status)
    print(response.read().decode())
except OSError as err:
    print("refused", err.errno)
"""


def _socket_path(orch: Orch) -> str:
    return "/run/orch/web.sock" if orch.scope == "system" else f"/run/user/{orch.uid}/orch/web.sock"


def _get(orch: Orch, path: str, user: str | None,
         host: str = "localhost") -> tuple[str, str]:
    done = orch.machine.run(["/usr/bin/python3", "-c", CLIENT, _socket_path(orch), path,
                             host], user=user)
    status, _, body = done.stdout.partition("\n")
    return status, body


def _drop_in(orch: Orch) -> Path:
    if orch.scope == "system":
        return Path("/etc/systemd/system/orch-web.service.d")
    home = Path(orch.env["HOME"])
    return home / ".config" / "systemd" / "user" / "orch-web.service.d"


def test_the_socket_serves_its_owner_only_and_comes_back_after_idling(orch: Orch) -> None:
    sid = orch.spawn("sleep", "300", opts=["--name", "via-socket"])
    installed = orch.ok("units", "install").split()
    drop_in = _drop_in(orch)
    try:
        assert any(p.endswith("orch-web.socket") for p in installed)
        assert orch.systemctl("is-active", "orch-web.socket").stdout.strip() == "active"
        mode = orch.machine.sh(f"stat -c %a {_socket_path(orch)}")
        assert mode.strip() == "600"

        status, body = _get(orch, "/api/sessions", orch.user)
        assert status == "200", body
        assert [s["id"] for s in json.loads(body)] == [sid]
        # A page of another site, through a browser's ssh -L tunnel: its own name in Host.
        status, body = _get(orch, "/api/sessions", orch.user, "attacker.example:8765")
        assert status == "403" and "Host" in json.loads(body)["error"]

        # Another user: root on a user's socket passes the file's mode, not the check of
        # its credentials; a user on root's socket is kept out by the mode.
        if orch.scope == "user":
            status, body = _get(orch, "/api/sessions", None)
            assert status == "403" and "may not use the sessions" in json.loads(body)["error"]
        else:
            status, _ = _get(orch, "/api/sessions", "orch-test")
            assert status == f"refused {errno.EACCES}"

        # Idle for a second, it exits; the next connection starts it again.
        orch.machine.sh(f"mkdir -p {drop_in} && printf '%s\\n' '[Service]' 'ExecStart=' "
                        f"'ExecStart={ORCH} serve --{orch.scope} --idle-exit 1s' "
                        f"> {drop_in}/idle.conf", user=orch.user)
        orch.systemctl("daemon-reload")
        orch.systemctl("stop", "orch-web.service")
        assert _get(orch, "/api/sessions", orch.user)[0] == "200"
        wait_for(lambda: orch.systemctl("is-active", "orch-web.service").stdout.strip()
                 == "inactive", 60, "the idle server to exit")
        assert orch.systemctl("is-active", "orch-web.socket").stdout.strip() == "active"
        assert _get(orch, f"/api/sessions/{sid}", orch.user)[0] == "200"
    finally:
        shutil.rmtree(drop_in, ignore_errors=True)
        orch("units", "uninstall")
    assert orch.systemctl("is-active", "orch-web.socket").stdout.strip() != "active"
    # Nor is its file left behind (it was: systemd keeps it unless told otherwise).
    assert orch.machine.sh(f"test -e {_socket_path(orch)} && echo left || echo gone"
                           ).strip() == "gone"
