"""kill -9 at crash points inside spawn, recover and reap: the state always loads, and
every unit started has its record, or gets it at the next recover."""

from __future__ import annotations

import json
import random

from tests.integration.conftest import PYTHON, Orch

TRIALS = 230  # at least 200 must crash: a trial whose command ran through does not count
DRIVER = __file__.replace("test_crashes.py", "crash_trials.py")


def test_kill_9_anywhere_loses_no_record_and_no_unit(user_orch: Orch) -> None:
    seed = random.randrange(1 << 30)
    work = user_orch.state_dir.parent
    done = user_orch.machine.run([PYTHON, DRIVER, str(work), str(TRIALS), str(seed)],
                                 user=user_orch.user, env=user_orch.env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    print(f"seed {seed}: {json.dumps(report, indent=1)}")
    assert report["violations"] == [], f"seed {seed}"
    assert report["stats"]["crashed"] >= 200, (seed, report["stats"])
    # Every point was reached and crashed at least once.
    points = {"spawn.recorded", "launch.submitted", "launch.synced", "launch.started",
              "launch.confirmed", "recover.decided", "recover.archived", "recover.adopting",
              "reap.stopped", "reap.reset", "state.snapshot"}
    assert points <= set(report["by_point"]), (seed, report["by_point"])
    assert report["leftover_units"] == {}, seed
