"""Spawn options against real managers: limits, timeout, restart, sandbox, secrets,
worktrees and config defaults, as root (system) and as a user."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from tests.integration.conftest import Orch, wait_for
from tests.integration.test_after import _gate, _open

SECRET = "sk-very-secret-value-0123456789"


def _unit_props(orch: Orch, unit: str, *names: str) -> dict[str, str]:
    out = orch.systemctl("show", *(f"-p{n}" for n in names), unit).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _file(orch: Orch, name: str, text: str = "") -> Path:
    """A file of the test's own, owned by the caller the session runs as."""
    path = orch.state_dir.parent / name
    path.write_text(text)
    os.chown(path, orch.uid, orch.uid)
    return path


def _dir(orch: Orch, name: str) -> Path:
    path = orch.state_dir.parent / name
    path.mkdir()
    os.chown(path, orch.uid, orch.uid)
    return path


def test_limits_become_the_units_resource_properties(orch: Orch) -> None:
    sid = orch.spawn("sleep", "300", opts=["--memory-max", "300M", "--cpu-quota", "50%",
                                           "--tasks-max", "64", "--nice", "5"])
    props = _unit_props(orch, orch.show(sid)["unit"], "MemoryMax", "CPUQuotaPerSecUSec",
                        "TasksMax", "Nice")
    assert props == {"MemoryMax": str(300 * 1024 * 1024), "CPUQuotaPerSecUSec": "500ms",
                     "TasksMax": "64", "Nice": "5"}
    assert orch.show(sid)["options"]["memory_max"] == 300 * 1024 * 1024


def test_a_limit_the_cgroups_cannot_hold_is_warned_of(orch: Orch) -> None:
    warned: list[str] = []
    done = orch("spawn", "--memory-max", "300M", "--tasks-max", "64", "--", "sleep", "300")
    assert done.returncode == 0, done.stderr
    sid = done.stdout.strip()
    # Whether the manager put a limit on the unit's cgroup, as the kernel files say.
    cgroup = orch.systemctl("show", "-P", "ControlGroup", orch.show(sid)["unit"]).stdout.strip()
    held = {"memory": "/sys/fs/cgroup/memory{0}/memory.limit_in_bytes "
                      "/sys/fs/cgroup{0}/memory.max /sys/fs/cgroup/unified{0}/memory.max",
            "pids": "/sys/fs/cgroup/pids{0}/pids.max /sys/fs/cgroup{0}/pids.max "
                    "/sys/fs/cgroup/unified{0}/pids.max"}
    for controller, flag in (("memory", "--memory-max"), ("pids", "--tasks-max")):
        files = held[controller].format(cgroup)
        enforced = orch.machine.run(["sh", "-c", f"ls {files}"]).stdout.strip() != ""
        warning = (f"orch: warning: {flag} is not enforced: the {orch.scope} manager's "
                   f"sessions have no {controller} cgroup controller here\n")
        # Before, a user manager here took the limit without a word, and held nothing.
        assert (warning in done.stderr) is not enforced, (controller, done.stderr)
        if not enforced:
            warned.append(warning.removeprefix("orch: warning: ").strip())
    orch.ok("stop", sid)
    # The web API answers the same warnings, a header each (before, none: a 201 alone).
    from tests.integration.web import serving

    with serving(orch) as server:
        answer = server.request("POST", "/api/sessions", {
            "argv": ["sleep", "300"], "memory_max": "300M", "tasks_max": 64})
        assert answer.status == 201, answer.body
        assert [v for k, v in answer.every_header if k == "x-orch-warning"] == warned
        orch.ok("stop", answer.json()["id"])


def test_a_priority_the_user_manager_may_not_give_is_warned_of(user_orch: Orch) -> None:
    log = _file(user_orch, "nice")
    done = user_orch("spawn", "--nice", "-5", "--", "/bin/sh", "-c", f"nice > {log}")
    assert done.returncode == 0, done.stderr
    assert user_orch("wait", "--timeout", "60", done.stdout.strip()).returncode == 0
    # Before, it ran at nice 0 without a word, recorded as -5.
    assert log.read_text().strip() == "0"
    assert done.stderr == ("orch: warning: --nice -5 is not enforced: the user manager may "
                           "not raise a session's priority above nice 0\n")


def test_a_timeout_fails_the_session_with_result_timeout(orch: Orch) -> None:
    sid = orch.spawn("sleep", "300", opts=["--timeout", "1s"])
    assert orch("wait", "--timeout", "60", sid).returncode == 1
    shown = orch.show(sid)
    assert shown["status"] == "failed" and shown["result"] == "timeout"


def test_restart_on_failure_stops_at_the_start_limit(orch: Orch) -> None:
    count = _file(orch, "count")
    sid = orch.spawn("/bin/sh", "-c", f"echo run >> {count}; exit 3",
                     opts=["--restart", "on-failure"])
    assert orch("wait", "--timeout", "60", sid).returncode == 1
    assert count.read_text().count("run") == 5  # the bounded start limit
    shown = orch.show(sid)
    assert shown["status"] == "failed" and shown["restarts"] >= 1
    assert len(shown["invocations"]) == shown["restarts"] + 1
    # Each run has its start, those systemd started itself too (their exit hooks read it
    # from the manager): before, only the first had one.
    starts = [run["started_at"] for run in shown["invocations"]]
    assert all(starts) and starts == sorted(starts), starts
    assert all(run["started_at"] <= run["ended_at"] for run in shown["invocations"])
    # Its last run is its end, and told once (before: never, for any Restart= session).
    wait_for(lambda: _ended_events(orch, sid) == ["failed"], what="its one ended event")
    # Each run is told as it starts (before: a run systemd started again, never).
    assert _started_events(orch, sid) == [None, *[f"restart {n}" for n in range(1, 5)]]
    clean = orch.spawn("/bin/true", opts=["--restart", "on-failure"])  # no restart comes
    assert orch("wait", "--timeout", "60", clean).returncode == 0
    wait_for(lambda: _ended_events(orch, clean) == ["exited"], what="its ended event")


def test_a_restarting_session_stopped_outside_orch_tells_its_end(orch: Orch) -> None:
    sid = orch.spawn("sleep", "300", opts=["--restart", "always"])
    unit = orch.show(sid)["unit"]
    # A restart asked of the manager (systemctl restart) is no end: the run that comes
    # after it is the same session's.
    orch.systemctl("restart", unit)
    wait_for(lambda: orch.show(sid)["restarts"] == 1 and orch.show(sid)["status"] == "running",
             what="the restarted run")
    assert _ended_events(orch, sid) == []
    # Its start is recorded and told as it starts, the run's invocation in the record:
    # before, none was told, and `logs -f` headed it "invocation ?".
    wait_for(lambda: _started_events(orch, sid) == [None, "restart 1"], what="its start")
    [record] = [r.to_json() for r in orch.records() if r.id == sid]
    assert record["invocation_id"] == orch.show(sid)["invocations"][-1]["invocation_id"]
    assert record["invocation_id"] == orch.systemctl(
        "show", "-P", "InvocationID", unit).stdout.strip()
    # A stop asked of the manager (systemctl stop, a shutdown) ends it: Restart= does not
    # start it again, so its exit hook tells the end. Before, it told none.
    orch.systemctl("stop", unit)
    wait_for(lambda: _ended_events(orch, sid), what="its ended event")
    assert _ended_events(orch, sid) == [orch.show(sid)["status"]]
    assert orch.show(sid)["status"] in ("stopped", "exited")


def _started_events(orch: Orch, session_id: str) -> list[str | None]:
    """The details of SESSION_ID's started events, as `orch events --json` prints them."""
    found = map(json.loads, orch.ok("events", "--json", session_id).splitlines())
    return [event["detail"] for event in found if event["event"] == "started"]


def _ended_events(orch: Orch, session_id: str) -> list[str]:
    """The statuses of SESSION_ID's ended events, as `orch events --json` prints them."""
    found = map(json.loads, orch.ok("events", "--json", session_id).splitlines())
    return [event["status"] for event in found if event["event"] == "ended"]


def test_the_sandbox_lets_the_cwd_be_written_and_nothing_else(orch: Orch) -> None:
    work = _dir(orch, "work")
    home = Path(os.path.expanduser(f"~{'root' if orch.user is None else orch.user}"))
    outside = home / f"orch-sandbox-{work.parent.name}"
    sid = orch.spawn("/bin/sh", "-c", f"echo in > inside; echo out > {outside}",
                     opts=["--sandbox", "--cwd", str(work)])
    assert orch("wait", sid).returncode == 1  # the write outside was refused
    try:
        assert (work / "inside").read_text() == "in\n"
        assert not outside.exists()
        logs = orch.logs_text(sid)
        assert "Read-only file system" in logs
        assert orch.show(sid)["exit_code"] == 2  # recorded by the hook, outside the sandbox
    finally:
        outside.unlink(missing_ok=True)
    # Its own orch still acts on it (before: the state was read-only, exit 5).
    reporter = orch.spawn("/bin/sh", "-c", 'orch kill self "sandboxed result"; sleep 30',
                          opts=["--sandbox", "--cwd", str(work)])
    assert orch("wait", "--timeout", "60", reporter).returncode == 1
    assert orch.show(reporter)["final_result"] == "sandboxed result"
    # Its directory lies under /var/tmp, so /tmp is the shared one, not a private one:
    # writable, as an agent's scratch files need (before, read-only: EROFS).
    assert str(work).startswith(("/tmp/", "/var/tmp/"))
    scratch = orch.spawn("/bin/sh", "-c", 'f=$(mktemp) && echo ok > "$f" && rm "$f"',
                         opts=["--sandbox", "--cwd", str(work)])
    assert orch("wait", scratch).returncode == 0, orch.logs_text(scratch)


def test_secrets_reach_the_program_and_nowhere_else(orch: Orch) -> None:
    env_file = _file(orch, "keys.env", f"# keys\nAPI_KEY={SECRET}\nOTHER='two words'\n")
    seen = _file(orch, "seen")
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    # The program compares a digest: the secret itself must not be in its argv either.
    sid = orch.spawn("/bin/sh", "-c",
                     f'test "$(printf %s "$API_KEY" | sha256sum)" = "{digest}  -" '
                     f'&& test "$OTHER" = "two words" && echo match > {seen}; sleep 300',
                     opts=["--env-file", str(env_file)])
    since = f"@{int(time.time()) - 1}"
    wait_for(lambda: seen.read_text() == "match\n", what="the program to see its secrets")
    unit = orch.show(sid)["unit"]
    everywhere = {
        "state file": orch.state_text(),
        "unit properties": orch.systemctl("show", unit).stdout,
        "orch show": orch.ok("show", "--json", sid) + orch.ok("show", sid),
        "journal": orch.machine.run(["journalctl", "--no-pager", "-o", "json",
                                     "--since", since]).stdout,
    }
    for where, text in everywhere.items():
        assert SECRET not in text, f"the secret is in the {where}"
    assert str(env_file) in everywhere["state file"]  # the path is kept for restarts
    runtime = Path(f"/run/user/{orch.uid}" if orch.user else "/run") / "orch" / "secrets"
    leftovers = orch.machine.run(["ls", "-A", str(runtime)], user=orch.user).stdout
    assert leftovers.strip() == ""  # the manager read it; orch removed it
    # With --restart each run reads it again: kept while the session lives, and removed
    # at its end (before: left until reap).
    gate = _gate(orch, "restart")
    again = orch.spawn("/bin/sh", "-c", f'test -n "$API_KEY" && read _ < {gate}; exit 0',
                       opts=["--env-file", str(env_file), "--restart", "on-failure"])
    kept = runtime / f"{again}.env"
    assert orch.machine.run(["test", "-e", str(kept)], user=orch.user).returncode == 0
    _open(gate)
    assert orch("wait", "--timeout", "60", again).returncode == 0
    wait_for(lambda: orch.machine.run(["test", "-e", str(kept)], user=orch.user).returncode,
             what="its secrets file to go at its end")


def test_a_worktree_per_session_kept_until_reaped(orch: Orch) -> None:
    repo = _dir(orch, "repo")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    orch.machine.run([*git, "-C", str(repo), "init", "-q"], user=orch.user)
    (repo / "README").write_text("hello\n")
    os.chown(repo / "README", orch.uid, orch.uid)
    orch.machine.run([*git, "-C", str(repo), "add", "README"], user=orch.user)
    done = orch.machine.run([*git, "-C", str(repo), "commit", "-qm", "init"], user=orch.user)
    assert done.returncode == 0, done.stderr
    sid = orch.spawn("/bin/sh", "-c", "cat README; echo changed > README",
                     opts=["--worktree", "--cwd", str(repo)])
    assert orch("wait", sid).returncode == 0
    tree = Path(orch.show(sid)["worktree"])
    assert orch.show(sid)["cwd"] == str(tree) != str(repo)
    assert (tree / "README").read_text() == "changed\n"
    assert (repo / "README").read_text() == "hello\n"  # the checkout itself untouched
    assert orch.ok("reap", "--older-than", "0").split() == [sid]
    assert not tree.exists()
    # From a subdirectory, it starts in the same one of its worktree (before: its top).
    (repo / "sub").mkdir()
    (repo / "sub" / "f").write_text("x\n")
    for made in (repo / "sub", repo / "sub" / "f"):
        os.chown(made, orch.uid, orch.uid)
    orch.machine.run([*git, "-C", str(repo), "add", "sub"], user=orch.user)
    orch.machine.run([*git, "-C", str(repo), "commit", "-qm", "sub"], user=orch.user)
    sid = orch.spawn("/bin/true", opts=["--worktree", "--cwd", str(repo / "sub")])
    assert orch.show(sid)["cwd"] == str(Path(orch.show(sid)["worktree"]) / "sub")
    # Sandboxed, it commits in its worktree (before: the repository was read-only).
    sid = orch.spawn("/bin/sh", "-c", f"echo sandboxed > README && {' '.join(git)} "
                     "commit -qam 'from the sandbox'",
                     opts=["--worktree", "--sandbox", "--cwd", str(repo)])
    assert orch("wait", "--timeout", "60", sid).returncode == 0, orch.logs_text(sid)


def test_config_defaults_and_profiles_apply_and_bad_values_are_one_line(orch: Orch) -> None:
    config = orch.state_dir.parent / "config.toml"
    env = {"ORCH_CONFIG": str(config)}
    assert orch("config", "set", "spawn.memory_max", "200M", env=env).returncode == 0
    assert orch("config", "set", "profiles.small.tasks_max", "32", env=env).returncode == 0
    bad = orch("config", "set", "spawn.nice", "99", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "spawn.nice" in bad.stderr
    listed = orch("config", "list", "--json", env=env)
    assert json.loads(listed.stdout) == {"spawn.memory_max": "200M",
                                         "profiles.small.tasks_max": 32}
    sid = orch("spawn", "--profile", "small", "--", "sleep", "300", env=env).stdout.strip()
    props = _unit_props(orch, orch.show(sid)["unit"], "MemoryMax", "TasksMax")
    assert props == {"MemoryMax": str(200 * 1024 * 1024), "TasksMax": "32"}
    flag_wins = orch("spawn", "--memory-max", "100M", "--", "sleep", "300", env=env)
    props = _unit_props(orch, orch.show(flag_wins.stdout.strip())["unit"], "MemoryMax")
    assert props == {"MemoryMax": str(100 * 1024 * 1024)}
    assert orch("config", "set", "spawn.sandbox", "true", env=env).returncode == 0
    sandboxed = orch("spawn", "--", "sleep", "300", env=env).stdout.strip()
    unboxed = orch("spawn", "--no-sandbox", "--", "sleep", "300", env=env).stdout.strip()
    assert _unit_props(orch, orch.show(sandboxed)["unit"], "ProtectSystem") == {
        "ProtectSystem": "strict"}
    assert _unit_props(orch, orch.show(unboxed)["unit"], "ProtectSystem") == {
        "ProtectSystem": "no"}  # the flag's --no- form wins over [spawn]
    config.write_text("[spawn]\nmemory_max = 'lots'\n")
    broken = orch("spawn", "--", "/bin/true", env=env)
    assert broken.returncode == 2 and str(config) in broken.stderr
    assert "spawn.memory_max" in broken.stderr and broken.stderr.count("\n") == 1


def test_bad_option_values_are_refused_in_one_line(orch: Orch) -> None:
    for args in (["--memory-max", "lots"], ["--cpu-quota", "50"], ["--nice", "40"],
                 ["--timeout", "soon"], ["--restart", "sometimes"],
                 ["--env-file", "/no/such/file"], ["--add-dir", "/no/such/dir"]):
        done = orch("spawn", *args, "--", "/bin/true")
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, args
    assert orch.ps() == []


def test_a_directory_the_caller_cannot_enter_is_refused(user_orch: Orch) -> None:
    # Before, recorded as failed but read `lost`: its exit hook could not start there.
    done = user_orch("spawn", "--cwd", "/root", "--", "/bin/true")
    assert (done.returncode, done.stderr) == (4, "orch: --cwd /root: permission denied\n")
    assert user_orch.ps() == []


def test_a_worktree_outside_a_repository_is_refused(orch: Orch) -> None:
    plain = _dir(orch, "plain")
    done = orch("spawn", "--worktree", "--cwd", str(plain), "--", "/bin/true")
    assert done.returncode == 2 and "not inside a git repository" in done.stderr
    assert orch.ps() == []


def test_reap_older_than_takes_a_time_span(orch: Orch) -> None:
    # reap asks the manager, so this belongs with the integration tests.
    done = orch("reap", "--older-than", "1 week 2 days", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "orch: would reap 0 session(s)\n"
