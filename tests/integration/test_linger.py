"""Lingering: a user-scope spawn warns in one line when logind says the caller does not
linger (their sessions end with their last login, and do not come back at boot), and
says nothing when they do. The session starts either way.

The caller here is root on root's own user manager (`--user`): `loginctl disable-linger`
makes logind stop that user's manager, which no other test uses, whereas the test user's
manager serves every other user-scope test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from orch.spawn_warnings import linger_warning
from tests.integration.conftest import Machine, Orch, _state_dir, _stop_all
from tests.waiting import wait_for


@pytest.fixture
def root_user(machine: Machine) -> Iterator[Orch]:
    """orch as root on root's user manager, which runs without lingering to begin with."""
    machine.sh("loginctl disable-linger root; systemctl start user@0.service")
    caller = Orch(machine, "user", None, 0, _state_dir(0),
                  extra_env={"XDG_RUNTIME_DIR": "/run/user/0", "ORCH_SCOPE": "user"})
    yield caller
    _stop_all(caller)
    machine.sh("loginctl disable-linger root; systemctl stop user@0.service")
    shutil.rmtree(caller.state_dir.parent, ignore_errors=True)


def _spawn(orch: Orch, *opts: str) -> tuple[str, str]:
    """Spawn a sleeper; its id and what orch said on stderr. It must run."""
    done = orch("spawn", *opts, "--", "sleep", "300")
    assert done.returncode == 0, done.stderr
    sid = done.stdout.strip()
    wait_for(lambda: orch.show(sid)["status"] == "running", what="the session to run")
    return sid, done.stderr


def test_a_user_spawn_warns_when_lingering_is_off(root_user: Orch) -> None:
    _, said = _spawn(root_user)
    assert said == linger_warning("root", persistent=False) + "\n"
    assert said.startswith("orch: warning: lingering is off for root: ")
    assert said.rstrip().endswith("loginctl enable-linger root")
    _, said = _spawn(root_user, "--persistent")
    assert said == linger_warning("root", persistent=True) + "\n"
    assert "after a reboot this --persistent session comes back only when root logs in" in said


def test_a_user_spawn_says_nothing_when_lingering_is_on(root_user: Orch,
                                                        machine: Machine) -> None:
    machine.sh("loginctl enable-linger root")
    for opts in ((), ("--persistent",)):
        _, said = _spawn(root_user, *opts)
        assert said == ""


def test_a_system_spawn_never_warns(root_orch: Orch) -> None:
    _, said = _spawn(root_orch, "--persistent")
    assert said == ""
