"""Remote hosts as pure logic: addresses, the fleet, the ssh and D-Bus argv, the
command-line split, the placement choice and the table. The transport itself is
tested against real sshd and systemd in tests/remote."""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import unquote

import pytest

from orch import config, hostcli, hosts, memory, remote, ssh
from orch.errors import UsageError
from orch.hosts import Address, Host, parse_address
from orch.render import hosts_table
from orch.scope import Scope


@pytest.mark.parametrize(("text", "expected"), [
    ("h1", Address("h1")),
    ("root@10.0.0.2", Address("10.0.0.2", "root")),
    ("deploy@build-3.example.org:2222", Address("build-3.example.org", "deploy", 2222)),
    ("[::1]", Address("::1")),
    ("me@[fe80::1%eth0]:22", Address("fe80::1%eth0", "me", 22)),
])
def test_addresses_parse(text: str, expected: Address) -> None:
    assert parse_address(text) == expected
    assert parse_address(str(expected)) == expected  # str() writes what parses back


@pytest.mark.parametrize("text", [
    "", "-oProxyCommand=x", "h1:0", "h1:65536", "h1:22x", "a b", "h;rm", "$(x)", "@h1",
    "-u@h1", "u@", "[::1", "[::1]x", "[host]", "h1:", "x" * 300, "h1..x", "-h",
])
def test_bad_addresses_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_address(text)
    assert "\n" not in caught.value.message
    assert caught.value.message.startswith("host address ")


def test_ssh_argv_quotes_every_word_and_keeps_host_key_checking(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("ORCH_SSH_CONFIG", "/etc/fleet/ssh_config")
    monkeypatch.setattr(Scope, "default", classmethod(lambda cls: Scope.USER))
    words = ["orch", "spawn", "--", "sh", "-c", "echo $HOME; rm -rf / # '\""]
    argv = ssh.command_argv(Address("h1", "me", 2200), words, timeout=7)
    assert argv[0] == "ssh"
    assert argv[argv.index("-p") + 1] == "2200"
    assert argv[argv.index("--") + 1] == "me@h1"
    assert shlex.split(argv[-1]) == words  # the remote shell sees exactly these words
    joined = " ".join(argv).lower()
    assert "stricthostkeychecking" not in joined and "userknownhostsfile" not in joined
    assert "BatchMode=yes" in argv and "ConnectTimeout=7" in argv
    assert argv[argv.index("-F") + 1] == "/etc/fleet/ssh_config"
    control = tmp_path / "orch-ssh"
    assert f"ControlPath={control}/%C" in argv
    assert control.stat().st_mode & 0o777 == 0o700


def test_no_shared_connection_in_a_directory_others_can_enter(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(Scope, "default", classmethod(lambda cls: Scope.USER))
    (tmp_path / "orch-ssh").mkdir(mode=0o777)
    (tmp_path / "orch-ssh").chmod(0o777)
    assert not any(word.startswith("ControlPath") for word in ssh.options())
    monkeypatch.setenv("ORCH_SSH_PERSIST", "no")
    (tmp_path / "orch-ssh").chmod(0o700)
    assert not any(word.startswith("ControlPath") for word in ssh.options())


def test_bus_address_is_sd_bus_unixexec_with_escaped_values(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("ORCH_SSH_PERSIST", "no")
    system = ssh.bus_address(Address("10.231.1.2", "root", 2222), user=False, timeout=5)
    user = ssh.bus_address(Address("h1"), user=True, timeout=5).decode()
    text = system.decode()
    assert text.startswith("unixexec:path=ssh,argv1=-x,argv2=-T,")
    assert "BatchMode%3dyes" in text and "root%4010.231.1.2" in text
    assert text.endswith("argv" + str(text.count(",")) + "=systemd-stdio-bridge")
    remote_command = unquote(user.rsplit("=", 1)[1])
    assert shlex.split(remote_command)[:2] == ["sh", "-c"]
    assert shlex.split(remote_command)[2].endswith("exec systemd-stdio-bridge --user")
    for part in text.split(":", 1)[1].split(","):
        _key, value = part.split("=", 1)  # no raw '=' or ',' inside a value
        assert "=" not in value and "," not in value


def test_fleet_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("ORCH_CONFIG", str(path))
    path.write_text('[hosts.h1]\naddress = "root@10.231.1.2"\nlabels = ["gpu", "big"]\n'
                    '[hosts.h2]\naddress = "h2.example:2222"\norch = "/opt/orch/bin/orch"\n')
    fleet = hosts.fleet(config.load(Scope.USER).hosts)
    assert fleet["h1"] == Host("h1", Address("10.231.1.2", "root"), ("gpu", "big"))
    assert fleet["h2"].orch == "/opt/orch/bin/orch" and fleet["h2"].address.port == 2222
    assert [h.name for h in hosts.matching(fleet, "gpu")] == ["h1"]
    assert [h.name for h in hosts.matching(fleet, None)] == ["h1", "h2"]
    assert hosts.resolve("h2", fleet) is fleet["h2"]
    assert hosts.resolve("me@other:23", fleet).address == Address("other", "me", 23)
    config.set_value(Scope.USER, "hosts.h3.address", "h3")
    config.set_value(Scope.USER, "hosts.h3.labels", '["gpu"]')
    assert config.get(Scope.USER, "hosts.h3.labels") == ["gpu"]
    assert ("hosts.h3.address", "h3") in config.items(Scope.USER)


@pytest.mark.parametrize(("toml", "says"), [
    ('[hosts.h1]\nlabels = ["a"]\n', "hosts.h1: no address"),
    ('[hosts.h1]\naddress = "-oProxyCommand=x"\n', "hosts.h1.address: host address"),
    ('[hosts.h1]\naddress = "h1"\nport = 22\n', "hosts.h1.port: unknown setting"),
    ('[hosts.auto]\naddress = "h1"\n', "hosts.auto: 'auto' is a word orch keeps"),
    ('[hosts.h1]\naddress = "h1"\nlabels = ["a b"]\n', "hosts.h1.labels: expected"),
])
def test_bad_fleet_config_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      toml: str, says: str) -> None:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("ORCH_CONFIG", str(path))
    path.write_text(toml)
    with pytest.raises(config.ConfigError) as caught:
        config.load(Scope.USER)
    assert says in caught.value.message and "\n" not in caught.value.message


@pytest.mark.parametrize(("args", "host", "label", "rest"), [
    (["--host", "h1", "ps"], "h1", None, ["ps"]),
    (["ps", "--host=h1", "--json"], "h1", None, ["ps", "--json"]),
    (["logs", "abcd", "--host", "u@h:2", "-f"], "u@h:2", None, ["logs", "abcd", "-f"]),
    (["spawn", "--label", "gpu", "--name", "--host", "--", "x", "--host", "y"], None, "gpu",
     ["spawn", "--name", "--host", "--", "x", "--host", "y"]),
    (["spawn", "--host", "auto", "sleep", "--host", "9"], "auto", None,
     ["spawn", "sleep", "--host", "9"]),
    (["--debug", "stop", "x"], None, None, ["--debug", "stop", "x"]),
    (["--host", "h1", "ps", "--host", "h1"], "h1", None, ["ps"]),  # the same twice: one
])
def test_split_takes_out_host_options_only(args: list[str], host: str | None,
                                           label: str | None, rest: list[str]) -> None:
    found = hostcli.split(args)
    assert (found.host, found.label, found.args) == (host, label, rest)


def test_split_refuses_a_missing_value() -> None:
    with pytest.raises(UsageError):
        hostcli.split(["ps", "--host"])


@pytest.mark.parametrize(("args", "says"), [
    (["--host", "auto", "ps"], "only `orch spawn`"),
    (["--label", "gpu", "stop", "x"], "only `orch spawn`"),
    (["box", "status", "--host", "h1"], "do not apply to `orch box`"),
    (["ps", "--all-hosts", "--host", "h1"], "--all-hosts lists every host"),
    (["--host", "h1", "--label", "gpu", "spawn", "--", "x"], "--label chooses the host"),
    (["--host", "local", "ps"], "leave out --host"),
    (["--host", "h1"], "--host and --label go with a command"),  # it read "`orch `"
    # Twice, and not the same: before, the last won, whichever was meant.
    (["--host", "h1", "ps", "--host=h2"], "--host given twice (h1, h2)"),
    (["spawn", "--label", "gpu", "--label", "cpu", "--", "x"], "--label given twice"),
])
def test_host_options_misused_are_one_line(args: list[str], says: str,
                                           monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("ORCH_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(UsageError) as caught:
        hostcli.run(args)
    assert says in caught.value.message


def test_a_label_sets_orch_host_aside_and_the_placement_names_the_host(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # ORCH_HOST is a default: before, with it set, --label was refused as if --host had
    # been given. The placement recorded named why, not where.
    monkeypatch.setenv("ORCH_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("ORCH_HOST", "h1")
    ran: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(remote, "place", lambda candidates, scope, label: (
        _host("h2", "gpu"), "auto (label gpu): most free memory, 3.0G", []))
    monkeypatch.setattr(remote, "run", lambda host, args, **_: ran.append((host.name, args))
                        or 0)
    assert hostcli.run(["spawn", "--label", "gpu", "--", "x"]) == 0
    assert ran == [("h2", ["spawn", "--placement",
                           "h2 (auto (label gpu): most free memory, 3.0G)", "--", "x"])]


def test_no_host_named_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_HOST", raising=False)
    assert hostcli.run(["ps", "--json"]) is None
    monkeypatch.setenv("ORCH_HOST", "h1")
    assert hostcli.run(["box", "status"]) is None  # ORCH_HOST does not send the box away
    assert hostcli.run(["--help"]) is None


def _host(name: str, *labels: str) -> Host:
    return Host(name, Address(name), labels)


def test_place_takes_the_most_free_memory_and_says_why() -> None:
    free = {"h1": 1 << 30, "h2": 3 << 30, "h3": None}

    def reader(host: Host, scope: Scope | None, timeout: float) -> remote.Reading:
        value = free[host.name]
        if value is None:
            return remote.Reading(host, problem="Connection refused")
        return remote.Reading(host, free_bytes=value)

    chosen, words, readings = remote.place([_host("h1"), _host("h2"), _host("h3")], None,
                                           None, reader=reader)
    assert chosen.name == "h2" and len(readings) == 3
    assert words == "auto: most free memory, 3.0G; h1 1.0G free, h3: Connection refused"
    free["h1"] = 3 << 30  # a tie goes to the first by name
    assert remote.place([_host("h1"), _host("h2")], None, None, reader=reader)[0].name == "h1"
    free["h1"] = free["h2"] = None
    with pytest.raises(remote.HostUnreachable, match="no host in the fleet answered"):
        remote.place([_host("h1"), _host("h2")], None, None, reader=reader)
    with pytest.raises(UsageError, match="no host with label 'gpu'"):
        remote.place([], None, "gpu", reader=reader)


def test_meminfo_available() -> None:
    text = "MemTotal:  2000 kB\nMemFree: 10 kB\nMemAvailable:    1500 kB\n"
    assert memory.meminfo_available(text) == 1500 * 1024
    assert memory.meminfo_available("MemTotal: 1 kB\n") is None


def test_hosts_table_has_a_host_column() -> None:
    rows = [{"host": "local", "id": "0123456789", "name": "a", "status": "running",
             "main_pid": 42, "created_at": None, "argv": ["sleep", "9 9"]},
            {"host": "h2", "id": "abcdef0123", "name": "b", "status": "exited",
             "main_pid": None, "created_at": None, "argv": []}]
    lines = hosts_table(rows).splitlines()
    assert lines[0].split() == ["HOST", "ID", "NAME", "STATUS", "PID", "MEM", "CPU",
                                  "COST", "AGE", "COMMAND"]
    assert lines[1].split()[:5] == ["local", "01234567", "a", "running", "42"]
    assert lines[1].endswith("sleep '9 9'")
    assert lines[2].split()[:5] == ["h2", "abcdef01", "b", "exited", "-"]


def test_listing_reads_each_answer_and_names_the_problem() -> None:
    good = remote.parse_listing("h1", '[{"id": "x"}]')
    assert good == remote.Listing("h1", [{"id": "x", "host": "h1"}])
    for garbage in ("{", '{"id": "x"}', '["x"]'):
        listing = remote.parse_listing("h3", garbage)
        assert listing.problem is not None and listing.problem.startswith("unreadable answer")
        assert listing.sessions == []


def test_the_local_listing_is_read_in_process_and_its_failure_is_a_problem() -> None:
    from orch.errors import ManagerUnreachable

    def unreachable() -> list[dict[str, object]]:
        raise ManagerUnreachable("no systemd manager is reachable")

    [ok] = remote.list_all([], [], local=lambda: [{"id": "a"}])
    assert ok == remote.Listing("local", [{"id": "a", "host": "local"}])
    [failed] = remote.list_all([], [], local=unreachable)
    assert failed == remote.Listing("local", [], "no systemd manager is reachable")
    assert remote.list_all([], []) == []


def test_top_follows_each_host_apart_a_silent_one_holds_up_no_other(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, every refresh waited for the slowest host (its timeout): keys stalled, the
    # screen stayed blank, and a host that never answered was never named.
    import threading

    from tests.waiting import wait_for

    release = threading.Event()

    def list_all(fleet: list[Host], ps_args: list[str]) -> list[remote.Listing]:
        [host] = fleet
        if host.name == "slow":
            release.wait(30)
            return [remote.Listing("slow", [{"id": "s1", "host": "slow"}])]
        if host.name == "down":
            return [remote.Listing("down", [], "ssh: connect to host down: refused")]
        return [remote.Listing(host.name, [{"id": "f1", "host": host.name}])]

    monkeypatch.setattr(remote, "list_all", list_all)
    fleet = [Host(name, parse_address(f"{name}.example"))
             for name in ("fast", "slow", "down")]
    following = remote.Following(fleet, [])
    assert following.sessions() == []  # the first look: readings start, nothing waits
    wait_for(lambda: following.sessions() == [{"id": "f1", "host": "fast"}], 10,
             "the fast host's sessions while the slow one is still read")
    wait_for(following.news, 10, "the silent host named")
    assert following.news() == []  # once
    release.set()
    wait_for(lambda: {"id": "s1", "host": "slow"} in following.sessions(), 10,
             "the slow host's sessions once it answers")


def test_ps_all_hosts_lists_newest_first_whatever_the_host(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # They came grouped by host, local first, where ps --help says newest first.
    import json

    from orch import commands

    def session(name: str, created: str, host: str) -> dict[str, object]:
        return {"id": name * 8, "name": name, "created_at": created, "host": host}

    monkeypatch.setenv("ORCH_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setattr(remote, "list_all", lambda hosts, args, local=None: [
        remote.Listing("local", [session("a", "2026-12-07T10:00:00.000000+00:00", "local")]),
        remote.Listing("h1", [session("b", "2026-12-07T11:00:00.000000+00:00", "h1"),
                              session("c", "2026-12-07T09:00:00.000000+00:00", "h1")])])
    assert commands.ps_all_hosts(False, [], False, False, as_json=True) == 0
    assert [s["name"] for s in json.loads(capsys.readouterr().out)] == ["b", "a", "c"]


def test_attach_or_top_on_a_host_asks_ssh_for_a_terminal_only_on_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Off a terminal, ssh -t said it could not allocate one, before the orch there refused.
    monkeypatch.setenv("ORCH_CONFIG", str(tmp_path / "none.toml"))
    asked: list[bool] = []
    monkeypatch.setattr(remote, "run", lambda host, args, terminal=False: asked.append(
        terminal) or 0)
    for tty in (False, True):
        monkeypatch.setattr(hostcli.os, "isatty", lambda fd, tty=tty: tty)
        assert hostcli.run(["--host", "h1", "top"]) == 0
        assert hostcli.run(["--host", "h1", "ps"]) == 0
    assert asked == [False, False, True, False]
