"""reap over a fake manager and a set clock: which sessions it chooses, and what it
clears for each."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orch import secrets
from orch.errors import UsageError
from orch.runtime import Runtime
from orch.session import Intent, Record, Session, Status
from orch.spec import after_dir, after_unit
from orch.usecases import reap as reaping
from tests.unit.fakemanager import (
    Clock,
    FakeManager,
    exited,
    not_started,
    put,
    running,
    runtime,
    started,
)

NOW = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture
def rt(fake: FakeManager, isolated_env: Path) -> Runtime:
    return runtime(fake, isolated_env, Clock(NOW))


def _ended(rt: Runtime, name: str, days_ago: float, **fields: object) -> Record:
    stamp = (NOW - timedelta(days=days_ago)).isoformat()
    ending: dict[str, object] = {"exit_code": 0, "result": "success", **fields}
    return put(rt, name, invocation_id=f"{name:0>32}"[:32], created_at=stamp,
               started_at=stamp, ended_at=stamp, **ending)


def test_a_dry_run_chooses_by_age_and_removes_nothing(fake: FakeManager, rt: Runtime) -> None:
    old, _young = _ended(rt, "old", 8), _ended(rt, "young", 1)
    started(fake, rt, "busy")
    chosen = reaping.reap(rt, dry_run=True)
    assert [s.id for s in chosen] == [old.id]
    assert len(rt.store.load()) == 3 and fake.called("reset_failed") == []
    assert {s.name for s in reaping.reap(rt, older_than=0, dry_run=True)} == {"old", "young"}


def test_reap_removes_the_chosen_and_what_they_left(fake: FakeManager, rt: Runtime) -> None:
    old = _ended(rt, "old", 8)
    fake.add(old.unit, exited(running(), 1))  # failed: kept loaded until reset
    secret = secrets.write(rt.scope, old.id, {"K": "v"})
    young = _ended(rt, "young", 1)
    assert [s.id for s in reaping.reap(rt)] == [old.id]
    assert list(rt.store.load()) == [young.id]
    assert old.unit not in fake.units and not secret.exists()


def test_reap_all_stops_the_running_first_but_leaves_a_spawn_in_flight(
        fake: FakeManager, rt: Runtime) -> None:
    busy = started(fake, rt, "busy")
    in_flight = put(rt, "in-flight", created_at=rt.now_iso(), requested_at=rt.now_iso())

    def stop_sees_the_intent(units: Sequence[str]) -> dict[str, str]:
        assert rt.store.load()[busy.id].intent is Intent.STOP
        return FakeManager.stop_all(fake, units)

    fake.stop_all = stop_sees_the_intent  # type: ignore[method-assign]
    chosen = reaping.reap(rt, everything=True)
    assert [(s.id, s.status) for s in chosen] == [(busy.id, Status.RUNNING)]
    assert fake.called("stop") == [busy.unit]
    assert list(rt.store.load()) == [in_flight.id]


def test_reaping_a_dependent_takes_its_path_unit_and_marker(fake: FakeManager,
                                                            rt: Runtime) -> None:
    first = _ended(rt, "first", 9, exit_code=1, result="exit-code")
    second = put(rt, "second", after=[first.id], blocked="dependency failed",
                 created_at=(NOW - timedelta(days=9)).isoformat())
    fake.add(after_unit(second.unit), not_started())
    marker = after_dir(rt.scope) / f"{second.id}.go"
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    assert {s.id for s in reaping.reap(rt)} == {first.id, second.id}
    assert fake.called("stop") == [after_unit(second.unit)]
    assert not marker.exists() and rt.store.load() == {}


def test_a_session_restarted_since_it_was_chosen_stays(fake: FakeManager, rt: Runtime) -> None:
    old = _ended(rt, "old", 8)

    def restarted_meanwhile(unit: str) -> None:
        def restart(sessions: dict[str, Record]) -> None:
            sessions[old.id] = dataclasses.replace(
                sessions[old.id].next_invocation(rt.now_iso()), invocation_id="f" * 32)

        rt.store.update(restart)

    fake.reset_failed = restarted_meanwhile  # type: ignore[method-assign]
    assert [s.id for s in reaping.reap(rt)] == [old.id]
    assert list(rt.store.load()) == [old.id]


def test_ages(rt: Runtime) -> None:
    with pytest.raises(UsageError):
        reaping.reap(rt, older_than=-1)
    assert reaping.reap(rt, older_than=0) == []
    record = Record(id="x", name="x", unit="u", scope="user", argv=["x"], cwd="/",
                    created_at="2026-01-09T00:00:00")  # no zone: taken as UTC
    assert reaping.age(Session.of(record, Status.LOST, None), NOW) == 86400.0
    bad = dataclasses.replace(record, created_at="then")
    assert reaping.age(Session.of(bad, Status.LOST, None), NOW) == float("inf")
