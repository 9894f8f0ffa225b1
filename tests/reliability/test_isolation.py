"""One user kept out of another's sessions; configuration files private."""

from __future__ import annotations

import stat

from tests.integration.conftest import PYTHON, Orch

KILL_THROUGH_THEIR_MANAGER = (
    "import sys\n"
    "from orch.errors import OrchError\n"
    "from orch.scope import Scope\n"
    "from orch.systemd import Manager\n"
    "try:\n"
    "    with Manager(Scope.USER) as m:\n"
    "        m.kill(sys.argv[1], 9)\n"
    "except OrchError as err:\n"
    "    sys.exit(f'refused: {err}')\n"
)


def test_a_user_cannot_list_show_stop_or_kill_anothers_sessions(
        user_orch: Orch, other_orch: Orch) -> None:
    theirs = other_orch.spawn("sleep", "300")
    before = other_orch.show(theirs)
    # Through their state directory: closed to anyone else.
    intruder = {"ORCH_STATE_DIR": str(other_orch.state_dir)}
    for args in (["ps"], ["show", theirs], ["stop", theirs], ["kill", theirs],
                 ["reap", "--all"], ["recover"]):
        done = user_orch(*args, env=intruder)
        assert done.returncode != 0, args
        assert "permission denied" in done.stderr.lower(), (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
    # Through its own state: their session is not there.
    for args in (["show", theirs], ["stop", theirs], ["kill", theirs]):
        done = user_orch(*args)
        assert done.returncode != 0 and "no session matches" in done.stderr, (args, done.stderr)
    assert theirs not in user_orch.ok("ps", "--json")
    # Through their manager, its unit named directly: the socket is theirs alone.
    done = user_orch.machine.run(
        [PYTHON, "-c", KILL_THROUGH_THEIR_MANAGER, before["unit"]], user=user_orch.user,
        env={**user_orch.env, "XDG_RUNTIME_DIR": f"/run/user/{other_orch.uid}"})
    assert done.returncode == 1 and done.stderr.startswith("refused:"), done.stderr
    after = other_orch.show(theirs)
    assert (after["status"], after["main_pid"]) == ("running", before["main_pid"])


def test_configuration_files_are_private(user_orch: Orch, root_orch: Orch) -> None:
    home = user_orch.state_dir.parent / "config-home"
    done = user_orch("config", "set", "spawn.memory_max", "2G",
                     env={"XDG_CONFIG_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    written = home / "orch" / "config.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert written.stat().st_uid == user_orch.uid
    system_file = root_orch.state_dir.parent / "system-config.toml"
    done = root_orch("config", "set", "--system", "spawn.memory_max", "2G",
                     env={"ORCH_CONFIG": str(system_file)})
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(system_file.stat().st_mode) == 0o600
