"""Frozen dataclasses made without generating code at import.

`@dataclass(frozen=True)` writes the source of __init__, __repr__, __eq__, __hash__,
__setattr__ and __delattr__ for each class and compiles it: some 0.6 ms a small class
and 2 ms a large one, paid by every command at start (a spawn loads a dozen records).
Here a class gets the same behaviour from methods shared by every class, bound to its
fields, while `dataclasses` still reads its fields: dataclasses.fields, replace and
asdict work on it as on any dataclass. Type checkers see the real decorator.

Only what orch's records use: frozen, every field in __init__, __repr__ and __eq__, no
__post_init__, InitVar, kw_only or slots.
"""

from __future__ import annotations

import dataclasses
import operator
import reprlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_UNSET = object()  # a field without a default, in an __init__'s template


def _frozen_dataclass(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """`dataclasses.dataclass(frozen=True)`, as described above."""
    if not frozen:
        raise TypeError("orch.frozen makes frozen dataclasses only")
    if cls is None:
        return _make
    return _make(cls)


def _make(cls: Any) -> Any:
    # No generated code: the fields, their defaults and __match_args__ only.
    dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    if any(f.init is False or f.kw_only is True for f in fields):
        raise TypeError(f"{cls.__qualname__}: orch.frozen does not take this field")
    name_set = frozenset(names)
    required = frozenset(f.name for f in fields if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
    # Every field in order, holding its default: an instance's values start as a copy.
    template = {f.name: _UNSET if f.default is dataclasses.MISSING else f.default
                for f in fields}
    factories = tuple((f.name, f.default_factory) for f in fields
                      if f.default_factory is not dataclasses.MISSING)
    # The fields' values as a tuple, at C speed (attrgetter of one name gives the value).
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names) \
        if len(names) > 1 else (lambda self: tuple(getattr(self, name) for name in names))
    title = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            if len(args) > len(names):
                raise TypeError(f"{title}.__init__() takes {len(names) + 1} positional "
                                f"arguments but {len(args) + 1} were given")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{title}.__init__() got multiple values for "
                                    f"argument {name!r}")
                kwargs[name] = value
        if not kwargs.keys() <= name_set:
            unknown = next(name for name in kwargs if name not in name_set)
            raise TypeError(f"{title}.__init__() got an unexpected keyword argument "
                            f"{unknown!r}")
        if not kwargs.keys() >= required:
            missing = next(name for name in names if name in required and name not in kwargs)
            raise TypeError(f"{title}.__init__() missing 1 required positional argument: "
                            f"{missing!r}")
        values = template.copy()
        values.update(kwargs)
        for name, factory in factories:
            if name not in kwargs:
                values[name] = factory()
        self.__dict__.update(values)  # as dataclasses' frozen __init__, past __setattr__

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(getter(self) == getter(other))
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(getter(self))

    def __setattr__(self: Any, name: str, value: object) -> None:
        if type(self) is cls or name in name_set:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in name_set:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    for method in (__init__, __repr__, __eq__, __hash__, __setattr__, __delattr__):
        if method.__name__ in cls.__dict__:
            raise TypeError(f"{title} defines {method.__name__} itself")
        method.__qualname__ = f"{title}.{method.__name__}"
        setattr(cls, method.__name__, method)
    return cls


if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
else:
    dataclass = _frozen_dataclass
    field = dataclasses.field
