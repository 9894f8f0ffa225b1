"""The remote-host tests' fleet: booted once for the session, removed at its end.

ORCH_FLEET_SIZE sets how many hosts (default 3). Nothing is skipped: a machine that
cannot run a fleet fails the first test that asks for one, saying what it lacks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.remote.fleet import Fleet, missing_prerequisites


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """Hosts h1..hN, each a box with its own network namespace, state and sshd."""
    problems = missing_prerequisites()
    if problems:
        pytest.fail("cannot bring the remote-host fleet up: " + "; ".join(problems),
                    pytrace=False)
    hosts = Fleet(count=int(os.environ.get("ORCH_FLEET_SIZE", "3")))
    try:
        hosts.up()
        yield hosts
    finally:
        hosts.down()
