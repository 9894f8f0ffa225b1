"""orch: run AI coding agents and other long-running commands as systemd services.

`import orch` gives the library API (orch.api) without the CLI:

    import orch
    session = orch.spawn(["claude", "-p", "fix the tests"], name="fixer")
    orch.wait([session.id])

Attributes load lazily, so that light entry points (the exit hook every session runs)
do not pay for pystemd and psutil.
"""

from __future__ import annotations

import sys

# Not `from typing import ...`: typing alone costs ~10 ms of every command's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, ClassVar

__version__ = "0.1.0"

_API = ("spawn", "list_sessions", "show", "logs", "logs_command", "wait", "stop", "kill",
        "send", "turn_results", "recover", "reap", "current_scope", "WaitOutcome",
        "RecoverReport")
_MODELS = {"Session": "orch.session", "Status": "orch.session", "Record": "orch.session",
           "Scope": "orch.scope", "OrchError": "orch.errors", "SessionSpec": "orch.spec"}

__all__ = [
    "OrchError",
    "Record",
    "RecoverReport",
    "Scope",
    "Session",
    "SessionSpec",
    "Status",
    "WaitOutcome",
    "__version__",
    "current_scope",
    "kill",
    "list_sessions",
    "logs",
    "logs_command",
    "reap",
    "recover",
    "send",
    "show",
    "spawn",
    "stop",
    "turn_results",
    "wait",
]

if TYPE_CHECKING:
    from orch.api import (
        RecoverReport,
        WaitOutcome,
        current_scope,
        kill,
        list_sessions,
        logs,
        logs_command,
        reap,
        recover,
        send,
        show,
        spawn,
        stop,
        turn_results,
        wait,
    )
    from orch.errors import OrchError
    from orch.scope import Scope
    from orch.session import Record, Session, Status
    from orch.spec import SessionSpec


class _LighterImports:
    """An import hook, once per module: two modules every command loads import others
    for rarely used features, at a cost above their own. dataclasses imports inspect
    (with ast, dis and tokenize, some 10 ms) only to word a docstring for a class that
    has none, and every class of orch's has one. pathlib imports urllib.parse (with
    ipaddress, some 3 ms) only for Path.as_uri, and (in 3.11, Debian bookworm's) re,
    fnmatch and warnings (some 2 ms) only for glob, match and two deprecated methods
    (a later pathlib uses them as it loads). While either loads, what it imports
    is a stand-in that imports the real module when it is used; every later importer
    gets the real one. Nothing changes for a module loaded already."""

    # The module loading: what it imports, each with the functions it takes from it.
    PENDING: ClassVar[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
        "dataclasses": (("inspect", ()),),
        "pathlib": (("urllib.parse", ("quote_from_bytes",)),
                    *((("re", ()), ("fnmatch", ()), ("warnings", ()))
                      if sys.version_info < (3, 12) else ()))}

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name not in cls.PENDING:
            return None
        lazies = [(lazy, functions) for lazy, functions in cls.PENDING.pop(name)
                  if lazy not in sys.modules]
        if not cls.PENDING:
            sys.meta_path.remove(cls)
        if not lazies:
            return None
        spec = _find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        run_body = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            stand_ins = {lazy: _stand_in(lazy, functions) for lazy, functions in lazies}
            sys.modules.update(stand_ins)
            try:
                run_body(module)
            finally:
                for lazy, stand_in in stand_ins.items():
                    if sys.modules.get(lazy) is stand_in:
                        del sys.modules[lazy]

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _find_spec(name: str, path: Any = None) -> ModuleSpec | None:
    """importlib.machinery.PathFinder.find_spec (the finder of modules on sys.path),
    without loading importlib's package, and warnings with it."""
    from _frozen_importlib_external import PathFinder

    return PathFinder.find_spec(name, path)


def _stand_in(name: str, functions: tuple[str, ...]) -> ModuleType:
    """A module NAME whose attributes are the real module's, imported when one is first
    read; FUNCTIONS, which a `from NAME import ...` reads at once, import it when first
    called."""
    import types

    def real() -> ModuleType:
        if sys.modules.get(name) is stand_in:  # used while its importer still loads
            del sys.modules[name]
        __import__(name)  # importlib.import_module, without loading importlib
        return sys.modules[name]

    def attribute(attr: str) -> object:
        if attr.startswith("__"):  # what the import system asks of any module
            raise AttributeError(attr)
        return getattr(real(), attr)

    def deferred(attr: str) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            return getattr(real(), attr)(*args, **kwargs)
        return call

    stand_in = types.ModuleType(name)
    stand_in.__getattr__ = attribute  # type: ignore[method-assign]  # PEP 562
    for function in functions:
        setattr(stand_in, function, deferred(function))
    return stand_in


if "dataclasses" in sys.modules:
    del _LighterImports.PENDING["dataclasses"]
if "pathlib" in sys.modules:
    del _LighterImports.PENDING["pathlib"]
if _LighterImports.PENDING:
    sys.meta_path.insert(0, _LighterImports)


def __getattr__(name: str) -> Any:
    # Asked too by each first `from orch import SUBMODULE`: importlib (and warnings) only
    # for a name of its own.
    module = "orch.api" if name in _API else _MODELS.get(name)
    if module is None:
        raise AttributeError(f"module 'orch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
