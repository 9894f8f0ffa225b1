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


def _make(decorate: Callable[[type], type], field: Callable[..., Any]) -> Any:
    namespace: dict[str, Any] = {"field": field, "dataclasses": dataclasses,
                                 "__name__": __name__}
    exec(BODY, namespace)
    made = decorate(namespace["Point"])
    made.__module__ = __name__
    return made


LIGHT = _make(frozen._frozen_dataclass(frozen=True), frozen._field)
REAL = _make(dataclasses.dataclass(frozen=True), dataclasses.field)
# orch.frozen also takes dataclasses' own field() in a class body.
LIGHT_REAL_FIELD = _make(frozen._frozen_dataclass(frozen=True), dataclasses.field)


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
    assert _outcome(lambda: probe(LIGHT_REAL_FIELD)) == _outcome(lambda: probe(REAL))


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


def test_replace_and_shape_without_dataclasses() -> None:
    point = LIGHT(1, tags=[2])
    moved = frozen._replace(point, x=5)
    assert moved == LIGHT(5, "p", [2], ())
    assert point.x == 1 and moved.tags is point.tags  # as dataclasses.replace: shallow
    with pytest.raises(TypeError, match="unexpected keyword argument 'nowhere'"):
        frozen._replace(point, nowhere=1)
    shape = frozen.shape(LIGHT)
    assert shape.names == ("x", "label", "tags", "where")
    assert shape.required == {"x"}
    assert shape.defaults == {"label": "p", "where": ()}
    assert [name for name, _ in shape.factories] == ["tags"]


@pytest.mark.parametrize("body", [
    "class Bad:\n    x: list = []\n",  # a mutable default
    "class Bad:\n    x: int = 1\n    y: int\n",  # no default after a default
])
def test_the_same_refusals_of_a_class_body(body: str) -> None:
    outcomes = []
    for decorate in (frozen._frozen_dataclass(frozen=True), dataclasses.dataclass(frozen=True)):
        namespace: dict[str, Any] = {}
        exec(body, namespace)
        outcomes.append(_outcome(lambda: decorate(namespace["Bad"])))  # noqa: B023
    assert outcomes[0] == outcomes[1] and outcomes[0][0] != "value"


def test_what_it_does_not_take_is_refused() -> None:
    namespace: dict[str, Any] = {}
    exec("from typing import ClassVar\nclass Bad:\n    x: ClassVar[int] = 1\n", namespace)
    with pytest.raises(TypeError, match="does not take"):
        frozen._frozen_dataclass(namespace["Bad"], frozen=True)


def test_orchs_records_load_without_dataclasses() -> None:
    from tests.unit.fresh import probe

    out = probe("import orch.session, orch.spec, orch.request\n"
                "out['loaded'] = 'dataclasses' in sys.modules\n"
                "import dataclasses\n"
                "out['fields'] = [f.name for f in dataclasses.fields(orch.spec.SpawnOptions)]"
                "[:2]")
    assert out == {"loaded": False, "fields": ["timeout_sec", "memory_max"]}
