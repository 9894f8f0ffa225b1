"""Frozen dataclasses made without generating code, or loading dataclasses, at import.

`@dataclass(frozen=True)` writes the source of __init__, __repr__, __eq__, __hash__,
__setattr__ and __delattr__ for each class and compiles it: some 0.6 ms a small class
and 2 ms a large one, paid by every command at start (a spawn loads a dozen records);
even reading the fields costs dataclasses 0.2 ms a class, and loading dataclasses (with
copy) 1.5 ms. Here a class gets the same behaviour from methods shared by every class,
bound to its fields, read from its annotations and defaults. `dataclasses` sees a
dataclass: `__dataclass_fields__` is made when first read, so dataclasses.fields,
replace and asdict work on it as on any dataclass; orch's own code uses this module's
replace and shape, which need no dataclasses. Type checkers see the real decorator.

Only what orch's records use: frozen, every field in __init__, __repr__ and __eq__, no
__post_init__, ClassVar, InitVar, kw_only, slots or inheritance of fields.
"""

from __future__ import annotations

import operator
import reprlib
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_UNSET = object()  # a field without a default, in an __init__'s template
MISSING: Any = object()  # no default (dataclasses.MISSING, without loading dataclasses)


class _Field:
    """What `field()` gives in a class body."""

    __slots__ = ("default", "default_factory")

    def __init__(self, default: object, default_factory: Any) -> None:
        self.default, self.default_factory = default, default_factory


def _field(*, default: Any = MISSING, default_factory: Any = MISSING) -> Any:
    """`dataclasses.field`, for a default or a default factory only."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory)


class Shape:
    """A frozen class's fields: their names in order, those with no default, the plain
    defaults and the default factories."""

    __slots__ = ("defaults", "factories", "names", "required")

    def __init__(self, names: tuple[str, ...], defaults: dict[str, Any],
                 factories: tuple[tuple[str, Callable[[], Any]], ...]) -> None:
        self.names, self.defaults, self.factories = names, defaults, factories
        self.required = frozenset(names) - defaults.keys() - {n for n, _ in factories}


def shape(cls: type) -> Shape:
    """The fields of CLS, a class this module made."""
    found: Shape = cls.__dict__["_frozen_shape"]
    return found


def _replace(obj: Any, /, **changes: Any) -> Any:
    """`dataclasses.replace` for OBJ of a class this module made."""
    values = obj.__dict__.copy()
    values.update(changes)
    return type(obj)(**values)


def _read_shape(cls: Any, annotations: dict[str, Any]) -> Shape:
    """The fields of CLS's body (its ANNOTATIONS), in order; a field() in it becomes its
    default, as dataclasses does."""
    names: list[str] = []
    defaults: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    real = sys.modules.get("dataclasses")  # a dataclasses.field() in the body, if loaded
    for name, annotation in annotations.items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar", "InitVar",
                                       "dataclasses.InitVar", "KW_ONLY")):
            raise TypeError(f"{cls.__qualname__}: orch.frozen does not take {annotation}")
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, _Field) or (real is not None and isinstance(value, real.Field)):
            default, factory = value.default, value.default_factory
            if real is not None and default is real.MISSING:
                default = MISSING
            if real is not None and factory is real.MISSING:
                factory = MISSING
            if real is not None and isinstance(value, real.Field) and (
                    value.init is False or value.kw_only is True):
                raise TypeError(f"{cls.__qualname__}: orch.frozen does not take this field")
        else:
            default, factory = value, MISSING
        if default is not MISSING and type(default).__hash__ is None:
            raise ValueError(f"mutable default {type(default)} for field {name} is not "
                             "allowed: use default_factory")
        if default is MISSING and factory is MISSING and (defaults or factories):
            raise TypeError(f"non-default argument {name!r} follows default argument")
        names.append(name)
        if factory is not MISSING:
            factories.append((name, factory))
            if name in cls.__dict__:
                delattr(cls, name)
        elif default is not MISSING:
            defaults[name] = default
            setattr(cls, name, default)
    return Shape(tuple(names), defaults, tuple(factories))


class _DataclassFields:
    """A class's `__dataclass_fields__`, made of dataclasses' Field objects when first
    read: then it is the class's own attribute, as dataclasses sets it."""

    def __init__(self, found: Shape, annotations: dict[str, Any]) -> None:
        self.shape, self.annotations = found, annotations

    def __get__(self, instance: object, owner: type) -> dict[str, Any]:
        import dataclasses

        factories: dict[str, Any] = dict(self.shape.factories)
        made = {}
        for name in self.shape.names:
            made[name] = made_field = dataclasses.field(
                default=self.shape.defaults.get(name, dataclasses.MISSING),
                default_factory=factories.get(name, dataclasses.MISSING))
            made_field.name, made_field.type = name, self.annotations[name]
            # What dataclasses' own processing sets: a field proper (not a ClassVar).
            made_field._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
        type.__setattr__(owner, "__dataclass_fields__", made)
        return made


def _frozen_dataclass(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """`dataclasses.dataclass(frozen=True)`, as described above."""
    if not frozen:
        raise TypeError("orch.frozen makes frozen dataclasses only")
    if cls is None:
        return _make
    return _make(cls)


def _make(cls: Any) -> Any:
    # The class's own annotations, as dataclasses reads them (inspect.get_annotations
    # would load inspect, the very cost this module avoids).
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    found = _read_shape(cls, annotations)
    names = found.names
    name_set = frozenset(names)
    required = found.required
    # Every field in order, holding its default: an instance's values start as a copy.
    template = {name: found.defaults.get(name, _UNSET) for name in names}
    factories = found.factories
    cls._frozen_shape = found
    cls.__dataclass_fields__ = _DataclassFields(found, annotations)
    cls.__match_args__ = names  # type: ignore[misc]
    # The fields' values as a tuple, at C speed (attrgetter of one name gives the value).
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names) \
        if len(names) > 1 else (lambda self: tuple(getattr(self, name) for name in names))
    title = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if not args and tuple(kwargs) == names:  # every field, in order: nothing to check
            self.__dict__.update(kwargs)
            return
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
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in name_set:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot delete field {name!r}")
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
    from dataclasses import replace as replace
else:
    dataclass = _frozen_dataclass
    field = _field
    replace = _replace
