"""The library's arguments, checked where a type checker cannot help its caller: what the
command line can never give (a string for a list, a number for a string, a provider no
one knows) is one UsageError naming the argument, never a Python error from deep inside
nor a session recorded that other commands then refuse."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import orch
from orch.errors import UsageError
from orch.runtime import Runtime
from orch.usecases import query
from orch.usecases import spawn as spawning


@pytest.mark.parametrize(("call", "said"), [
    # A string was taken apart: "cannot run t".
    (lambda: orch.spawn("true"), "argv: expected a list of strings, not 'true'"),
    (lambda: orch.spawn([1, 2]), "argv: expected a list of strings, not one holding int"),
    (lambda: orch.spawn(["true"], tags="abc"), "tags: expected a list of strings, not 'abc'"),
    (lambda: orch.spawn(["true"], name=5), "name: expected a string, not int"),
    (lambda: orch.spawn(["true"], env=["A=1"]),
     "env: expected a dict of strings to strings, not list"),
    (lambda: orch.spawn(["true"], scope="bogus"),
     "scope 'bogus': expected 'user' or 'system'"),
    (lambda: orch.wait("a-name"), "refs: expected a list of strings, not 'a-name'"),
    (lambda: orch.wait(["a-name"], timeout="soon"),
     "timeout: expected a number of seconds, 0 or more, got 'soon'"),
    (lambda: orch.wait(["a-name"], timeout=math.nan),
     "timeout: expected a number of seconds, 0 or more, got nan"),
    (lambda: orch.reap(older_than=math.inf),
     "older_than: expected a number of seconds, 0 or more, got inf"),
    (lambda: orch.show(None),
     "a session reference is a string (an id, a prefix, a name), not NoneType"),
    (lambda: query._format("bogus"),
     "output 'bogus': expected one of short, json, cat, transcript"),
])
def test_a_bad_argument_is_one_usage_error_naming_it(isolated_env: Path, call: Any,
                                                     said: str) -> None:
    with pytest.raises(UsageError) as err:
        call()
    assert err.value.message == said


def test_an_unknown_provider_or_a_priority_with_no_queue_records_nothing(rt: Runtime) -> None:
    # Before, the session was recorded, and show, wait and result then refused it.
    with pytest.raises(UsageError) as err:
        spawning.spawn(rt, ["true"], provider="bogus")
    assert err.value.message.startswith("no provider named 'bogus'")
    with pytest.raises(UsageError) as err:
        spawning.spawn(rt, ["true"], priority=5)
    assert err.value.message == "priority orders a queue: give queue too"
    assert rt.store.load() == {}
