"""Whether a session record read from JSON has the fields, and the JSON types, it must.

Every read of the state files checks every record (thousands), so what depends only on
which fields a record has, in which order (unknown and missing ones, which to test and
how, which defaults to make), is worked out once per such layout; and the types of its
plain fields are compared as one tuple against those already found right.
"""

from __future__ import annotations

import operator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from orch.frozen import Shape

_STRINGS = ("id", "name", "unit", "cwd", "description", "created_at")
_OPTIONAL_STRINGS = ("parent_id", "invocation_id", "started_at", "ended_at", "exit_signal",
                     "result", "final_result", "program", "path", "requested_at", "provider",
                     "provider_session_id", "worktree", "worktree_repo", "blocked", "intent")
_STRING_LISTS = ("tags", "env_files", "secret_env", "after")


def _strings(value: object) -> bool:
    if type(value) is not list:
        return False
    try:  # at C speed, and JSON's strings are exactly str
        "".join(value)
    except TypeError:
        return False
    return True


_NONE = type(None)


def _counts(value: object) -> bool:
    return value is None or (type(value) is dict and all(
        type(k) is str and type(n) is int for k, n in value.items()))


def _runs(value: object) -> bool:
    """A history: runs whose usage and cost add up (`show` sums them)."""
    return type(value) is list and all(
        type(run) is dict and _counts(run.get("usage"))
        and type(run.get("cost_usd")) in (int, float, _NONE) for run in value)
# Each field's JSON type, in words and as a test: the types its value may have, or a
# function of the value. In the order a record is checked. JSON gives exact types (bool
# is not int here), so testing type(value) suffices, at a third of isinstance's cost.
_TYPES: dict[str, tuple[str, frozenset[type] | Callable[[Any], bool]]] = {
    **dict.fromkeys(_STRINGS, ("a string", frozenset({str}))),
    "scope": ('"user" or "system"', lambda v: v in ("user", "system")),
    **dict.fromkeys(_OPTIONAL_STRINGS, ("a string or null", frozenset({str, _NONE}))),
    **dict.fromkeys(("main_pid", "exit_code"), ("an integer or null", frozenset({int, _NONE}))),
    "argv": ("a non-empty list of strings", lambda v: _strings(v) and bool(v)),
    **dict.fromkeys(_STRING_LISTS, ("a list of strings", _strings)),
    "persistent": ("true or false", frozenset({bool})),
    "restarts": ("a count", lambda v: type(v) is int and v >= 0),
    "history": ("a list of runs (objects whose usage is counts and cost a number)", _runs),
    "options": ("an object", frozenset({dict})),
    "agent": ("an object", frozenset({dict})),
    "agent_error": ("true, false or null", frozenset({bool, _NONE})),
    "usage": ("an object of counts", _counts),
    "cost_usd": ("a number", frozenset({int, float, _NONE})),
    "env": ("an object of strings", lambda v: type(v) is dict and all(
        type(k) is str and type(x) is str for k, x in v.items())),
}  # placement has never been checked


class _Layout:
    """What a record with one layout (its fields, in order) needs checked and made."""

    __slots__ = ("absent", "right", "scalars", "tests")

    def __init__(self, keys: tuple[str, ...], shape: Shape) -> None:
        plain = [k for k in keys if isinstance(_TYPES.get(k, ("", None))[1], frozenset)]
        # The plain fields' values as a tuple, at C speed (itemgetter of one is a value).
        self.scalars: Callable[[dict[str, Any]], tuple[Any, ...]] | None = \
            operator.itemgetter(*plain) if len(plain) > 1 else \
            (lambda d: (d[plain[0]],)) if plain else None
        self.right: set[tuple[type, ...]] = set()  # their types, where found right
        self.tests: tuple[tuple[str, Callable[[Any], bool]], ...] = tuple(
            (k, test) for k in keys if k in _TYPES
            for test in (_TYPES[k][1],) if not isinstance(test, frozenset))
        self.absent = tuple((n, f) for n, f in shape.factories if n not in keys)


_LAYOUTS: dict[tuple[str, ...], _Layout] = {}
_LAYOUTS_KEPT = 1024  # a file of hand-edited records may have any number


def record_values(data: object, where: str, shape: Shape) -> dict[str, Any]:
    """The values of every field of a record (of SHAPE) from its JSON DATA: those given,
    and defaults for the rest. ValueError, naming the file WHERE, if it is no object or
    a field is unknown, missing, or of the wrong JSON type (the first such in order)."""
    if type(data) is not dict:
        raise ValueError(f"{where}: a session record is not an object")
    keys = tuple(data)
    layout = _LAYOUTS.get(keys)
    if layout is None:
        layout = _new_layout(keys, shape, where)
    values = {**shape.defaults, **data}
    for name, factory in layout.absent:
        values[name] = factory()
    if layout.scalars is not None:
        kinds = tuple(map(type, layout.scalars(data)))
        if kinds not in layout.right:
            _check_types(values, where)
            layout.right.add(kinds)
    for name, test in layout.tests:
        if not test(data[name]):
            _check_types(values, where)
    return values


def _new_layout(keys: tuple[str, ...], shape: Shape, where: str) -> _Layout:
    given = set(keys)
    unknown = sorted(given - set(shape.names))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} in a session record")
    missing = sorted(shape.required - given)
    if missing:
        raise ValueError(f"{where}: bad session record: missing field {missing[0]!r}")
    layout = _Layout(keys, shape)
    if len(_LAYOUTS) < _LAYOUTS_KEPT:
        _LAYOUTS[keys] = layout
    return layout


def _check_types(values: dict[str, Any], where: str) -> None:
    """Refuse a record's VALUES if a field has the wrong JSON type, naming the first
    such in _TYPES' order (defaults are right)."""
    for name, (expected, valid) in _TYPES.items():
        value = values[name]
        if not (type(value) in valid if isinstance(valid, frozenset) else valid(value)):
            raise ValueError(f"{where}: field {name!r} of session {values['id']!r} is not "
                             f"{expected}")
