"""Commands on other hosts. Each host keeps its own state file, journal and recovery
units: a remote session's record lives on the host that runs it, which is where its
boot recovery looks, and this machine keeps no copy that could disagree.

So a command with --host runs orch on that host over SSH (a change to a host's state
is locked where its state file is), and orch reads the hosts' own managers directly,
D-Bus over SSH as `systemctl -H` does, to choose where a new session goes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from orch import jsontext, ssh
from orch.errors import OrchError, UsageError
from orch.hosts import LOCAL, Host
from orch.memory import SESSION_SLICE, combined, meminfo_available
from orch.scope import Scope
from orch.ssh import HostUnreachable

_MAX_PARALLEL = 16


def run(host: Host, args: Sequence[str], terminal: bool = False) -> int:
    """`orch ARGS` on HOST, its output and exit status passed through as its own (on a
    terminal there with TERMINAL: `orch attach`)."""
    code = ssh.run(host, [host.orch, *args], terminal=terminal)
    if code == ssh.NOT_FOUND:
        ad_hoc = host.name == str(host.address)  # an address the fleet does not name
        raise OrchError(f"host {host.name} has no `{host.orch}` to run",
                        hint="install orch there, or name the host in the config with "
                        "its orch: [hosts.NAME] address = ..., orch = PATH" if ad_hoc else
                        f"install orch there, or set hosts.{host.name}.orch to its path")
    return code


# --- every host's sessions -----------------------------------------------------------

@dataclass(frozen=True)
class Listing:
    """One host's answer to `orch ps --json`: its sessions, or why there are none."""

    host: str
    sessions: list[dict[str, object]]
    problem: str | None = None


def _listing(host: Host, ps_args: Sequence[str], timeout: float) -> Listing:
    try:
        answer = ssh.capture(host.address, [host.orch, "ps", "--json", *ps_args], timeout)
    except ssh.Unanswered as err:
        return Listing(host.name, [], err.reason)
    return parse_listing(host.name, answer)


def parse_listing(name: str, answer: str) -> Listing:
    """Host NAME's sessions from ANSWER, its `orch ps --json`."""
    try:
        sessions = jsontext.loads(answer)
        if not isinstance(sessions, list) or not all(isinstance(s, dict) for s in sessions):
            raise ValueError("not a list of sessions")
    except ValueError as err:
        return Listing(name, [], f"unreadable answer: {err}")
    for session in sessions:
        session["host"] = name
    return Listing(name, sessions)


def _local_listing(read: Callable[[], list[dict[str, object]]]) -> Listing:
    try:
        sessions = read()
    except OrchError as err:
        return Listing(LOCAL, [], err.message)
    for session in sessions:
        session["host"] = LOCAL
    return Listing(LOCAL, sessions)


def list_all(hosts: Sequence[Host], ps_args: Sequence[str],
             local: Callable[[], list[dict[str, object]]] | None = None,
             timeout: float | None = None) -> list[Listing]:
    """This machine's sessions as LOCAL reads them (in this process), and `orch ps --json
    PS_ARGS` on every host, all at once, each host bounded by TIMEOUT; in that order."""
    seconds = timeout if timeout is not None else ssh.host_timeout()
    jobs: list[Callable[[], Listing]] = []
    if local is not None:
        jobs.append(partial(_local_listing, local))
    jobs += [partial(_listing, host, ps_args, seconds) for host in hosts]
    if not jobs:
        return []
    with ThreadPoolExecutor(min(len(jobs), _MAX_PARALLEL)) as pool:
        return list(pool.map(lambda job: job(), jobs))


class Following:
    """FLEET's sessions as each host last answered (`orch top --all-hosts`), each read
    again in a thread of its own when asked once its last reading is done: a host that
    does not answer holds up neither the view's keys nor its other rows (list_all waits
    for every host), and says why, once (news)."""

    def __init__(self, fleet: Sequence[Host], ps_args: Sequence[str]) -> None:
        self.fleet, self.ps_args = fleet, ps_args
        self._lock = threading.Lock()
        self._reading: set[str] = set()
        self._sessions: dict[str, list[dict[str, object]]] = {}
        self._problems: dict[str, str] = {}
        self._told: dict[str, str] = {}

    def sessions(self) -> list[dict[str, object]]:
        """Every host's sessions as it last answered (none from one that did not); a new
        reading of each host that is not being read."""
        with self._lock:
            for host in self.fleet:
                if host.name not in self._reading:
                    self._reading.add(host.name)
                    threading.Thread(target=self._read, args=(host,), daemon=True).start()
            return [s for found in self._sessions.values() for s in found]

    def _read(self, host: Host) -> None:
        try:
            [listing] = list_all([host], self.ps_args)
            sessions, problem = listing.sessions, listing.problem
        except Exception as err:  # a thread's end: said as the host's problem
            sessions, problem = [], str(err) or type(err).__name__
        with self._lock:
            self._reading.discard(host.name)
            self._sessions[host.name] = sessions
            if problem is None:
                self._problems.pop(host.name, None)
            else:
                self._problems[host.name] = problem

    def news(self) -> list[str]:
        """A line for each host that stopped answering (or failed anew) since last asked."""
        with self._lock:
            new = {name: problem for name, problem in self._problems.items()
                   if self._told.get(name) != problem}
            self._told = dict(self._problems)
        return [f"host {name}: {problem}" for name, problem in sorted(new.items())]


# --- placement ---------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """What one host said of its free memory, or why it said nothing."""

    host: Host
    free_bytes: int | None = None
    limit_bytes: int | None = None  # MemoryAvailable= of its sessions' slice, if limited
    problem: str | None = None


def read_free(host: Host, scope: Scope | None, timeout: float) -> Reading:
    """HOST's free memory for a new session: its manager's MemoryAvailable= for the slice
    sessions go to (the limits an administrator set), no more than the kernel's
    MemAvailable. Read over one SSH connection: the manager through D-Bus, the kernel's
    figure from /proc/meminfo."""
    probe = ["sh", "-c", "id -u && cat /proc/meminfo"]
    try:
        answer = ssh.capture(host.address, probe, timeout)
    except ssh.Unanswered as err:
        return Reading(host, problem=err.reason)
    uid_text, _, meminfo = answer.partition("\n")
    physical = meminfo_available(meminfo)
    if not uid_text.strip().isdigit() or physical is None:
        return Reading(host, problem="unreadable /proc/meminfo")
    if scope is None:  # the remote orch's own default, by the user SSH logs in as
        scope = Scope.SYSTEM if int(uid_text) == 0 else Scope.USER
    from orch.systemd import Manager

    address = ssh.bus_address(host.address, user=scope is Scope.USER, timeout=timeout)
    try:
        with Manager(scope, timeout=timeout, remote=address) as manager:
            limit = manager.memory_available(SESSION_SLICE[scope])
    except OrchError as err:
        return Reading(host, problem=err.message)
    return Reading(host, free_bytes=combined(physical, limit), limit_bytes=limit)


def _size(value: int) -> str:
    return f"{value / 1024**3:.1f}G" if value >= 1024**3 else f"{value / 1024**2:.0f}M"


def describe(reading: Reading) -> str:
    """One host's reading in words: `h1 1.9G free` or `h2 unreachable (why)`."""
    if reading.free_bytes is None:
        return f"{reading.host.name}: {reading.problem}"
    return f"{reading.host.name} {_size(reading.free_bytes)} free"


def place(candidates: Sequence[Host], scope: Scope | None, label: str | None,
          timeout: float | None = None,
          reader: Callable[[Host, Scope | None, float], Reading] = read_free
          ) -> tuple[Host, str, list[Reading]]:
    """The candidate with the most free memory (ties: the first by name), the words that
    record the choice, and every reading."""
    what = f"with label {label!r}" if label else "in the fleet"
    if not candidates:
        raise UsageError(f"no host {what}", hint="list hosts as [hosts.NAME] in the config")
    seconds = timeout if timeout is not None else ssh.host_timeout()
    with ThreadPoolExecutor(min(len(candidates), _MAX_PARALLEL)) as pool:
        readings = list(pool.map(lambda host: reader(host, scope, seconds), candidates))
    answered = [r for r in readings if r.free_bytes is not None]
    if not answered:
        raise HostUnreachable(f"no host {what} answered: "
                              + "; ".join(describe(r) for r in readings))
    best = max(answered, key=lambda r: r.free_bytes or 0)  # max keeps the first of ties
    others = [describe(r) for r in readings if r is not best]
    words = (f"auto{f' (label {label})' if label else ''}: most free memory, "
             f"{_size(best.free_bytes or 0)}" + (f"; {', '.join(others)}" if others else ""))
    return best.host, words, readings
