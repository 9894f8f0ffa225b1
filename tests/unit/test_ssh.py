"""orch.ssh, the one place ssh runs: its command lines and its one wording of failures,
against a stand-in `ssh` on PATH that runs the remote command in a local shell (the
real transport is tested against real sshd in tests/remote)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from pathlib import Path

import pytest

from orch import remote, ssh
from orch.errors import OrchError
from orch.hosts import Address, Host
from orch.scope import Scope

HOST = Host("h1", Address("h1", "me", 2200))


def _runs(log: Path) -> list[list[str]]:
    return [run.splitlines() for run in log.read_text().split("\n\n") if run]


def test_every_command_line_carries_the_same_options(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(Scope, "default", classmethod(lambda cls: Scope.USER))
    monkeypatch.setenv("ORCH_SSH_CONFIG", "/etc/fleet/ssh_config")
    monkeypatch.setenv("ORCH_SSH_PERSIST", "90s")
    options = ssh.options(timeout=7.4)
    assert options == ["-o", "BatchMode=yes", "-o", "ConnectTimeout=7",
                       "-F", "/etc/fleet/ssh_config",
                       "-o", "ControlMaster=auto", "-o", f"ControlPath={tmp_path}/orch-ssh/%C",
                       "-o", "ControlPersist=90"]
    command = ssh.command_argv(HOST.address, ["echo", "a b"], timeout=7.4)
    assert command == ["ssh", "-x", "-T", *options, "-p", "2200", "--", "me@h1", "echo 'a b'"]
    bus = ssh.bus_address(HOST.address, user=False, timeout=7.4).decode()
    assert bus.count("ControlPersist%3d90") == 1 and "ConnectTimeout%3d7" in bus
    assert ssh.options(timeout=0.2)[3] == "ConnectTimeout=1"  # ssh takes whole seconds


def test_capture_returns_the_output_of_exactly_the_words_given(fake_ssh: Path) -> None:
    words = ["printf", "%s|", "a b", "$HOME", "it's", ";", "*"]
    assert ssh.capture(HOST.address, words, timeout=5) == "a b|$HOME|it's|;|*|"
    [run] = _runs(fake_ssh)
    assert "BatchMode=yes" in run and run[-2:] == ["me@h1", shlex.join(words)]


@pytest.mark.parametrize(("command", "reason"), [
    ("echo 'orch: no manager' >&2; exit 3", "no manager"),  # a remote orch's own words
    ("echo 'ssh: connect to host h1 port 22: Connection refused' >&2; exit 255",
     "ssh: connect to host h1 port 22: Connection refused"),
    ("echo first >&2; echo '  last  ' >&2; echo >&2; exit 1", "last"),
    ("exit 255", "ssh exited with status 255"),
    ("exit 4", "exit status 4"),
])
def test_a_failure_is_its_last_word_in_one_line(fake_ssh: Path, command: str,
                                                reason: str) -> None:
    with pytest.raises(ssh.Unanswered) as caught:
        ssh.capture(HOST.address, ["sh", "-c", command], timeout=5)
    assert caught.value.reason == reason
    assert ssh.check(HOST.address, timeout=5) is None  # `true` answers


def test_no_answer_in_time_and_no_ssh_at_all_are_said_too(
        fake_ssh: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ssh, "COMMAND_GRACE", 0.2)  # what it says is what it waited
    with pytest.raises(ssh.Unanswered, match=r"^no answer within 0\.5s$"):
        ssh.capture(HOST.address, ["sleep", "30"], timeout=0.3)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert ssh.check(HOST.address, timeout=5) == "cannot run ssh: No such file or directory"
    with pytest.raises(ssh.HostUnreachable) as caught:
        remote.run(HOST, ["ps"])
    assert caught.value.exit_code == 3
    assert caught.value.message == ("cannot reach host h1 over ssh: "
                                    "cannot run ssh: No such file or directory")


def test_run_passes_the_status_through_and_names_a_lost_connection(
        fake_ssh: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert ssh.run(HOST, ["sh", "-c", "echo out; exit 7"]) == 7
    assert capfd.readouterr().out == "out\n"
    with pytest.raises(ssh.HostUnreachable,
                       match=r"^lost the ssh connection to host h1, or orch there was killed$"):
        ssh.run(HOST, ["sh", "-c", "exit 255"])
    with pytest.raises(OrchError) as caught:  # the remote shell has no such command
        remote.run(Host("h1", HOST.address, orch="no-such-orch"), ["ps"])
    assert caught.value.exit_code == 1
    assert caught.value.message == "host h1 has no `no-such-orch` to run"
    assert caught.value.hint == "install orch there, or set hosts.h1.orch to its path"
    with pytest.raises(OrchError) as caught:  # an address no [hosts.NAME] names: no such key
        remote.run(Host(str(HOST.address), HOST.address, orch="no-such-orch"), ["ps"])
    assert caught.value.hint is not None and "[hosts.NAME]" in caught.value.hint


def test_close_master_asks_the_shared_connection_to_end(
        fake_ssh: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    monkeypatch.setenv("ORCH_SSH_CONFIG", "/etc/fleet/ssh_config")
    ssh.close_master(HOST.address)
    [run] = _runs(fake_ssh)
    assert run == ["-F", "/etc/fleet/ssh_config",
                   "-o", f"ControlPath={tmp_path}/run/orch-ssh/%C", "-O", "exit",
                   "-p", "2200", "--", "me@h1"]


def test_a_host_listing_is_its_answer_or_the_reason_it_has_none(fake_ssh: Path) -> None:
    host = Host("h1", Address("h1"), orch="printf")  # `printf ps --json`: not JSON
    [listing] = remote.list_all([host], [], timeout=5)
    assert listing.problem is not None and listing.problem.startswith("unreadable answer")
    failing = Host("h2", Address("h2"), orch="false")
    [listing] = remote.list_all([failing], [], timeout=5)
    assert listing == remote.Listing("h2", [], "exit status 1")
    good = remote.parse_listing("h1", '[{"id": "x"}]')
    assert good == remote.Listing("h1", [{"id": "x", "host": "h1"}])


def test_stream_hands_over_each_line_as_it_comes_and_the_status(fake_ssh: Path,
                                                                tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    # The second line is written only once the first has been handed over.
    script = (f"echo 'one two'; i=0; while [ ! -e {gate} ] && [ $i -lt 1000 ]; "
              "do sleep 0.01; i=$((i + 1)); done; "
              "printf 'three\\nno newline'; echo 'said' >&2; exit 1")
    lines: list[str] = []

    def line(text: str) -> None:
        lines.append(text)
        gate.touch()

    assert ssh.stream(HOST.address, ["sh", "-c", script], line, lambda: False,
                      done=(0, 1)) == 1
    assert lines == ["one two", "three", "no newline"]
    [run] = _runs(fake_ssh)
    assert "BatchMode=yes" in run and run[-1] == shlex.join(["sh", "-c", script])


def test_stream_refuses_a_status_it_was_not_told_to_expect(fake_ssh: Path) -> None:
    with pytest.raises(ssh.Unanswered) as caught:
        ssh.stream(HOST.address, ["sh", "-c", "echo out; echo 'orch: no session x' >&2; "
                                  "exit 4"], lambda text: None, lambda: False)
    assert caught.value.reason == "no session x"
    with pytest.raises(ssh.Unanswered, match=r"^ssh exited with status 255$"):
        ssh.stream(HOST.address, ["sh", "-c", "exit 255"], lambda text: None, lambda: False)


def test_a_stream_that_says_much_on_stderr_does_not_stall(fake_ssh: Path) -> None:
    script = "head -c 300000 /dev/zero | tr '\\0' x >&2; echo done"  # beyond a pipe's 64 KiB
    lines: list[str] = []
    assert ssh.stream(HOST.address, ["sh", "-c", script], lines.append, lambda: False) == 0
    assert lines == ["done"]


def test_a_stopped_stream_ends_its_ssh(fake_ssh: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # The fake ssh execs the remote shell, which execs this one, which execs sleep: one
    # process, with ssh's PID.
    script = f"echo $$ > {pid_file}; echo started; exec sleep 300"
    lines: list[str] = []
    try:
        assert ssh.stream(HOST.address, ["exec", "sh", "-c", script], lines.append,
                          lambda: bool(lines)) is None
        assert lines == ["started"]
        with pytest.raises(ProcessLookupError):  # ended and reaped, not left running
            os.kill(int(pid_file.read_text()), 0)
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError, FileNotFoundError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)  # ours, if left
