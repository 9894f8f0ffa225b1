"""The one way tests wait: poll a condition until a deadline, never sleep for time to pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "",
             error: Callable[[str], BaseException] | None = None) -> Any:
    """Poll CONDITION until it returns something truthy, and return that. After TIMEOUT
    seconds: fail the test, or raise ERROR(message) where a helper outside a test asks."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:g}s waiting for {what or condition}"
            if error is None:
                pytest.fail(message)
            raise error(message)
        time.sleep(0.05)
