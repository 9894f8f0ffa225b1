"""orch.errors' stand-in for contextlib.suppress: the kinds it names end the body
quietly; any other goes on, as contextlib's does."""

from __future__ import annotations

import contextlib

import pytest

from orch.errors import suppress


@pytest.mark.parametrize("make", [suppress, contextlib.suppress])
def test_suppress_ends_the_body_on_the_kinds_it_names_and_no_other(make: type) -> None:
    reached = []
    with make(KeyError, OSError):
        reached.append(1)
        raise FileNotFoundError("a kind of OSError")
    assert reached == [1]
    with pytest.raises(ValueError), make(KeyError):
        raise ValueError("not named")
    with make():
        reached.append(2)
    assert reached == [1, 2]
    with pytest.raises(KeyboardInterrupt), make(Exception):  # not an Exception
        raise KeyboardInterrupt
