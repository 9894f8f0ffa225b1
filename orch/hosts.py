"""Remote hosts: where `--host` points, and the fleet the configuration lists.

A host is reached as `systemctl -H` reaches one: over SSH, as the SSH user. Its address
is `[USER@]HOST[:PORT]` (an IPv6 literal in brackets); a name of the fleet
(`[hosts.NAME] address = "..."`) stands for its address. Pure parsing, no I/O: the
transport is orch.ssh, the commands orch.remote.
"""

from __future__ import annotations

import re

from orch.errors import UsageError
from orch.frozen import dataclass, field

# What the choice of a host by orch takes instead of an address.
AUTO = "auto"
# The local machine in a listing of every host.
LOCAL = "local"

# ssh(1) would read a leading '-' as an option, and a shell the rest as syntax: a user
# and a host name are held to the characters DNS and POSIX user names use. Patterns,
# compiled on first use (re caches them).
_USER = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}"
# (with '_', which ssh_config(5) aliases may hold)
_HOSTNAME = (r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
             r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")
_IPV6 = r"[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?"


@dataclass(frozen=True)
class Address:
    """Where SSH reaches a host: its name or IP, and optionally the user and port."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def destination(self) -> str:
        """ssh's destination argument: [USER@]HOST (the port goes in -p)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port is not None else text


def parse_address(text: str) -> Address:
    """TEXT as `[USER@]HOST[:PORT]`; UsageError naming what is wrong otherwise."""
    where = f"host address {text!r}"
    user: str | None = None
    rest = text
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not re.fullmatch(_USER, user):
            raise UsageError(f"{where}: the user must be letters, digits, '_', '.' and '-', "
                             "not starting with '-' or '.'")
    port_text: str | None = None
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise UsageError(f"{where}: an IPv6 address needs its closing ']'")
        host, tail = rest[1:close], rest[close + 1:]
        if tail:
            if not tail.startswith(":"):
                raise UsageError(f"{where}: expected ':PORT' after ']'")
            port_text = tail[1:]
        if not re.fullmatch(_IPV6, host) or ":" not in host:
            raise UsageError(f"{where}: {host!r} is not an IPv6 address")
    else:
        host, sep, port_text = rest.partition(":")
        port_text = port_text if sep else None
        if not re.fullmatch(_HOSTNAME, host):
            raise UsageError(f"{where}: the host must be a DNS name or an IP address")
    port: int | None = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise UsageError(f"{where}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return Address(host=host, user=user, port=port)


@dataclass(frozen=True)
class Host:
    """A host of the fleet (or one named on the command line): the name orch shows, its
    address, its labels, and the command that runs orch there."""

    name: str
    address: Address
    labels: tuple[str, ...] = field(default_factory=tuple)
    orch: str = "orch"


def fleet(hosts: dict[str, dict[str, object]]) -> dict[str, Host]:
    """The configuration's [hosts.NAME] tables (already validated) as Hosts."""
    found: dict[str, Host] = {}
    for name, table in sorted(hosts.items()):
        labels = table.get("labels", [])
        found[name] = Host(name=name, address=parse_address(str(table["address"])),
                           labels=tuple(str(label) for label in labels)
                           if isinstance(labels, list) else (),
                           orch=str(table.get("orch", "orch")))
    return found


def resolve(text: str, known: dict[str, Host]) -> Host:
    """The host TEXT names: a fleet name, else an address given as it is."""
    if text in known:
        return known[text]
    if text == AUTO:
        raise UsageError("--host auto chooses a host for a new session: only `orch spawn` "
                         "takes it")
    if text == LOCAL:
        raise UsageError("--host local: leave out --host to use this machine")
    address = parse_address(text)
    return Host(name=str(address), address=address)


def matching(known: dict[str, Host], label: str | None) -> list[Host]:
    """The fleet's hosts that carry LABEL (all of them without one), by name."""
    return [host for _, host in sorted(known.items())
            if label is None or label in host.labels]

