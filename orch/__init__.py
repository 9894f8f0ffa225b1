"""orch: run AI coding agents and other long-running commands as systemd services.

`import orch` gives the library API (orch.api) without the CLI:

    import orch
    session = orch.spawn(["claude", "-p", "fix the tests"], name="fixer")
    orch.wait([session.id])

Attributes load lazily, so that light entry points (the exit hook every session runs)
do not pay for pystemd and psutil.
"""

from __future__ import annotations

# Not `from typing import ...`: typing alone costs ~10 ms of every command's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    import importlib

    if name in _API:
        return getattr(importlib.import_module("orch.api"), name)
    if name in _MODELS:
        return getattr(importlib.import_module(_MODELS[name]), name)
    raise AttributeError(f"module 'orch' has no attribute {name!r}")
