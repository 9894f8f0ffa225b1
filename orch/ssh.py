"""SSH as orch's one transport to other hosts, used as `systemctl -H` uses it.

Authentication is SSH's own: the user's keys, agent and known_hosts, and their
~/.ssh/config (or ORCH_SSH_CONFIG). orch adds only BatchMode (a prompt would hang a
command; orch never asks for or keeps a password) and a connect timeout, and never
weakens host-key checking. One master connection per host is shared by every command
(ssh's ControlMaster): the D-Bus bridge, the remote orch and journalctl ride on it.

This module is the one place that builds an ssh command line and runs one, and words
its failures (a host that does not answer is HostUnreachable, exit status 3).
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Callable, Container, Sequence
from pathlib import Path

from orch import shellwords
from orch.errors import ManagerUnreachable, OrchError
from orch.hosts import Address, Host
from orch.scope import Scope
from orch.timespan import parse_seconds

DEFAULT_TIMEOUT = 10.0
TIMEOUT_ENV = "ORCH_HOST_TIMEOUT"
CONFIG_ENV = "ORCH_SSH_CONFIG"
# How long a master connection outlives the last command that used it.
PERSIST_ENV = "ORCH_SSH_PERSIST"
DEFAULT_PERSIST = "60s"
# ssh's own status for its failures (the remote command's otherwise).
SSH_FAILED = 255
# A remote shell's status for a command it cannot find.
NOT_FOUND = 127
# How long a command run over ssh may take beyond the connect timeout.
COMMAND_GRACE = 5.0
# How often a stream() with nothing to read looks whether it should stop.
STOP_CHECK_S = 0.25
# The most of a streamed command's stderr kept for its last word.
STDERR_KEPT = 4096


def host_timeout() -> float:
    """Seconds a host may take to answer: ORCH_HOST_TIMEOUT, a time span above 0 and
    below infinity, overrides the default (UsageError for anything else)."""
    value = os.environ.get(TIMEOUT_ENV)
    if not value:
        return DEFAULT_TIMEOUT
    return parse_seconds(value, TIMEOUT_ENV, zero=False, infinity=False)


def persist_option() -> str | None:
    """ssh's ControlPersist= for ORCH_SSH_PERSIST, a time span ("no" or 0: None, no
    shared connection; infinity: "yes", kept until `ssh -O exit`)."""
    value = os.environ.get(PERSIST_ENV) or DEFAULT_PERSIST
    if value == "no":
        return None
    seconds = parse_seconds(value, PERSIST_ENV)
    if seconds == math.inf:
        return "yes"
    # ssh takes whole seconds, and reads 0 as "for ever": round a fraction up.
    return str(math.ceil(seconds)) if seconds > 0 else None


def control_dir() -> Path | None:
    """Where the master connections' sockets live: the caller's runtime directory, which
    no other user can enter (None if there is none: then no connection is shared)."""
    base = Scope.default().runtime_dir()
    if not base.is_dir():
        return None
    path = base / "orch-ssh"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        if path.stat().st_uid != os.geteuid() or path.stat().st_mode & 0o077:
            return None  # not ours alone: sharing a socket there would be unsafe
    except OSError:
        return None
    return path


def _config() -> list[str]:
    config = os.environ.get(CONFIG_ENV)
    return ["-F", config] if config else []


def _destination(address: Address) -> list[str]:
    """`[-p PORT] -- DEST`: the end of every ssh command line."""
    port = ["-p", str(address.port)] if address.port is not None else []
    return [*port, "--", address.destination]


def options(timeout: float | None = None) -> list[str]:
    """The options orch gives every ssh it runs."""
    seconds = max(1, round(timeout if timeout is not None else host_timeout()))
    argv = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={seconds}", *_config()]
    persist = persist_option()
    directory = control_dir() if persist is not None else None
    if directory is not None:
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={directory}/%C",
                 "-o", f"ControlPersist={persist}"]
    return argv


def base_argv(address: Address, timeout: float | None = None,
              terminal: bool = False) -> list[str]:
    """`ssh OPTIONS [-p PORT] -- DEST`: a remote command follows, on a terminal of its
    own with TERMINAL (-t), else with none."""
    return ["ssh", "-x", "-t" if terminal else "-T", *options(timeout),
            *_destination(address)]


def command_argv(address: Address, argv: Sequence[str],
                 timeout: float | None = None, terminal: bool = False) -> list[str]:
    """ssh running ARGV on the host. ssh hands its command to the remote user's shell as
    one string: each word is quoted, so the shell sees exactly these words."""
    return [*base_argv(address, timeout, terminal), shellwords.join(argv)]


# --- running ssh: the one place, and its one wording of failures ----------------------

class HostUnreachable(ManagerUnreachable):
    """A host did not answer over SSH."""


class Unanswered(Exception):
    """ssh, or the command it ran, gave no answer: REASON says why in one line; STATUS
    is the exit status of the command (SSH_FAILED: ssh's own), None if none came."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def _cannot_run(err: OSError) -> str:
    return f"cannot run ssh: {err.strerror}"


def _last_word(stderr: str, code: int) -> str:
    """Why a command ended with CODE: the last line it (or ssh) wrote, without the
    `orch: ` a remote orch puts before its errors."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if lines:
        return lines[-1].removeprefix("orch: ")
    return f"ssh exited with status {code}" if code == SSH_FAILED else f"exit status {code}"


def capture(address: Address, argv: Sequence[str], timeout: float | None = None) -> str:
    """ARGV's output on the host (no input): the connection bounded by TIMEOUT (the host
    timeout by default), the command by a few seconds more. Unanswered if ssh or the
    command failed or did not answer in time."""
    seconds = timeout if timeout is not None else host_timeout()
    try:
        done = subprocess.run(command_argv(address, argv, seconds), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=seconds + COMMAND_GRACE, check=False)
    except subprocess.TimeoutExpired:
        raise Unanswered(f"no answer within {seconds + COMMAND_GRACE:g}s") from None
    except OSError as err:
        raise Unanswered(_cannot_run(err)) from None
    if done.returncode != 0:
        raise Unanswered(_last_word(done.stderr, done.returncode), done.returncode)
    return done.stdout


def stream(address: Address, argv: Sequence[str], line: Callable[[str], None],
           should_stop: Callable[[], bool], *, done: Container[int] = (0,)) -> int | None:
    """Each line ARGV writes on the host, handed to LINE as it comes (no input; the
    connection bounded by the host timeout, the command by nothing), until it exits or
    SHOULD_STOP() holds, then ssh is ended (by its PID); the command's exit status, or
    None once stopped. Unanswered if ssh could not run, or the status is not in DONE
    (ssh's own failure, or the command's)."""
    import select

    try:
        child = subprocess.Popen(command_argv(address, argv), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as err:
        raise Unanswered(_cannot_run(err)) from None
    assert child.stdout is not None and child.stderr is not None
    out, said_fd = child.stdout.fileno(), child.stderr.fileno()
    poller = select.poll()
    for fd in (out, said_fd):  # stderr read as it comes too: a full pipe would stall ssh
        poller.register(fd, select.POLLIN)
    pending, said, open_fds = b"", b"", {out, said_fd}
    try:
        while open_fds:
            if should_stop():
                return None  # ssh is ended below
            for fd, _mask in poller.poll(STOP_CHECK_S * 1000):
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                elif fd == said_fd:
                    said = (said + chunk)[-STDERR_KEPT:]
                else:
                    *complete, pending = (pending + chunk).split(b"\n")
                    for text in complete:
                        line(text.decode("utf-8", "replace"))
        if pending:
            line(pending.decode("utf-8", "replace"))
        code = child.wait()
    finally:
        _ended(child)
        child.stdout.close()
        child.stderr.close()
    if code not in done:
        raise Unanswered(_last_word(said.decode("utf-8", "replace"), code), code)
    return code


def _ended(child: subprocess.Popen[bytes]) -> int:
    """CHILD (an ssh of ours) ended: asked to (SIGTERM), if it still runs, and reaped;
    its status."""
    if child.poll() is None:
        child.terminate()
        try:
            return child.wait(timeout=COMMAND_GRACE)
        except subprocess.TimeoutExpired:
            child.kill()
    return child.wait()


def check(address: Address, timeout: float | None = None) -> str | None:
    """Connect (and leave a master connection for what follows); None if the host
    answers, else ssh's own last word on why not."""
    try:
        capture(address, ["true"], timeout)
    except Unanswered as err:
        return err.reason
    return None


def run(host: Host, argv: Sequence[str], terminal: bool = False) -> int:
    """ARGV on HOST with this terminal (standard input, output and error passed through,
    no time limit once connected; with TERMINAL, on a terminal of its own there, as
    `ssh -t`); its exit status. HostUnreachable if the host does not answer or the
    connection is lost."""
    problem = check(host.address)
    if problem is not None:
        raise HostUnreachable(f"cannot reach host {host.name} over ssh: {problem}")
    try:
        code = subprocess.run(command_argv(host.address, argv, terminal=terminal),
                              check=False).returncode
    except OSError as err:
        raise OrchError(_cannot_run(err)) from None
    if code == SSH_FAILED:  # ssh's own failure, or orch there ended by a signal: ssh can't tell
        raise HostUnreachable(f"lost the ssh connection to host {host.name}, or orch there "
                              "was killed")
    return code


def close_master(address: Address) -> None:
    """End the master connection to ADDRESS if one is open (ssh -O exit)."""
    directory = control_dir()
    if directory is None:
        return
    argv = ["ssh", *_config(), "-o", f"ControlPath={directory}/%C", "-O", "exit",
            *_destination(address)]
    subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                   check=False)


# D-Bus addresses (the D-Bus specification, "Server Addresses"): bytes outside this set
# are %-escaped in a value.
_UNESCAPED = frozenset(b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_/.\\*")


def _escape(value: str) -> str:
    return "".join(chr(b) if b in _UNESCAPED else f"%{b:02x}" for b in value.encode())


def bus_address(address: Address, user: bool, timeout: float | None = None) -> bytes:
    """The D-Bus address of the host's manager through SSH, as sd_bus_open_system_remote
    builds it (`unixexec:` running `ssh ... systemd-stdio-bridge`) with orch's ssh
    options; USER bridges to the SSH user's own bus (`systemd-stdio-bridge --user`),
    found where pam_systemd would have said had the login set XDG_RUNTIME_DIR."""
    if user:
        bridge = ["sh", "-c", 'XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}" '
                  "exec systemd-stdio-bridge --user"]
    else:
        bridge = ["systemd-stdio-bridge"]
    argv = [*base_argv(address, timeout), shellwords.join(bridge)]
    parts = [f"path={_escape(argv[0])}"]
    parts += [f"argv{i}={_escape(word)}" for i, word in enumerate(argv) if i > 0]
    return ("unixexec:" + ",".join(parts)).encode()
