"""The terminal holder (orch.ttyhold) on its own, no systemd: the program runs on the
terminal as the holder's own process (its exit status is the program's), a client's
keys and window reach it, its output reaches the client and the holder's stdout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from orch import ttyhold
from tests.waiting import wait_for

HOLDER = Path(ttyhold.__file__)


def _connect(path: Path) -> socket.socket:
    """A client of the holder at PATH, once it listens."""
    def connected() -> socket.socket | None:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()
            return None
        return client

    found: socket.socket = wait_for(connected, 20, "the holder to listen")
    return found


def _read_until(client: socket.socket, text: bytes) -> bytes:
    client.settimeout(20)
    seen = b""
    while text not in seen:
        chunk = client.recv(65536)
        assert chunk, f"{text!r} never came: {seen!r}"
        seen += chunk
    return seen


def test_the_program_runs_on_the_terminal_as_the_holders_own_process(tmp_path: Path) -> None:
    path = tmp_path / "tty" / "s1"
    holder = subprocess.Popen([sys.executable, "-I", str(HOLDER), str(path), "/bin/sh", "sh"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={"PATH": "/usr/bin:/bin"})
    try:
        client = _connect(path)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
        client.sendall(ttyhold.window(33, 101))
        client.sendall(ttyhold.frame(ttyhold.DATA, b"stty size; echo $TERM pid=$$\n"))
        # The program is the holder's own process (it executed it), on a 33x101 window,
        # told it is on an xterm (a service has no TERM).
        shown = _read_until(client, f"xterm-256color pid={holder.pid}\r".encode())
        # (After the shell's prompt, or before it: typed ahead, the input is echoed first.)
        assert b"33 101\r\n" in shown
        # A frame cut in two arrives whole.
        message = ttyhold.frame(ttyhold.DATA, b"exit 7\n")
        client.sendall(message[:2])
        client.sendall(message[2:])
        assert holder.wait(timeout=20) == 7  # the program's exit status
        out = holder.stdout.read() if holder.stdout else b""
        assert b"33 101" in out  # the terminal's output also went to its stdout
        client.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_bad_usage_is_one_line() -> None:
    done = subprocess.run([sys.executable, "-I", str(HOLDER), "/tmp/x"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert os.path.basename(str(HOLDER)) == "ttyhold.py"


def test_a_socket_a_crash_left_behind_is_replaced_and_anything_else_left_alone(
        tmp_path: Path) -> None:
    path = tmp_path / "tty" / "s2" / "socket"  # as orch.spec.tty_socket lays them out
    path.parent.mkdir(mode=0o700, parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a holder that died: its socket file stays, nobody listens
    stale.close()
    holder = subprocess.Popen([sys.executable, "-I", str(HOLDER), str(path), "/bin/sh", "sh"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={"PATH": "/usr/bin:/bin"})
    try:
        client = _connect(path)
        client.sendall(ttyhold.frame(ttyhold.DATA, b"echo fresh-$((2+3)); exit 0\n"))
        _read_until(client, b"fresh-5")
        assert holder.wait(timeout=20) == 0
        client.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # Its own directory goes with its socket, as the relay (the holder's child) ends.
    wait_for(lambda: not path.parent.exists(), what="the socket's directory to go")
    other = tmp_path / "tty" / "s3" / "socket"
    other.parent.mkdir(mode=0o700)
    other.write_text("not a socket")
    refused = subprocess.run([sys.executable, "-I", str(HOLDER), str(other), "/bin/true",
                              "true"], capture_output=True, text=True, timeout=20, check=False)
    assert refused.returncode == 1 and other.read_text() == "not a socket"
    assert refused.stderr == f"orch: cannot listen at {other}: Address already in use\n"


def test_a_client_gone_in_the_middle_of_a_batch_is_dropped_once(tmp_path: Path) -> None:
    """The terminal's output and a detached client's end can be ready in one batch: the
    send to the client fails first and drops it; its own event, next, must not crash
    the relay (its end would hang up the program)."""
    import pty

    master, slave = pty.openpty()
    path = tmp_path / "sock"
    relay = ttyhold.Relay(master, ttyhold._listen(str(path)))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(path))
    assert relay.handle(relay.server)
    [held] = list(relay.clients)
    client.close()
    os.write(slave, b"output\n")
    assert relay.handle(master)  # the send to the gone client fails: it is dropped
    assert held not in relay.clients
    assert relay.handle(held)  # its own event, later in the batch: skipped
    os.close(slave)
    assert not relay.handle(master)  # the terminal closed: the relay is done
