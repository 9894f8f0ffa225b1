"""Schedules' unit files: what they say, read back exactly, and the spawn they run read
back by orch spawn's own parser as the options given (tests/integration/test_schedules.py
proves them against real managers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch import fastcli, schedules
from orch.commandline import spawn_words
from orch.errors import UsageError
from orch.schedules import Schedule
from orch.scope import Scope

ARGS = ["--provider=claude", "--tag=a", "--tag=b c", "--memory-max=2G", "--auto-approve",
        "--", "Fix the $HOME 100% \"now\"\nplease"]


def test_the_units_say_when_and_what_and_read_back_exactly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/home/u/.local/bin:/usr/bin")
    schedule = Schedule("nightly", "Mon..Fri 02:00", ARGS, overlap=False)
    texts = schedules.render(schedule, Scope.USER, "/opt/orch bin/orch")
    timer = texts["orch-schedule-nightly.timer"]
    assert "OnCalendar=Mon..Fri 02:00\nPersistent=true\n" in timer
    assert "WantedBy=timers.target" in timer
    service = texts["orch-schedule-nightly.service"]
    assert "Type=oneshot" in service
    # Its runs find programs on the PATH it was added with, not the manager's.
    [path] = [line for line in service.splitlines() if line.startswith("Environment=PATH=")]
    assert path.endswith(":/home/u/.local/bin:/usr/bin")
    exec_line = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    # systemd expands $ and % there: both doubled; a word with blanks quoted.
    assert exec_line.startswith('ExecStart="/opt/orch bin/orch" schedule fire --user nightly '
                                '--provider=claude ')
    assert "$$HOME 100%%" in exec_line and "\\n" in exec_line
    empty = schedules.render(Schedule("e", "daily", ["--", "printf", "%s|", "a", "", "b"]),
                             Scope.USER, "/usr/bin/orch")["orch-schedule-e.service"]
    assert ' -- printf %%s| a "" b\n' in empty  # an empty word kept: bare, it was none
    assert schedules.parse("nightly", service) == schedule
    overlapping = schedules.render(Schedule("n", "daily", ["--", "x"], overlap=True),
                                   Scope.SYSTEM, "/usr/bin/orch")["orch-schedule-n.service"]
    assert "fire --system --overlap n -- x" in overlapping
    assert schedules.parse("n", "[Service]\nExecStart=/bin/true\n") is None
    assert schedules.parse("n", "# orch-schedule {not json\n") is None


def test_a_schedule_runs_the_very_spawn_it_was_given() -> None:
    values = {"provider": "claude", "tags": ["a", "b c"], "memory_max": "2G",
              "auto_approve": True, "model": None, "sandbox": False, "name": "fixer",
              "description": "", "env": ["A=1"], "profile": None, "timeout": "1h 30min"}
    words = spawn_words(values, ["fix it"])
    parsed = fastcli.parse(["spawn", *words])
    assert parsed is not None and parsed.command is not None
    read = parsed.values
    assert (read["provider"], read["tags"], read["memory_max"], read["auto_approve"]) == (
        "claude", ["a", "b c"], "2G", True)
    assert (read["name"], read["env"], read["timeout"], read["command"]) == (
        "fixer", ["A=1"], "1h 30min", ["fix it"])
    assert read["model"] is None and read["description"] == ""
    assert "--no-sandbox" in words and read["sandbox"] is False  # over a [spawn] default
    assert read["worktree"] is None  # not given: the defaults decide


@pytest.mark.parametrize("name", ["", "a b", "x/y", "..", "a" * 65])
def test_a_bad_name_is_one_line(name: str) -> None:
    with pytest.raises(UsageError, match="expected up to 64 letters, digits, _ and -"):
        schedules.check_name(name)


def test_fire_reads_the_spawn_words_after_the_name_verbatim() -> None:
    parsed = fastcli.parse(["schedule", "fire", "--user", "nightly", *ARGS])
    assert parsed is not None and parsed.values["spawn_args"] == ARGS
    assert parsed.values["schedule"] == "nightly" and parsed.values["user"] is True


def test_json_has_every_field() -> None:
    data = Schedule("n", "daily", ["--", "x"]).to_json()
    assert data == {"name": "n", "on_calendar": "daily", "spawn_args": ["--", "x"],
                    "overlap": False, "timer": "orch-schedule-n.timer", "next_run": None,
                    "last_run": None}


def test_an_add_the_manager_fails_midway_leaves_no_files(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Before, its files stayed: the next add said it existed already, though it never ran.
    from orch import systemd
    from orch.errors import ManagerUnreachable

    directory = tmp_path

    class Gone:
        def __init__(self, scope: Scope) -> None:
            pass

        def __enter__(self) -> None:
            raise ManagerUnreachable("no user manager is running")

        def __exit__(self, *_: object) -> None:
            pass

    monkeypatch.setattr(schedules, "unit_dir", lambda scope: directory)
    monkeypatch.setattr(systemd, "Manager", Gone)
    with pytest.raises(ManagerUnreachable):
        schedules.add(Schedule("nightly", "daily", ["--", "x"]), Scope.USER, "/usr/bin/orch")
    assert list(directory.iterdir()) == []


def test_add_keeps_its_directory_and_env_files_as_absolute_paths(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Before, kept as typed: each run (started in the home directory) failed at once,
    # "--cwd work: no such directory"; and a missing env file was taken, then failed.
    from orch import fleetcli
    from orch.errors import OrchError

    (tmp_path / "work").mkdir()
    (tmp_path / "keys.env").write_text("A=1\n")
    monkeypatch.chdir(tmp_path)
    added: list[Schedule] = []
    monkeypatch.setattr(schedules, "add", lambda schedule, scope, orch: (
        added.append(schedule), schedule)[1])
    fleetcli.schedule_add("rel", ["/bin/pwd"], {"cwd": "work", "env_files": ["keys.env"]},
                          on_calendar="yearly")
    read = fastcli.parse(["spawn", *added[0].spawn_args])
    assert read is not None
    assert read.values["cwd"] == str(tmp_path / "work")
    assert read.values["env_files"] == [str(tmp_path / "keys.env")]
    with pytest.raises(OrchError, match=r"nonexistent\.env"):
        fleetcli.schedule_add("missing", ["/bin/true"], {"env_files": ["/nonexistent.env"]},
                              on_calendar="yearly")
    assert len(added) == 1
    # A session that waits for its user never ends: each run would leave one more.
    for flag, settings in (("interactive", {"interactive": True, "provider": "claude"}),
                           ("tty", {"tty": True})):
        with pytest.raises(UsageError, match=f"--{flag} is not for a schedule"):
            fleetcli.schedule_add("talk", ["hi"], settings, on_calendar="yearly")
    # The same from the config: pinned too (each run would read them again from ~).
    config = tmp_path / "config.toml"
    config.write_text('[spawn]\ncwd = "work"\nenv_files = ["keys.env"]\n')
    monkeypatch.setenv("ORCH_CONFIG", str(config))
    fleetcli.schedule_add("conf", ["/bin/pwd"], {}, on_calendar="yearly")
    read = fastcli.parse(["spawn", *added[-1].spawn_args])
    assert read is not None and read.values["cwd"] == str(tmp_path / "work")
    assert read.values["env_files"] == [str(tmp_path / "keys.env")]
    del added[-1]
    # A secret the config reads from the spawner's environment: no run would have it.
    config.write_text('[spawn]\nsecret_env = ["ANTHROPIC_API_KEY"]\n')
    monkeypatch.setenv("ORCH_CONFIG", str(config))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "set here, not in the timer's runs")
    with pytest.raises(UsageError, match="secret_env names ANTHROPIC_API_KEY"):
        fleetcli.schedule_add("secret", ["/bin/true"], {}, on_calendar="yearly")
    assert len(added) == 1
