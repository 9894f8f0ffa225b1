"""The manager re-executing itself, and journald restarting, under running sessions:
orch keeps working, in fresh commands and in a library process that spans the fault."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import PYTHON, Orch, wait_for

# A library user that spawns, then (once GATE exists) uses the same process, and the
# connection it kept idle, to show and stop that session.
LIBRARY = """
import json, os, sys, time
import orch
from orch import systemd
systemd._IDLE.keep_s = 600  # keep the connection across the fault, however long it takes
gate = sys.argv[1]
session = orch.spawn(["sleep", "300"], name="library")
print(session.id, flush=True)
deadline = time.monotonic() + 120
while not os.path.exists(gate):
    assert time.monotonic() < deadline, "no gate"
    time.sleep(0.05)
shown = orch.show(session.id)
orch.stop(session.id)
print(json.dumps({"before": shown.status, "after": orch.show(session.id).status}), flush=True)
"""


def _printer(orch: Orch, name: str) -> tuple[str, str, str]:
    """A session that prints 'before', and 'after' once GO exists, then exits 3 once
    END exists: its id and the two gate paths."""
    go, end = str(orch.state_dir.parent / f"{name}-go"), str(orch.state_dir.parent / f"{name}-end")
    script = (f"echo before; while [ ! -e {go} ]; do sleep 0.05; done; echo after; "
              f"while [ ! -e {end} ]; do sleep 0.05; done; exit 3")
    return orch.spawn("/bin/sh", "-c", script, opts=["--name", name]), go, end


def test_a_daemon_reexec_under_running_sessions(orch: Orch) -> None:
    sleeper = orch.spawn("sleep", "300")
    printer, go, end = _printer(orch, "printer")
    gate = orch.state_dir.parent / "library-gate"
    library = orch.machine.popen([PYTHON, "-c", LIBRARY, str(gate)], user=orch.user,
                                 env=orch.env)
    assert library.stdout is not None
    kept = library.stdout.readline().strip()
    wait_for(lambda: "before" in orch.logs_text(printer), what="the first line")
    before = {s["id"]: (s["invocation_id"], s["main_pid"]) for s in orch.ps()}

    assert orch.systemctl("daemon-reexec").returncode == 0

    after = {s["id"]: (s["invocation_id"], s["main_pid"]) for s in orch.ps()}
    assert after == before
    assert {s["id"]: s["status"] for s in orch.ps()} == \
        {sleeper: "running", printer: "running", kept: "running"}
    gate.write_text("")
    out, err = library.communicate(timeout=120)
    assert library.returncode == 0, err
    assert json.loads(out) == {"before": "running", "after": "stopped"}
    orch.ok("stop", sleeper)
    assert orch.show(sleeper)["status"] == "stopped"
    # A new session, and the old one's output and end, all as usual.
    assert orch("wait", orch.spawn("/bin/true")).returncode == 0
    Path(go).write_text("")
    wait_for(lambda: "after" in orch.logs_text(printer), what="the line after the reexec")
    Path(end).write_text("")
    assert orch("wait", printer).returncode == 1
    ended = orch.show(printer)
    assert (ended["status"], ended["exit_code"]) == ("failed", 3)


def test_a_journald_restart_under_running_sessions(user_orch: Orch) -> None:
    printer, go, end = _printer(user_orch, "printer")
    wait_for(lambda: "before" in user_orch.logs_text(printer), what="the first line")
    user_orch.machine.sh("systemctl restart systemd-journald.service")
    assert user_orch.show(printer)["status"] == "running"
    user_orch.machine.sh(f"touch {go}")
    wait_for(lambda: "after" in user_orch.logs_text(printer), timeout=30,
             what="the line written after journald's restart")
    assert user_orch.logs_text(printer).split() == ["before", "after"]
    user_orch.machine.sh(f"touch {end}")
    assert user_orch("wait", printer).returncode == 1
    assert user_orch.show(printer)["exit_code"] == 3
    assert user_orch("wait", user_orch.spawn("/bin/true")).returncode == 0
