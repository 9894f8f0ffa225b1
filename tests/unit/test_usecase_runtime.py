"""The runtime the use cases run on, and the library API (orch.api) that builds it: a
manager is connected only when a use case asks for one, and closed with the runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch import api
from orch import runtime as runtimes
from orch.errors import ManagerUnreachable
from orch.runtime import Runtime
from orch.scope import Scope
from orch.session import Status
from tests.unit.fakemanager import FakeManager, exited, runtime, unreachable


def test_a_manager_is_connected_when_first_asked_for_and_once_per_scope(
        isolated_env: Path) -> None:
    fake = FakeManager()
    with runtime(fake, isolated_env) as rt:
        assert fake.calls == []
        assert rt.manager is rt.manager is rt.manager_of(Scope.USER)
        rt.manager_of(Scope.SYSTEM)
        assert fake.called("connect") == ["user", "system"]
        other = rt.fork()
        assert other.store is rt.store and other.scope is rt.scope
        other.manager  # noqa: B018  (connecting is the point)
        assert fake.called("connect") == ["user", "system", "user"]
    assert fake.closed == 2
    rt.close()
    assert fake.closed == 2  # closed once


def test_a_runtime_that_never_needed_a_manager_connects_to_none(isolated_env: Path) -> None:
    with Runtime(Scope.USER, connect=unreachable) as rt:
        assert rt.store is runtimes.store_for(Scope.USER)
        with pytest.raises(ManagerUnreachable):
            rt.manager  # noqa: B018
    assert rt.now().tzinfo is not None and rt.now_iso().endswith("+00:00")


def test_one_store_per_directory(isolated_env: Path, monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: Path) -> None:
    assert api.store_for(Scope.USER) is api.store_for(Scope.SYSTEM)  # one ORCH_STATE_DIR
    monkeypatch.setenv("ORCH_STATE_DIR", str(tmp_path / "elsewhere"))
    assert api.store_for(Scope.USER).directory == tmp_path / "elsewhere"


@pytest.fixture
def fake(isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeManager:
    """orch.api's runtimes all over one fake manager."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("ORCH_SESSION_ID", raising=False)
    manager = FakeManager()
    monkeypatch.setattr(api, "_runtime", lambda scope: runtime(manager, isolated_env,
                                                               scope=scope or Scope.USER))
    return manager


def test_the_api_runs_each_use_case_and_closes_its_manager(fake: FakeManager) -> None:
    session = api.spawn(["/bin/true"], name="lib")
    assert [s.id for s in api.list_sessions()] == [session.id]
    assert api.find_record("lib").id == session.id
    assert api.show("lib").status is Status.RUNNING
    assert api.stop("lib").status is Status.STOPPED
    assert api.wait(["lib"]).sessions[0].status is Status.STOPPED
    other = api.spawn(["/bin/true"], name="other")
    assert api.kill("other", "enough", signum=api.parse_signal("INT")).status is Status.KILLED
    assert api.recover().counts["ended"] == 2  # from the units: no exit hook ran here
    assert {s.id for s in api.reap(older_than=0)} == {session.id, other.id}
    assert fake.closed == sum(1 for name, _ in fake.calls if name == "connect")


def test_the_api_spawns_a_typed_request(fake: FakeManager) -> None:
    from orch.request import SpawnRequest

    request = SpawnRequest(tags=("t",), persistent=True, memory_max=1 << 30)
    session = api.spawn_requested(["/bin/true"], request)
    record = api.find_record(session.id)
    assert record.tags == ["t"] and record.persistent
    assert record.options["memory_max"] == 1 << 30
    fake.set(record.unit, exited(fake.unit(record.unit)))
    assert api.result(session.id).status is Status.EXITED


def test_the_api_keeps_its_names() -> None:
    import orch

    assert orch.RecoverReport is api.RecoverReport
    assert orch.WaitOutcome is api.WaitOutcome
    assert api.DEFAULT_REAP_AGE == 7 * 24 * 3600.0 and api.SELF == "self"
    with pytest.raises(AttributeError):
        api.nothing  # noqa: B018
