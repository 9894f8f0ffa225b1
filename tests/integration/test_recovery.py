"""Sessions across orch restarts, lost files and power cuts, against real managers."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orch import box
from tests.integration.conftest import (
    ORCH,
    TEST_USER,
    Machine,
    Orch,
    start_user_manager,
    wait_for,
)

RUN_LINE = 'echo "run $INVOCATION_ID"; exec sleep 600'


def _recover(orch: Orch) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(orch.ok("recover", "--json"))
    return data


def test_recover_while_sessions_run_changes_nothing(orch: Orch) -> None:
    first = orch.spawn("sleep", "300")
    second = orch.spawn("sleep", "300", opts=["--persistent"])
    ended = orch.spawn("/bin/sh", "-c", "exit 4")
    assert orch("wait", ended).returncode == 1
    before = {s["id"]: (s["invocation_id"], s["main_pid"]) for s in orch.ps()}

    report = _recover(orch)
    assert report["counts"]["running"] == 2 and report["counts"]["already-ended"] == 1
    assert report["counts"]["restarted"] == 0 and report["counts"]["lost"] == 0
    assert {s["id"]: (s["invocation_id"], s["main_pid"]) for s in orch.ps()} == before

    state = orch.state_text()
    assert _recover(orch)["counts"] == report["counts"]
    assert orch.state_text() == state  # idempotent: nothing written
    assert orch.show(second)["restarts"] == 0 and orch.show(first)["status"] == "running"


def test_a_deleted_state_file_is_rebuilt_from_the_units(orch: Orch) -> None:
    cwd = str(orch.state_dir.parent)
    kept = orch.spawn("sleep", "300", opts=["--name", "code reviewer", "--cwd", cwd,
                                            "--env", "FOO=bar baz"])
    other = orch.spawn("/bin/sh", "-c", "exec sleep 301")
    before = {s["id"]: s for s in orch.ps()}
    (orch.state_dir / "sessions.json").unlink()

    report = _recover(orch)
    assert report["counts"]["adopted"] == 2
    after = {s["id"]: s for s in orch.ps()}
    assert set(after) == {kept, other}
    for sid, session in after.items():
        for key in ("name", "unit", "argv", "cwd", "invocation_id", "main_pid", "status"):
            assert session[key] == before[sid][key], key
    assert _recover(orch)["counts"]["adopted"] == 0


def test_recover_adopts_only_units_of_its_own_state_directory(root_orch: Orch,
                                                              machine: Machine) -> None:
    stranger = Orch(machine, "system", None, 0, root_orch.state_dir.parent / "other")
    theirs = stranger.spawn("sleep", "300")
    try:
        assert _recover(root_orch)["counts"]["adopted"] == 0
        assert root_orch.ps() == []
    finally:
        stranger("stop", theirs)


def _age_record(orch: Orch, session_id: str, days: float) -> None:
    stamp = (datetime.now(UTC) - timedelta(days=days)).isoformat()

    def age(records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["id"] == session_id:
                record["ended_at"] = stamp

    orch.edit_records(age)


def test_reap_keeps_live_sessions_and_takes_the_ended_by_age(orch: Orch) -> None:
    live = orch.spawn("sleep", "300")
    fresh = orch.spawn("/bin/true")
    old = orch.spawn("/bin/sh", "-c", "exit 2")
    assert orch("wait", fresh).returncode == 0 and orch("wait", old).returncode == 1
    _age_record(orch, old, days=8)

    dry = orch("reap", "--older-than", "0", "--dry-run")
    assert set(dry.stdout.split()) == {fresh, old}
    assert {s["id"] for s in orch.ps()} == {live, fresh, old}

    assert orch.ok("reap").split() == [old]  # default age: 7 days
    assert {s["id"] for s in orch.ps()} == {live, fresh}
    assert orch.ok("reap", "--older-than", "0").split() == [fresh]
    assert [s["id"] for s in orch.ps()] == [live]
    assert orch("reap", "--older-than", "later").returncode == 2

    just_ended = orch.spawn("/bin/true")
    assert orch("wait", just_ended).returncode == 0
    # --all is every session: one that ended a moment ago too (before: only the running).
    assert set(orch.ok("reap", "--all").split()) == {live, just_ended}
    assert orch.ps() == []
    assert orch.systemctl("is-active", f"orch-sleep-{live[:8]}.service").stdout.strip() \
        in ("inactive", "unknown")


def test_recover_reads_how_a_session_ended_from_the_journal(user_orch: Orch) -> None:
    flag = user_orch.state_dir.parent / "go"
    sid = user_orch.spawn("/bin/sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.05; done; exit 7")
    unit = user_orch.show(sid)["unit"]
    with user_orch.read_only_state():  # the exit hook cannot record the end
        flag.write_text("")
        wait_for(lambda: user_orch.systemctl("is-active", unit).stdout.strip()
                 in ("inactive", "failed", "unknown"), what="the unit to end")
        assert user_orch.show(sid)["status"] == "lost"  # no evidence on record yet
    report = _recover(user_orch)
    assert report["outcomes"][sid] == "ended"
    shown = user_orch.show(sid)
    assert shown["status"] == "failed" and shown["exit_code"] == 7
    assert shown["result"] == "exit-code"


@contextmanager
def _state_dir_gone(orch: Orch) -> Iterator[None]:
    """While in it, a file stands where ORCH's state directory was: nothing, not even
    root, can record anything there."""
    aside = orch.state_dir.with_name(orch.state_dir.name + ".aside")
    orch.state_dir.rename(aside)
    orch.state_dir.touch()
    try:
        yield
    finally:
        orch.state_dir.unlink()
        aside.rename(orch.state_dir)


def test_a_stop_by_the_manager_that_no_hook_recorded_reads_as_stopped(orch: Orch) -> None:
    # The journal's "Stopped" tells it: before, the system manager's stop read as a clean
    # exit (and a persistent session was not started again), the user manager's as lost.
    plain = orch.spawn("/bin/sleep", "600")
    kept = orch.spawn("/bin/sleep", "600", opts=["--persistent"])
    units = [orch.show(sid)["unit"] for sid in (plain, kept)]
    with _state_dir_gone(orch):  # the exit hooks cannot record the ends (root's either)
        for unit in units:
            orch.systemctl("stop", unit)
        wait_for(lambda: all(orch.systemctl("is-active", unit).stdout.strip()
                             in ("inactive", "failed", "unknown") for unit in units),
                 what="the units to stop")
    report = _recover(orch)
    assert report["outcomes"] == {plain: "ended", kept: "restarted"}
    assert orch.show(plain)["status"] == "stopped"
    assert orch.show(kept)["status"] == "running"


def _power_cut_and_boot(machine: Machine) -> None:
    status = json.loads(subprocess.run([ORCH, "box", "status", "--json"], capture_output=True,
                                       text=True, check=True).stdout)
    # The box's systemd was started by this suite: end it by its PID, as a power cut would.
    os.kill(status["pid"], signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{status['pid']}").exists(), what="the box to die")
    up = subprocess.run([ORCH, "box", "up"], capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    # The test user lingers: its manager starts at boot (and with it, that user's
    # orch-recover.service). Later tests rely on it too; wait for it to be there.
    start_user_manager(machine, pwd.getpwnam(TEST_USER))


@pytest.mark.skipif(box.systemd_is_pid1(), reason="a power cut needs a box")
def test_a_power_cut_brings_persistent_sessions_back(orch: Orch, machine: Machine) -> None:
    installed = orch.ok("units", "install").split()
    assert any(p.endswith("orch-recover.service") for p in installed)
    try:
        keeper = orch.spawn("/bin/sh", "-c", RUN_LINE, opts=["--persistent", "--name", "keeper"])
        ephemeral = orch.spawn("sleep", "600")
        four = orch.spawn("/bin/sh", "-c", "exit 4")
        assert orch("wait", four).returncode == 1
        first = orch.show(keeper)["invocation_id"]
        wait_for(lambda: f"run {first}" in orch.ok("logs", "-o", "cat", keeper),
                 what="the first invocation's line")
        # Dependents waiting when the power goes: on a session that comes back, and on
        # one that is lost.
        on_keeper = orch.spawn("/bin/true", opts=["--after", keeper])
        on_ephemeral = orch.spawn("/bin/true", opts=["--after", ephemeral])

        _power_cut_and_boot(machine)

        def back() -> dict[str, Any] | None:
            shown = orch.show(keeper)
            return shown if shown["status"] == "running" and shown["restarts"] == 1 else None

        shown = wait_for(back, timeout=60, what="the persistent session to come back")
        assert shown["id"] == keeper and shown["invocation_id"] != first
        assert [run["status"] for run in shown["invocations"]] == ["lost", "running"]
        assert orch.show(ephemeral)["status"] == "lost"
        assert orch.show(four)["status"] == "failed" and orch.show(four)["exit_code"] == 4
        # Recovery armed the first dependent again, behind a new path unit; the second
        # never runs: its dependency was cut off.
        assert orch.show(on_keeper)["status"] == "starting"
        path_unit = orch.show(on_keeper)["unit"].replace(".service", ".path")
        assert orch.systemctl("is-active", path_unit).stdout.strip() == "active"
        blocked = orch.show(on_ephemeral)
        assert blocked["status"] == "failed"
        assert blocked["blocked"] == f"dependency {ephemeral[:8]} (sleep) did not end successfully"

        second = shown["invocation_id"]
        def both_runs() -> str | None:
            text = orch.ok("logs", keeper)
            return text if f"run {second}" in text else None

        logs = wait_for(both_runs, what="the second invocation's line")
        lines = logs.splitlines()
        markers = [i for i, line in enumerate(lines) if line.startswith("-- ")]
        runs = [i for i, line in enumerate(lines) if ": run " in line]
        assert len(markers) == 2 and len(runs) == 2
        assert markers[0] < runs[0] < markers[1] < runs[1]
        assert first in lines[markers[0]] and second in lines[markers[1]]
    finally:
        orch("units", "uninstall")


def test_recover_beside_concurrent_spawns_loses_nothing(orch: Orch) -> None:
    def work(i: int) -> tuple[str, str]:
        if i % 4 == 3:
            return ("recover", orch("recover").stderr)
        done = orch("spawn", "--persistent", "--", "sleep", "300")
        return ("spawn", done.stdout.strip() if done.returncode == 0 else "")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(24)))
    spawned = {out for kind, out in results if kind == "spawn"}
    assert len(spawned) == 18 and "" not in spawned
    assert all(out == "" for kind, out in results if kind == "recover")
    sessions = orch.ps()
    assert {s["id"] for s in sessions} == spawned
    # None was mistaken for a cut-off persistent session and started twice.
    assert all(s["status"] == "running" and s["restarts"] == 0 for s in sessions)
    assert _recover(orch)["counts"]["running"] == 18
