"""The entry point's words on the command line itself: a usage error is one line, and a
command line that names no command gets the help as it reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# As the command runs here, not forwarded into a box (as root's session commands are
# where one runs): these are the command line's own words.
HERE = {**os.environ, "ORCH_IN_BOX": "1"}


def orch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orch", *args], capture_output=True,
                          text=True, env=HERE, check=False, timeout=60)


@pytest.mark.parametrize("args", [[], ["config"], ["schedule"], ["units"], ["box"]])
def test_a_group_without_its_command_prints_its_help_on_stderr(args: list[str]) -> None:
    done = orch(*args)
    assert done.returncode == 2 and done.stdout == ""
    # Before, the help was squashed into one line: "orch: Usage: orch [OPTIONS] ...".
    assert done.stderr.startswith(f"Usage: {' '.join(['orch', *args])} [OPTIONS] COMMAND")
    assert "\nCommands:\n" in done.stderr


def test_a_usage_error_is_one_line_that_points_to_the_help() -> None:
    done = orch("ps", "--no-such-option")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("orch: No such option: --no-such-option")
    assert done.stderr.endswith("(see `orch ps --help`)\n")


def test_a_negative_value_taken_for_an_option_is_told_how_to_give_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "orch", "config", "set", "spawn.nice", "-5"],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "ORCH_CONFIG": str(tmp_path / "config.toml")})
    # Before, only "see `orch config set --help`", which does not say it.
    assert (done.returncode, done.stderr) == (
        2, "orch: No such option: -5 (a negative value goes after --: `-- -5`)\n")
    assert not (tmp_path / "config.toml").exists()


def test_a_result_given_twice_is_bad_usage(tmp_path: Path) -> None:
    given = tmp_path / "result"
    given.write_text("from the file\n")
    done = orch("kill", "nosuch", "inline", "--file", str(given))
    assert (done.returncode, done.stderr) == (
        2, "orch: give the result as an argument or with --file, not both\n")  # was exit 1


@pytest.mark.parametrize("interval", ["nan", "inf", "1e400", "0", "-1", "86401"])
def test_a_top_interval_that_is_no_number_of_seconds_is_bad_usage(interval: str) -> None:
    done = orch("top", "-i", interval)  # NaN and infinity were an internal error (exit 70)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "orch: --interval must be more than 0 and at most 86400 (seconds)\n"


def test_what_an_error_quotes_never_reaches_the_terminal_as_a_command(tmp_path: Path) -> None:
    escape = "\x1b[31mRED"  # before, a path or program given reached the terminal raw
    for args in (["spawn", "--cwd", escape, "--", "true"], ["spawn", "--", escape]):
        done = orch(*args)
        assert done.returncode != 0 and done.stderr.count("\n") == 1, done.stderr
        assert "\x1b" not in done.stderr and "\\x1b[31mRED" in done.stderr


@pytest.mark.parametrize("value", ["5.0", "1_0", " 5", "abc"])
def test_an_integer_flag_takes_what_the_config_file_takes(value: str, tmp_path: Path) -> None:
    # The command line's int parser took "1_0" (as 10), " 5" and "5.0", which `config
    # set spawn.nice` refuses, and refused "abc" in other words than the file's.
    env = {**HERE, "ORCH_CONFIG": str(tmp_path / "config.toml")}
    flag = subprocess.run([sys.executable, "-m", "orch", "spawn", "--nice", value, "--",
                           "/nonexistent"], capture_output=True, text=True, env=env,
                          check=False, timeout=60)
    setting = subprocess.run([sys.executable, "-m", "orch", "config", "set", "spawn.nice",
                              value], capture_output=True, text=True, env=env, check=False,
                             timeout=60)
    assert flag.returncode == setting.returncode == 2
    assert flag.stderr == f'orch: --nice: expected an integer from -20 to 19, got "{value}"\n'
    assert setting.stderr.startswith(f'orch: spawn.nice: expected an integer from -20 to 19, '
                                     f'got "{value}"')


def test_debug_after_the_command_is_no_option_of_it_and_shows_no_trace() -> None:
    done = orch("ps", "--debug")  # before: a traceback, then "No such option: --debug"
    assert done.returncode == 2
    assert done.stderr == "orch: No such option: --debug (see `orch ps --help`)\n"
    shown = orch("--debug", "ps", "--no-such-option")  # before the command: a trace
    assert shown.returncode == 2 and "Traceback" in shown.stderr


def test_ctrl_c_ends_a_follow_of_the_events_with_sigints_status(tmp_path: Path) -> None:
    import signal

    from tests.waiting import wait_for

    env = {**HERE, "ORCH_STATE_DIR": str(tmp_path / "state")}
    follower = subprocess.Popen([sys.executable, "-m", "orch", "events", "-f"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def watching() -> bool:  # its inotify watch is set: it follows
            fds = Path(f"/proc/{follower.pid}/fd")
            return any(os.readlink(fd) == "anon_inode:inotify" for fd in fds.iterdir())

        wait_for(watching, 30, "the follower to follow")
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()  # ours, by its PID
            follower.wait()
    assert (follower.returncode, err) == (130, "")  # it was 0, as if it had ended well


@pytest.mark.parametrize(("args", "said"), [
    # An empty value read as none: every session listed as none, the whole log shown.
    (["ps", "--tag", ""], "orch: --tag '': expected a string of 1 to 64 characters, with "
                          "no commas or control characters\n"),
    (["logs", "some-session", "--after-cursor", ""],
     "orch: --after-cursor: not a cursor of this journal (it is empty)\n"),
])
def test_an_empty_value_is_refused_not_read_as_none(args: list[str], said: str,
                                                    tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "orch", *args], capture_output=True,
                          text=True, env={**HERE, "ORCH_STATE_DIR": str(tmp_path)},
                          check=False, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", said)


def test_result_all_names_a_session_with_no_result_as_result_does(tmp_path: Path) -> None:
    from orch.session import Record
    from orch.state import StateStore

    record = Record(id="5e5e0000-0000-4000-8000-000000000000", name="quiet",
                    unit="orch-quiet-5e5e0000.service", scope="user", argv=["true"], cwd="/",
                    created_at="2026-12-07T00:00:00+00:00")
    StateStore(tmp_path).update(lambda s: s.__setitem__(record.id, record))
    done = subprocess.run([sys.executable, "-m", "orch", "result", "--all", "quiet"],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={**HERE, "ORCH_STATE_DIR": str(tmp_path)})
    # Before: "session quiet has no result", as typed, where result says id and name.
    assert (done.returncode, done.stderr) == (1, "orch: session 5e5e0000 (quiet) has no "
                                                 "result\n")
