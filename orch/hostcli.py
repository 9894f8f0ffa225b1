"""`--host` and `--label` on the command line: which host a command runs on.

They are taken out of the command line before it is parsed, wherever they stand before
`--` (or before the program of `orch spawn`), and the rest runs as it is, on that host.
"""

from __future__ import annotations

import os
import sys

from orch.commandline import HOST_OPTIONS, ROOT_FLAGS
from orch.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.fastcli import Scan
    from orch.hosts import Host
    from orch.scope import Scope

# Commands that act on this machine only.
_LOCAL_ONLY = ("box", "completion", "serve")
# The host every command runs on when the command line names none.
HOST_ENV = "ORCH_HOST"


def split(args: list[str]) -> Scan:
    """ARGS read by the one scanner of command lines (orch.fastcli.scan): `host` and
    `label` as --host and --label give them, and `args`, the line without them. A
    command's own options that take a value are stepped over with it, so that
    `--name --host` keeps its meaning."""
    from orch.fastcli import scan

    return scan(args)


def _command_name(args: list[str]) -> str | None:
    rest = [a for a in args if a not in ROOT_FLAGS]
    return rest[0] if rest else None


def _scope(found: Scan) -> Scope | None:
    """The scope the command line FOUND asks for with --user or --system, else None."""
    from orch.scope import Scope

    user, system = found.given("user"), found.given("system")
    return Scope.choose(user, system) if user or system else None


def _fleet(scope: Scope | None) -> dict[str, Host]:
    """The fleet in the configuration of SCOPE (the caller's default one if None)."""
    from orch import config, hosts
    from orch.scope import Scope

    return hosts.fleet(config.load(scope or Scope.default()).hosts)


def requested_host(args_host: str | None) -> str | None:
    """The host a command names: its --host, else ORCH_HOST (empty means none)."""
    if args_host is not None:
        return args_host
    return os.environ.get(HOST_ENV) or None


def run(args: list[str]) -> int | None:
    """Run ARGS on the host they name (or ORCH_HOST names), and return its exit status;
    None when they name none: the command runs here."""
    if HOST_ENV not in os.environ and not any(
            a.startswith(HOST_OPTIONS) for a in args):
        return None  # the common case, decided without loading what follows
    from orch import hosts

    target = split(args)
    requested = requested_host(target.host)
    command = _command_name(target.args)
    if requested is None and target.label is None:
        return None
    if command in _LOCAL_ONLY or command is None or command.startswith("-"):
        if target.host is None and target.label is None:
            return None  # ORCH_HOST does not send `orch box` or `orch --help` away
        if command is None:
            raise UsageError("--host and --label go with a command (see `orch --help`)")
        raise UsageError(f"--host and --label do not apply to `orch {command}`")
    if command in ("ps", "top") and "--all-hosts" in target.args:
        if target.host is not None or target.label is not None:
            raise UsageError("--all-hosts lists every host: leave out --host and --label")
        return None
    from orch import remote

    scope = _scope(target)
    known = _fleet(scope)
    if requested == hosts.AUTO or target.label is not None:
        if target.host not in (None, hosts.AUTO):  # ORCH_HOST, a default, gives way
            raise UsageError("--label chooses the host: give it with --host auto, or alone")
        if command != "spawn":
            raise UsageError("--host auto and --label choose a host for a new session: "
                             "only `orch spawn` takes them")
        chosen, words, _ = remote.place(hosts.matching(known, target.label), scope,
                                        target.label)
        placement = f"{chosen.name} ({words})"  # said here, and recorded there
        print(f"orch: placing the session on {placement}", file=sys.stderr)
        at = target.args.index("spawn") + 1
        return remote.run(chosen, [*target.args[:at], "--placement", placement,
                                   *target.args[at:]])
    assert requested is not None  # else a label, which took the branch above
    from orch.terminal import on_terminal

    # Off a terminal, no ssh -t (ssh would say it cannot): the orch there refuses alone.
    return remote.run(hosts.resolve(requested, known), target.args,
                      terminal=command in ("attach", "top") and on_terminal())

