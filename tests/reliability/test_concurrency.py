"""Concurrent orch processes against one real manager: random interleavings of spawn,
stop, kill, recover and reap (hypothesis), with the invariants checked after each step."""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.integration.conftest import Orch

OPERATIONS = ("spawn", "spawn --persistent", "stop", "kill", "recover", "reap")


def _argv(operation: str, label: str, ids: Sequence[str], draw: float) -> list[str]:
    """The command line of OPERATION. DRAW (in [0, 1)) picks what it acts on: drawn once
    for every operation, whatever the records are, so that hypothesis draws the same
    data for the same steps (it calls a test flaky when the draws follow outside state)."""
    if operation.startswith("spawn"):
        return ["spawn", "--name", label, *operation.split()[1:], "--", "sleep", "300"]
    if operation in ("stop", "kill"):
        return [operation, ids[int(draw * len(ids))]] if ids else ["ps"]
    if operation == "reap":
        return ["reap", "--all", "--older-than", "0"] if draw < 0.3 else \
            ["reap", "--older-than", "0"]
    return [operation]


def interleavings(orch: Orch) -> type[RuleBasedStateMachine]:
    label = f"hyp{uuid.uuid4().hex[:6]}"

    class Interleavings(RuleBasedStateMachine):
        """Each step starts 1-4 orch processes at once and waits for all of them."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: set[str] = set()
            self.steps = 0

        def units(self) -> set[str]:
            listed = orch.systemctl("list-units", "--all", "--no-legend", "--plain",
                                    f"orch-{label}-*")
            return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}

        @rule(operations=st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=4),
              pick=st.randoms(use_true_random=False))
        def concurrently(self, operations: list[str], pick: random.Random) -> None:
            ids = sorted(r.id for r in orch.records())
            commands = [_argv(op, label, ids, pick.random()) for op in operations]
            running = [orch.machine.popen(["orch", *argv], user=orch.user, env=orch.env)
                       for argv in commands]
            for argv, process in zip(commands, running, strict=True):
                try:
                    out, err = process.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    process.kill()
                    raise AssertionError(f"orch {argv} hung") from None
                assert "Traceback" not in err, (argv, err)
                if process.returncode != 0:
                    assert err.count("\n") == 1, (argv, err)  # one line, and a reason
                    assert argv[0] != "spawn", (argv, err)  # a spawn may not fail
                elif argv[0] == "spawn":
                    new = out.strip()
                    assert new not in self.seen, f"session id {new} given twice"
                    self.seen.add(new)
            self.steps += 1

        @rule()
        def recover_then_nothing_runs_without_its_unit(self) -> None:
            assert orch("recover").returncode == 0
            loaded = self.units()
            for session in orch.ps():
                if session["name"] == label and session["status"] == "running":
                    assert session["unit"] in loaded, session["id"]

        @invariant()
        def every_unit_of_ours_has_exactly_one_record(self) -> None:
            named = Counter(r.unit for r in orch.records())
            assert [u for u, n in named.items() if n > 1] == []
            assert self.units() - set(named) == set()

        def teardown(self) -> None:
            orch("reap", "--all", "--older-than", "0")

    return Interleavings


def test_random_interleavings_keep_every_invariant(user_orch: Orch) -> None:
    machine = interleavings(user_orch)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=12, stateful_step_count=8, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))


def test_forty_concurrent_spawns_make_forty_records_and_forty_units(orch: Orch) -> None:
    running = [orch.machine.popen(["orch", "spawn", "--name", f"c{i}", "--", "sleep", "300"],
                                  user=orch.user, env=orch.env) for i in range(40)]
    results = [(p.communicate(timeout=120), p.returncode) for p in running]
    assert all(code == 0 for _, code in results), [err for (_, err), c in results if c]
    ids = {out.strip() for (out, _), _ in results}
    assert len(ids) == 40
    records = orch.records()
    assert {r.id for r in records} == ids
    assert all(s["status"] == "running" for s in orch.ps())
    listed = orch.systemctl("list-units", "--no-legend", "--plain", "orch-c*").stdout
    units = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {r.unit for r in records} <= units
    assert len({r.unit for r in records}) == 40
    assert len(json.loads(orch.ok("ps", "--json", "--running"))) == 40


def test_reap_all_leaves_a_spawn_in_flight_and_its_record(user_orch: Orch) -> None:
    # A spawn between its record and its unit: reaping the record then would leave the
    # unit it is about to start with none.
    user_orch.ok("wait", user_orch.spawn("/bin/true"))
    live = user_orch.spawn("sleep", "300")
    sid, now = str(uuid.uuid4()), datetime.now(UTC).isoformat()
    user_orch.edit_records(lambda records: records.append(dict(
        records[0], id=sid, name="inflight", unit=f"orch-inflight-{sid[:8]}.service",
        invocation_id=None, main_pid=None, created_at=now, requested_at=now,
        started_at=None, ended_at=None, exit_code=None, exit_signal=None, result=None)))
    assert user_orch.show(sid)["status"] == "starting"
    reaped = set(user_orch.ok("reap", "--all", "--older-than", "0").split())
    assert live in reaped and sid not in reaped
    assert {r.id for r in user_orch.records()} == {sid}
