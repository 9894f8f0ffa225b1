"""Integration tests: orch against real systemd managers.

pytest runs on the host. Where systemd is not PID 1, one box is booted for the whole
session (`orch box up`) and every command under test runs inside it through
`orch box exec`; where systemd is PID 1, commands run directly. Each test gets two
faces of orch: as root against the system manager, and as a non-root user against
that user's own manager.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orch import box, state
from orch.errors import OrchError
from orch.session import Record
from orch.spec import wake_unit
from tests.waiting import wait_for  # noqa: F401  (the integration tests' poller)

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
ORCH = str(VENV_BIN / "orch")
PYTHON = str(VENV_BIN / "python")
TEST_USER = os.environ.get("ORCH_TEST_USER", "orch-test")
WORK_ROOT = Path("/var/tmp/orch-it")



@dataclass
class Machine:
    """Where managers run: the host itself, or the box (commands go through nsenter)."""

    prefix: list[str]

    def _command(self, argv: Sequence[str], user: str | None,
                 env: dict[str, str] | None) -> list[str]:
        command = list(self.prefix)
        # In the box, each process between nsenter and ARGV is sent SIGTERM when its
        # parent ends: a test that ends nsenter by its PID (or a timeout that kills it)
        # ends what it ran inside too, which would otherwise live on under the box's
        # init. (A change of user clears the setting: runuser's child gets its own.)
        guard = ["setpriv", "--pdeathsig", "TERM", "--"] if self.prefix else []
        command += guard
        if user is not None:
            command += ["runuser", "-u", user, "--", *guard]
        assignments = ["=".join(item) for item in (env or {}).items()]
        return [*command, "env", *assignments, *argv]

    def run(self, argv: Sequence[str], *, user: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 120.0,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ARGV on the machine (as USER if given) and capture its output."""
        command = self._command(argv, user, env)
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              input=input, cwd="/", check=False)

    def popen(self, argv: Sequence[str], *, user: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ARGV on the machine without waiting; the caller ends it by its PID."""
        command = self._command(argv, user, env)
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd="/")

    def sh(self, script: str, user: str | None = None) -> str:
        """Run a shell snippet of the test's own on the machine; its stdout."""
        done = self.run(["sh", "-c", script], user=user)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="session")
def machine() -> Iterator[Machine]:
    """The machine with real managers: this host if systemd is PID 1, else a box."""
    if os.geteuid() != 0:
        pytest.skip("integration tests run as root (they act as root and as a test user)")
    if box.systemd_is_pid1():
        yield Machine(prefix=[])
        return
    was_up = box.running_box() is not None
    done = subprocess.run([ORCH, "box", "up"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    try:
        yield Machine(prefix=[ORCH, "box", "exec", "--"])
    finally:
        if not was_up:
            subprocess.run([ORCH, "box", "down"], capture_output=True, check=False)


@pytest.fixture
def test_user(machine: Machine) -> pwd.struct_passwd:
    """The non-root test user, with its user manager running (started again for every
    test: a test that reboots the box leaves none)."""
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        pytest.fail(f"test user {TEST_USER} is missing: `make setup` creates it")
    start_user_manager(machine, entry)
    return entry


def start_user_manager(machine: Machine, entry: pwd.struct_passwd) -> None:
    """Make USER linger, as a server that runs agents unattended has its users do (orch
    warns on a user spawn otherwise: tests/integration/test_linger.py), and start their
    manager now (lingering starts it at boot; a test that reboots the box needs it now)."""
    machine.sh(f"loginctl enable-linger {entry.pw_name} && "
               f"systemctl start user@{entry.pw_uid}.service")


@dataclass
class Orch:
    """orch as one caller sees it: a scope, a user, and a private state directory."""

    machine: Machine
    scope: str
    user: str | None
    uid: int
    state_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {"ORCH_STATE_DIR": str(self.state_dir), "PATH": f"{VENV_BIN}:/usr/bin:/bin"}
        if self.user is not None:
            env["XDG_RUNTIME_DIR"] = f"/run/user/{self.uid}"
            env["HOME"] = pwd.getpwuid(self.uid).pw_dir
        return {**env, **self.extra_env}

    def __call__(self, *args: str, timeout: float = 120.0,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `orch ARGS` as this caller."""
        return self.machine.run([ORCH, *args], user=self.user, env={**self.env, **(env or {})},
                                timeout=timeout)

    def ok(self, *args: str) -> str:
        """Run `orch ARGS`, insist on success and a clean stderr-free traceback; stdout."""
        done = self(*args)
        assert done.returncode == 0, f"orch {' '.join(args)}: {done.stderr}"
        assert "Traceback" not in done.stderr
        return done.stdout

    def spawn(self, *argv: str, opts: Sequence[str] = ()) -> str:
        """Spawn ARGV; the new session's id."""
        return self.ok("spawn", *opts, "--", *argv).strip()

    def show(self, ref: str) -> dict[str, Any]:
        """`orch show --json REF`."""
        data: dict[str, Any] = json.loads(self.ok("show", "--json", ref))
        return data

    def ps(self, *opts: str) -> list[dict[str, Any]]:
        """`orch ps --json`."""
        data: list[dict[str, Any]] = json.loads(self.ok("ps", "--json", *opts))
        return data

    def systemctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """systemctl against this caller's manager (test plumbing, not the product)."""
        scope = ["--user"] if self.scope == "user" else []
        return self.machine.run(["systemctl", *scope, *args], user=self.user, env=self.env)

    def owned_file(self, name: str, text: str = "") -> Path:
        """A file beside the state directory, holding TEXT, owned by this caller (for its
        sessions and hooks to write)."""
        path = self.state_dir.parent / name
        path.write_text(text)
        os.chown(path, self.uid, self.uid)
        return path

    def use_config(self, body: str) -> Path:
        """A configuration file of BODY that orch (and the sessions' hooks) read."""
        path = self.owned_file("config.toml", body)
        self.extra_env["ORCH_CONFIG"] = str(path)
        return path

    def logs_text(self, ref: str) -> str:
        """The session's output lines (`orch logs -o cat`)."""
        return self.ok("logs", "-o", "cat", ref)

    def state_text(self) -> str:
        """What orch's state files hold, as text: the snapshot and its log."""
        files = (self.state_dir / state.STATE_FILE, self.state_dir / state.LOG_FILE)
        return "".join(path.read_text() for path in files if path.exists())

    def records(self) -> list[Record]:
        """The session records, read as orch reads them (none if there is no state)."""
        try:
            return list(state.StateStore(self.state_dir).load().values())
        except OrchError:
            return []

    @contextmanager
    def read_only_state(self) -> Iterator[None]:
        """While in it, orch can read its records but not change them: no new snapshot
        (a file in the directory) and no append to the log."""
        log = self.state_dir / state.LOG_FILE
        self.state_dir.chmod(0o500)
        log.chmod(0o400)
        try:
            yield
        finally:
            log.chmod(0o600)
            self.state_dir.chmod(0o700)

    def edit_records(self, edit: Callable[[list[dict[str, Any]]], None]) -> None:
        """Change the records behind orch's back, as a hand edit would: EDIT gets them
        as JSON; the log is folded into the snapshot, and both are rewritten in place,
        so that they keep their owner."""
        docs = [record.to_json() for record in self.records()]
        edit(docs)
        snapshot = self.state_dir / state.STATE_FILE
        generation = json.loads(snapshot.read_text()).get("generation", 0)
        snapshot.write_text(json.dumps({"version": state.SCHEMA_VERSION,
                                        "generation": generation, "sessions": docs}))
        (self.state_dir / state.LOG_FILE).write_bytes(state.log_header(generation))


def _state_dir(owner: int) -> Path:
    WORK_ROOT.mkdir(mode=0o755, exist_ok=True)
    os.chmod(WORK_ROOT, 0o755)
    path = WORK_ROOT / uuid.uuid4().hex[:12]
    path.mkdir(mode=0o700)
    os.chown(path, owner, owner)
    return path / "state"


def _stop_all(orch: Orch) -> None:
    """End every unit this test started, by the units its records name."""
    records = orch.records()
    units = [record.unit for record in records]
    # A session waiting on others (--after) has a path unit of the same stem that would
    # otherwise keep waiting, and keep its service loaded, in the managers later tests use.
    units += [u.removesuffix(".service") + ".path" for u in units if u.endswith(".service")]
    # One waiting out a usage limit has a timer that would wake it later, and its service.
    timers = [wake_unit(record.id, "*") for record in records]
    units += [*timers, *(t.removesuffix(".timer") + ".service" for t in timers)]
    if units:
        orch.systemctl("stop", "--no-block", *units)


@pytest.fixture(params=["system", "user"])
def orch(request: pytest.FixtureRequest, machine: Machine) -> Iterator[Orch]:
    """orch as root on the system manager, and as the test user on its own manager."""
    if request.param == "system":
        caller = Orch(machine, "system", None, 0, _state_dir(0))
    else:
        entry = request.getfixturevalue("test_user")
        caller = Orch(machine, "user", entry.pw_name, entry.pw_uid, _state_dir(entry.pw_uid))
    yield caller
    _stop_all(caller)
    shutil.rmtree(caller.state_dir.parent, ignore_errors=True)


@pytest.fixture
def root_orch(machine: Machine) -> Iterator[Orch]:
    """orch as root on the system manager only."""
    caller = Orch(machine, "system", None, 0, _state_dir(0))
    yield caller
    _stop_all(caller)
    shutil.rmtree(caller.state_dir.parent, ignore_errors=True)


@pytest.fixture
def user_orch(machine: Machine, test_user: pwd.struct_passwd) -> Iterator[Orch]:
    """orch as the non-root test user on its own manager only."""
    caller = Orch(machine, "user", test_user.pw_name, test_user.pw_uid,
                  _state_dir(test_user.pw_uid))
    yield caller
    _stop_all(caller)
    shutil.rmtree(caller.state_dir.parent, ignore_errors=True)
