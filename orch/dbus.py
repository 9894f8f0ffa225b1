"""pystemd's D-Bus layer as orch loads and speaks it: the manager's names, the encoding
of transient unit properties, and the loading of dbuslib without the rest of pystemd.

Light on purpose (sys and orch.errors only): every command loads it, and bench/floor.py measures
what a Python program on pystemd pays at the least by loading only this.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from orch.errors import OrchError

# Not `from typing import ...`: typing costs ~5 ms of every command's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # A transient unit property: (name, D-Bus signature, value).
    Property = tuple[str, str, Any]
else:
    Property = tuple

DESTINATION = b"org.freedesktop.systemd1"
MANAGER_PATH = b"/org/freedesktop/systemd1"
MANAGER_IFACE = b"org.freedesktop.systemd1.Manager"
PROPERTIES_IFACE = b"org.freedesktop.DBus.Properties"
UNIT_IFACE = b"org.freedesktop.systemd1.Unit"
SERVICE_IFACE = b"org.freedesktop.systemd1.Service"


def load_pystemd() -> None:
    """Load pystemd's D-Bus layer (dbuslib, dbusexc) and no more of pystemd than orch
    uses: 25-40 ms of every command's start otherwise.

    - The package's __init__ imports lxml and the object layer for introspection orch
      never uses. A stand-in package takes its place while dbuslib loads; a later
      `import pystemd` runs the real one, which finds dbuslib loaded.
    - dbuslib imports `pystemd.utils.x2char_star` (utils pulls in typing, pathlib, uuid,
      shlex) and `pprint.pformat` (pprint pulls in dataclasses and inspect) at load time.
      It gets deferred stand-ins (`_Deferred`), which import the real module on first
      use that needs it: bytes, all orch sends, pass x2char_star untouched; pformat is
      used only to word an error.
    - A dbuslib that asks for anything else fails its stand-in import; it is then
      loaded plainly.

    Afterwards `from pystemd.dbuslib import X` finds the loaded module (plain
    `import pystemd.dbuslib` would import the package)."""
    if "pystemd.dbuslib" in sys.modules:
        return
    if "pystemd" in sys.modules:  # the real package is loaded already
        import pystemd.dbuslib
        return
    import types

    spec = _find_spec("pystemd")
    if spec is None or spec.submodule_search_locations is None:
        raise OrchError("pystemd is not installed", hint="run `make setup`")
    stand_in = types.ModuleType("pystemd")
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__spec__ = spec
    stand_ins = {"pystemd": stand_in, **_deferred_modules(types.ModuleType)}
    for name, module in stand_ins.items():
        sys.modules.setdefault(name, module)
    try:
        import pystemd.dbusexc
        import pystemd.dbuslib
    except ImportError:
        _drop(stand_ins)
        sys.modules.pop("pystemd.dbuslib", None)
        sys.modules["pystemd"] = stand_in
        import pystemd.dbuslib  # noqa: F401  (the real utils and pprint this time)
    finally:
        _drop(stand_ins)


def _find_spec(name: str) -> Any:
    """importlib.util.find_spec(NAME) for a package not loaded yet: asked of every finder
    (sys.path's, an editable install's), without loading importlib's package."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec = find(name, None) if find is not None else None
        if spec is not None:
            return spec
    return None


def _drop(stand_ins: dict[str, Any]) -> None:
    for name, module in stand_ins.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]


def _x2char_star(value: Any, convert_all: bool = False) -> Any:
    if type(value) is bytes:
        return value
    from pystemd.utils import x2char_star

    return x2char_star(value, convert_all)


def _pformat(value: object) -> str:
    from pprint import pformat

    return pformat(value)


def _deferred_modules(module_type: Callable[[str], Any]) -> dict[str, Any]:
    """Stand-ins for the two modules dbuslib imports one name from at load time."""
    utils = module_type("pystemd.utils")
    utils.x2char_star = _x2char_star
    pprint = module_type("pprint")
    pprint.pformat = _pformat
    return {"pystemd.utils": utils, "pprint": pprint}


def to_bytes(value: Any) -> Any:
    """Strings to bytes, recursively, as pystemd's encoder wants them."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list | tuple):
        return type(value)(to_bytes(v) for v in value)
    return value


def properties_args(properties: Sequence[Property]) -> list[Any]:
    """PROPERTIES as the a(sv) argument of StartTransientUnit, for pystemd's call_method."""
    load_pystemd()
    from pystemd.dbuslib import apply_signature

    args: list[Any] = [(ord("a"), b"(sv)")]
    for name, signature, value in properties:
        args += [(ord("r"), b"sv"), (ord("s"), name.encode()), (ord("v"), signature.encode())]
        args += apply_signature(signature.encode(), [to_bytes(value)])
        args += [(-1, None), (-1, None)]
    args.append((-1, None))
    return args
