"""500 live sessions in one user manager: ps, show, recover and reap keep working, and
within the benchmark's goals that are measured here side by side (bench/ has the rest)."""

from __future__ import annotations

import json

from tests.integration.conftest import PYTHON, Orch

COUNT = 500
RUN = __file__.replace("test_load.py", "load_run.py")


def test_500_live_sessions(user_orch: Orch) -> None:
    done = user_orch.machine.run([PYTHON, RUN, str(COUNT)], user=user_orch.user,
                                 env=user_orch.env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    print(json.dumps(figures))
    assert figures["errors"] == []
    assert figures["spawned"] == figures["ps_running"] == COUNT
    assert figures["show_status"] == "running"
    assert figures["recover_counts"]["running"] == COUNT
    assert figures["reaped"] == COUNT
    assert figures["units_left"] == figures["records_left"] == 0
    # The goals, as the benchmark states them: recover (at 1000) within 2 s; ps at least
    # 20 times faster than asking systemctl about each unit, timed in the same run.
    assert figures["recover_s"] <= 2.0, figures
    assert figures["loop_s"] / figures["ps_s"] >= 20, figures
