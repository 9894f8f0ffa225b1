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
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

__version__ = "0.1.0"

_API = ("spawn", "list_sessions", "show", "logs", "logs_command", "wait", "stop", "kill",
        "recover", "reap", "current_scope", "WaitOutcome", "RecoverReport")
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
    "show",
    "spawn",
    "stop",
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
        show,
        spawn,
        stop,
        wait,
    )
    from orch.errors import OrchError
    from orch.scope import Scope
    from orch.session import Record, Session, Status
    from orch.spec import SessionSpec


class _DataclassesWithoutInspect:
    """An import hook, once: dataclasses imports inspect (with ast, dis and tokenize, some
    10 ms of every command's start) but uses it only to word a docstring for a class
    that has none, and every class of orch's has one. While dataclasses loads, `inspect`
    is a stand-in that imports the real module when an attribute of it is first read;
    every later importer gets the real one. Nothing changes if either is loaded already."""

    @classmethod
    def find_spec(cls, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name != "dataclasses":
            return None
        sys.meta_path.remove(cls)
        if "inspect" in sys.modules:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        run_body = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            import types

            def real(attribute: str) -> object:
                import importlib

                return getattr(importlib.import_module("inspect"), attribute)

            stand_in = types.ModuleType("inspect")
            stand_in.__getattr__ = real  # type: ignore[method-assign]  # PEP 562
            sys.modules["inspect"] = stand_in
            try:
                run_body(module)
            finally:
                if sys.modules.get("inspect") is stand_in:
                    del sys.modules["inspect"]

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "dataclasses" not in sys.modules:
    sys.meta_path.insert(0, _DataclassesWithoutInspect)


def __getattr__(name: str) -> Any:
    import importlib

    if name in _API:
        return getattr(importlib.import_module("orch.api"), name)
    if name in _MODELS:
        return getattr(importlib.import_module(_MODELS[name]), name)
    raise AttributeError(f"module 'orch' has no attribute {name!r}")
