"""The fault and abuse suite: orch against real managers in a box, as the integration
tests run it (their fixtures: a box for the session, orch as root on the system manager
and as the test user on its own), every loop bounded in count and in time."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator

import pytest

from tests.integration.conftest import (  # noqa: F401  (fixtures shared with integration)
    Machine,
    Orch,
    _state_dir,
    _stop_all,
    machine,
    orch,
    root_orch,
    start_user_manager,
    test_user,
    user_orch,
)


@pytest.fixture
def other_orch(request: pytest.FixtureRequest) -> Iterator[Orch]:
    """orch as a second non-root user (ORCH_TEST_USER2) on that user's own manager."""
    box: Machine = request.getfixturevalue("machine")
    name = os.environ.get("ORCH_TEST_USER2", "orch-test2")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"the second test user {name} is missing: `make setup` creates it")
    start_user_manager(box, entry)
    caller = Orch(box, "user", entry.pw_name, entry.pw_uid, _state_dir(entry.pw_uid))
    yield caller
    _stop_all(caller)
    shutil.rmtree(caller.state_dir.parent, ignore_errors=True)
