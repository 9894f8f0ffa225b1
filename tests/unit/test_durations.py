"""Durations as `orch reap --older-than` takes them."""

from __future__ import annotations

import pytest

from orch.api import parse_duration
from orch.errors import UsageError


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0),
    ("90", 90),
    ("45s", 45),
    ("30m", 1800),
    ("12h", 43200),
    ("7d", 604800),
    ("2w", 1209600),
    ("1h30m", 5400),
    ("1.5h", 5400),
    ("1d12h", 129600),
    (" 2W ", 1209600),
    ("0s", 0),
])
def test_durations_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "   ", "abc", "5x", "10m5", "-", "h", "m30", "1h-5m"])
def test_malformed_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert caught.value.exit_code == 2


def test_trailing_number_error_says_a_unit_is_missing() -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration("10m5")
    assert "'10m5'" in caught.value.message and "unit" in caught.value.message


@pytest.mark.parametrize("text", ["1..5h", "1.2.3m"])
def test_number_with_two_dots_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_nan_is_not_a_duration() -> None:
    with pytest.raises(UsageError):
        parse_duration("nan")
