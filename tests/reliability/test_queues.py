"""A queue under concurrent orch processes against one real manager (hypothesis): spawns
into it, stops, kills, recovers and crashes mid-admission, all at once. Checked: never
more than max_running of its sessions run, none starts twice, and once things settle
nothing waits while a slot is free."""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.integration.conftest import Orch
from tests.waiting import wait_for

CAP = 2
OPERATIONS = ("spawn", "spawn", "spawn", "stop", "kill", "recover", "crash")


def _program(log: Path) -> list[str]:
    """Log its start and its end, even when a stop or kill (SIGTERM) ends it; runs a
    moment so that sessions overlap and queue up."""
    return ["/bin/sh", "-c", f'trap "echo -$ORCH_SESSION_ID >> {log}; exit 143" TERM; '
            f'echo +$ORCH_SESSION_ID >> {log}; sleep 0.4 & wait; '
            f'echo -$ORCH_SESSION_ID >> {log}']


def queue_runs(orch: Orch, log: Path) -> type[RuleBasedStateMachine]:
    label = f"q{uuid.uuid4().hex[:6]}"

    class QueueRuns(RuleBasedStateMachine):
        """Each step starts 1-4 orch processes at once and waits for all of them."""

        @rule(operations=st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=4),
              pick=st.randoms(use_true_random=False))
        def concurrently(self, operations: list[str], pick: random.Random) -> None:
            ids = sorted(r.id for r in orch.records())
            started = []
            for operation in operations:
                env = dict(orch.env)
                if operation in ("spawn", "crash"):
                    argv = ["spawn", "--queue", "q", "--name", label, "--", *_program(log)]
                    if operation == "crash":  # dies between admitting and starting
                        env["ORCH_CRASH_AT"] = "queue.admitted"
                elif operation in ("stop", "kill") and ids:
                    argv = [operation, pick.choice(ids)]
                else:
                    argv = ["recover"]
                started.append((operation, argv, orch.machine.popen(
                    ["orch", *argv], user=orch.user, env=env)))
            for operation, argv, process in started:
                try:
                    _, err = process.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    process.kill()
                    raise AssertionError(f"orch {argv} hung") from None
                assert "Traceback" not in err, (argv, err)
                if operation == "spawn":
                    assert process.returncode == 0, (argv, err)

        @invariant()
        def never_more_than_the_cap_and_none_twice(self) -> None:
            running = peak = 0
            starts: Counter[str] = Counter()
            for line in log.read_text().split():
                starts[line[1:]] += line[0] == "+"
                running += 1 if line[0] == "+" else -1
                peak = max(peak, running)
            assert peak <= CAP, log.read_text()
            assert [sid for sid, n in starts.items() if n > 1] == []

        def teardown(self) -> None:
            # A crash leaves an admitted session for recover, after the grace a spawn in
            # flight has: make it look old, then recover; the rest drain on their own.
            stale = "2026-01-01T00:00:00.000000+00:00"
            orch.edit_records(lambda docs: [d.update(requested_at=stale) for d in docs
                                            if d.get("admitted_at") and not d.get("invocation_id")])
            assert orch("recover").returncode == 0

            def settled() -> bool:
                statuses = Counter(s["status"] for s in orch.ps())
                return statuses["queued"] == 0 or statuses["running"] + statuses["starting"] >= CAP

            wait_for(settled, timeout=60, what="nothing queued while a slot is free")
            wait_for(lambda: all(s["status"] not in ("queued", "running", "starting")
                                 for s in orch.ps()), timeout=120, what="the queue to drain")
            self.never_more_than_the_cap_and_none_twice()
            orch("reap", "--all", "--older-than", "0")
            log.write_text("")

    return QueueRuns


def test_a_queue_under_concurrent_spawns_stops_recovers_and_crashes(user_orch: Orch) -> None:
    config = user_orch.state_dir.parent / "config.toml"
    config.write_text(f"[queues.q]\nmax_running = {CAP}\n")
    log = user_orch.state_dir.parent / "runs.log"
    log.write_text("")
    for path in (config, log):
        os.chown(path, user_orch.uid, user_orch.uid)
    user_orch.extra_env["ORCH_CONFIG"] = str(config)
    run_state_machine_as_test(queue_runs(user_orch, log), settings=settings(
        max_examples=6, stateful_step_count=6, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
