"""Expected failures: each carries one line for the user and an exit code."""

from __future__ import annotations


class OrchError(Exception):
    """An expected failure: the CLI prints `message` (and `hint`) on one line each, no trace."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(OrchError):
    """The caller asked for something malformed (bad option value, bad argv)."""

    exit_code = 2


class NotFound(OrchError):
    """No session matches the reference given."""

    exit_code = 2


class Ambiguous(OrchError):
    """More than one session matches the reference given."""

    exit_code = 2


class ManagerUnreachable(OrchError):
    """No systemd manager answers for the scope asked for."""

    exit_code = 3


class ManagerTimeout(OrchError):
    """The manager did not answer a call within the call timeout."""

    exit_code = 3


class PermissionDenied(OrchError):
    """The manager or the file system refused the caller."""

    exit_code = 4


class StateError(OrchError):
    """The state file cannot be read or written safely; it is left as it was."""

    exit_code = 5


class SpawnFailed(OrchError):
    """The agent's unit could not be started."""

    exit_code = 1


class suppress:  # lower case: named as the one it stands in for
    """contextlib.suppress: the body's exceptions of KINDS end it quietly (exception
    groups as any other exception: orch raises none). contextlib's import would cost
    every command 0.6-0.8 ms, so orch's spawn and listing paths use this instead."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)
