"""The fault and abuse suite: orch against real managers in a box, as the integration
tests run it (their fixtures: a box for the session, orch as root on the system manager
and as the test user on its own), every loop bounded in count and in time."""

from __future__ import annotations

from tests.integration.conftest import (  # noqa: F401  (fixtures shared with integration)
    machine,
    orch,
    root_orch,
    test_user,
    user_orch,
)
