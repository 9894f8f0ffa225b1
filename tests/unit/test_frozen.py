"""orch.frozen's dataclasses behave as `dataclasses.dataclass(frozen=True)` makes them:
the same class body through both decorators gives the same answers."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from orch import frozen

BODY = '''
class Point:
    """A point."""

    x: int
    label: str = "p"
    tags: list = field(default_factory=list)
    where: tuple = ()

    def moved(self, by):
        return dataclasses.replace(self, x=self.x + by)
'''


def _make(decorate: Callable[[type], type]) -> Any:
    namespace: dict[str, Any] = {"field": dataclasses.field, "dataclasses": dataclasses,
                                 "__name__": __name__}
    exec(BODY, namespace)
    made = decorate(namespace["Point"])
    made.__module__ = __name__
    return made


LIGHT = _make(frozen._frozen_dataclass(frozen=True))
REAL = _make(dataclasses.dataclass(frozen=True))


def _outcome(action: Callable[[], object]) -> tuple[str, object]:
    try:
        return "value", action()
    except Exception as err:
        return type(err).__name__, None


@pytest.mark.parametrize("probe", [
    lambda c: repr(c(1)),
    lambda c: repr(c(1, "q", [2], (3,))),
    lambda c: c(1) == c(1, "p", [], ()),
    lambda c: c(1) == c(2),
    lambda c: c(1) != c(x=1, tags=[1]),
    lambda c: c(1).__eq__(object()),
    lambda c: hash(c(1, where=(1,))) == hash(c(1, where=(1,))),
    lambda c: hash(c(1)),  # a list field: unhashable
    lambda c: c.__match_args__,
    lambda c: [f.name for f in dataclasses.fields(c)],
    lambda c: dataclasses.asdict(c(1, tags=[1])),
    lambda c: repr(dataclasses.replace(c(1), label="r")),
    lambda c: repr(c(1).moved(2)),
    lambda c: c(1).tags is not c(1).tags,
    lambda c: copy.deepcopy(c(1, tags=[[1]])) == c(1, tags=[[1]]),
    lambda c: vars(c(where=(), x=3)),
    lambda c: c.label,
    lambda c: c.__doc__,
    lambda c: dataclasses.is_dataclass(c(1)),
    lambda c: c(),
    lambda c: c(1, 2, 3, 4, 5),
    lambda c: c(1, x=2),
    lambda c: c(1, nowhere=2),
    lambda c: setattr(c(1), "x", 2),
    lambda c: setattr(c(1), "other", 2),
    lambda c: delattr(c(1), "x"),
])
def test_the_same_as_a_frozen_dataclass(probe: Callable[[Any], object]) -> None:
    assert _outcome(lambda: probe(LIGHT)) == _outcome(lambda: probe(REAL))


def test_the_same_messages_for_mistakes() -> None:
    for mistake in (lambda c: c(), lambda c: c(1, x=2), lambda c: c(1, nowhere=2),
                    lambda c: setattr(c(1), "x", 2), lambda c: delattr(c(1), "x")):
        messages = []
        for made in (LIGHT, REAL):
            with pytest.raises((TypeError, dataclasses.FrozenInstanceError)) as raised:
                mistake(made)
            messages.append(str(raised.value).rpartition("__init__() ")[2])
        assert messages[0] == messages[1]


def test_a_record_pickles() -> None:
    from orch.spec import SpawnOptions

    options = SpawnOptions(memory_max=1, add_dirs=("/a",))
    assert pickle.loads(pickle.dumps(options)) == options


def test_only_frozen_classes_without_methods_of_their_own() -> None:
    with pytest.raises(TypeError):
        frozen._frozen_dataclass(frozen=False)

    class Own:
        """Defines what the decorator would."""

        def __eq__(self, other: object) -> bool:
            return True

    with pytest.raises(TypeError):
        frozen._frozen_dataclass(Own, frozen=True)
