"""Sessions: the records orch keeps, what systemd says of their units, and the pure
policy that turns both into a status. Free of pystemd, psutil and typer: the exit hook
imports it at every session's end, and must start fast.
"""

from __future__ import annotations

import time
from enum import StrEnum

from orch.cgroups import NO_USAGE, Usage
from orch.frozen import dataclass, field, replace, shape
from orch.recordcheck import record_values

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms at import: the exit hook runs this module
    from collections.abc import Mapping
    from datetime import datetime
    from typing import Any


class Status(StrEnum):
    """A session's status: the closed vocabulary of the JSON contract."""

    STARTING = "starting"
    RUNNING = "running"
    IDLE = "idle"  # running, a conversation waiting for its next message (orch send)
    QUEUED = "queued"  # waiting in its queue for a slot (spawn --queue)
    LIMITED = "limited"  # its agent hit a usage limit: resumed at its reset (resumes_at)
    RETRYING = "retrying"  # the API failed its agent: run again at resumes_at (--retries)
    EXITED = "exited"  # ended successfully
    FAILED = "failed"
    STOPPED = "stopped"  # by `orch stop`, or by the manager stopping it
    KILLED = "killed"  # by `orch kill`
    LOST = "lost"  # gone, with no evidence of how it ended

    @property
    def ended(self) -> bool:
        """True once the session can no longer run."""
        return self not in _NOT_ENDED  # a set: a listing asks this thousands of times

    @property
    def waiting_to_resume(self) -> bool:
        """True while an API failure holds it, until its timer resumes it."""
        return self in _WAITING_TO_RESUME

    @property
    def succeeded(self) -> bool:
        """True only for a session whose program ended successfully on its own."""
        return self is Status.EXITED


_NOT_ENDED = frozenset({Status.STARTING, Status.RUNNING, Status.IDLE, Status.QUEUED,
                        Status.LIMITED, Status.RETRYING})
_WAITING_TO_RESUME = frozenset({Status.LIMITED, Status.RETRYING})


class Intent(StrEnum):
    """What orch asked of a running session, recorded before asking systemd."""

    STOP = "stop"
    KILL = "kill"


def now_iso() -> str:
    """The current time as the ISO 8601 UTC string used throughout records."""
    return _iso(time.time_ns() // 1000)


def usec_to_iso(usec: int) -> str | None:
    """A systemd realtime timestamp (µs since the epoch, 0 for never) as ISO 8601."""
    return _iso(usec) if usec > 0 else None


def _iso(usec: int) -> str:
    # datetime's UTC isoformat(timespec="microseconds"), without loading datetime.
    t, micro = time.gmtime(usec // 1_000_000), usec % 1_000_000
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}.{micro:06d}+00:00")


def signal_name(number: int) -> str:
    """SIGTERM for 15; the number as text for a signal Python does not name."""
    import signal  # only for an ended session: every command loads this module
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


@dataclass(frozen=True)
class Ending:
    """Evidence of how one invocation ended, from the exit hook or the unit."""

    ended_at: str | None
    exit_code: int | None  # set when the main process exited
    exit_signal: str | None  # set when a signal ended it ("SIGTERM")
    result: str  # systemd's Result: success, exit-code, signal, timeout, oom-kill, ...


def ending_from_exit(code: str, status: str, result: str | None,
                     ended_at: str | None) -> Ending:
    """An Ending from systemd's words for an exit, as ExecStopPost='s environment and the
    journal give them: EXIT_CODE (exited, killed, dumped), EXIT_STATUS (TERM, a number)."""
    exit_code: int | None = None
    exit_signal: str | None = None
    if code == "exited" and status.lstrip("-").isdigit():
        exit_code = int(status)
    elif code in ("killed", "dumped") and status:
        if status.isdigit():
            exit_signal = signal_name(int(status))
        else:
            exit_signal = status if status.startswith("SIG") else f"SIG{status}"
    if result is None:
        result = "success" if exit_code == 0 else ("exit-code" if exit_code is not None
                                                    else "signal")
    return Ending(ended_at, exit_code, exit_signal, result)


@dataclass(frozen=True)
class Invocation:
    """One run of a session: a persistent session has one per (re)start."""

    invocation_id: str | None
    started_at: str | None
    ended_at: str | None
    status: Status
    exit_code: int | None = None
    exit_signal: str | None = None
    result: str | None = None
    usage: dict[str, int] | None = None  # what its agent said it used
    cost_usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        """As JSON data: every field, in order."""
        return {**self.__dict__, "status": str(self.status)}


@dataclass(frozen=True)
class Record:
    """What the state file keeps of a session: facts, never a derived status."""

    id: str
    name: str
    unit: str
    scope: str
    argv: list[str]
    cwd: str
    tags: list[str] = field(default_factory=list)
    description: str = ""
    env: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    parent_id: str | None = None
    invocation_id: str | None = None
    main_pid: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    exit_signal: str | None = None
    result: str | None = None
    final_result: str | None = None
    intent: Intent | None = None
    persistent: bool = False
    restarts: int = 0
    program: str | None = None  # argv[0] resolved at spawn, for restarts
    path: str | None = None  # the unit's PATH, for restarts
    requested_at: str | None = None  # when the current invocation was asked for
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier invocations
    options: dict[str, Any] = field(default_factory=dict)  # SpawnOptions.to_json()
    env_files: list[str] = field(default_factory=list)  # paths, read again at restarts
    secret_env: list[str] = field(default_factory=list)  # names, never values
    provider: str | None = None
    agent: dict[str, Any] = field(default_factory=dict)  # the AgentRequest, for resume
    provider_session_id: str | None = None
    agent_error: bool | None = None  # the agent's own verdict (claude's is_error)
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    worktree: str | None = None  # a git worktree orch made for the session
    worktree_repo: str | None = None
    after: list[str] = field(default_factory=list)  # sessions this one waits for
    blocked: str | None = None  # why it never ran
    placement: str | None = None  # how orch chose this host for it (spawn --host auto)
    queue: str | None = None  # the queue it waits in, then runs in (spawn --queue)
    priority: int = 0  # higher goes first in its queue
    admitted_at: str | None = None  # when its queue gave it a slot; None while queued
    # While an API failure holds it (LIMITED, RETRYING): when a timer resumes it, and why.
    resumes_at: str | None = None
    waiting_for: str | None = None  # "usage limit (five_hour)", "API overloaded (529)"
    wait_kind: str | None = None  # orch.limits.Failure: usage-limit or transient
    retried: int = 0  # the transient API failures retried so far (--retries)

    @property
    def restarting(self) -> bool:
        """Whether systemd runs it again as a run ends (--restart: Restart=)."""
        return bool(self.options.get("restart", "no") != "no")

    @property
    def queued(self) -> bool:
        """Whether it waits in its queue: not admitted, ended, blocked nor stopped."""
        return (self.queue is not None and self.admitted_at is None and self.result is None
                and self.intent is None and self.blocked is None)

    def ending(self) -> Ending | None:
        """The recorded end of the current invocation, if there is one."""
        return None if self.result is None else \
            Ending(self.ended_at, self.exit_code, self.exit_signal, self.result)

    def with_ending(self, ending: Ending, invocation_id: str | None) -> Record:
        """This record with ENDING recorded for INVOCATION_ID (the current one)."""
        return replace(self, invocation_id=self.invocation_id or invocation_id,
                       ended_at=ending.ended_at, exit_code=ending.exit_code,
                       exit_signal=ending.exit_signal, result=ending.result)

    def next_invocation(self, requested_at: str) -> Record:
        """This record, its invocation archived (how it ended, or lost), a new one asked."""
        ending = self.ending()
        ended_as = ended_status(ending, self.intent) if ending else Status.LOST
        past = Invocation(self.invocation_id, self.started_at, self.ended_at, ended_as,
                          self.exit_code, self.exit_signal, self.result, self.usage,
                          self.cost_usd)
        return replace(
            self, history=[*self.history, past.to_json()], restarts=self.restarts + 1,
            invocation_id=None, main_pid=None, started_at=None, ended_at=None, exit_code=None,
            exit_signal=None, result=None, intent=None, requested_at=requested_at,
            final_result=None, agent_error=None, resumes_at=None, waiting_for=None,
            wait_kind=None, usage=None, cost_usd=None)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON data (shallow: asdict's deep copies cost more than a write)."""
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        data["intent"] = str(self.intent) if self.intent else None
        return data

    def to_sparse_json(self) -> dict[str, Any]:
        """As to_json, less the fields at their default: what the state file keeps."""
        values = self.__dict__  # every field, and only fields: read at C speed
        data = {name: values[name] for name in _RECORD_FIELDS
                if values[name] != _EMPTY.get(name, _REQUIRED)}
        if self.intent:
            data["intent"] = str(self.intent)
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> Record:
        """A record from JSON data, refusing unknown or missing fields and wrong types
        (WHERE names the file). Absent optional fields take their defaults."""
        values = record_values(data, where, _SHAPE)
        if values["intent"] is not None:
            try:
                values["intent"] = Intent(values["intent"])
            except ValueError:
                raise ValueError(f"{where}: field 'intent' of session {values['id']!r} is not "
                                 f"one of {', '.join(Intent)}") from None
        # A state file holds thousands of records and a frozen dataclass's __init__ sets
        # each of its 40 fields through object.__setattr__: VALUES (a new dict, the same
        # fields checked above) becomes the instance's dict, uncopied.
        record = cls.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        return record


_SHAPE = shape(Record)
_RECORD_FIELDS = _SHAPE.names
_REQUIRED = object()  # marks a field with no default: always written
_EMPTY: dict[str, Any] = {**_SHAPE.defaults,
                          **{name: factory() for name, factory in _SHAPE.factories}}


@dataclass(frozen=True)
class UnitView:
    """What the manager says of a session's unit at one moment."""

    loaded: bool
    active_state: str  # active, activating, deactivating, inactive, failed, ...
    sub_state: str
    invocation_id: str | None
    main_pid: int
    exec_main_start_usec: int  # realtime µs, 0 if never started
    exec_main_start_mono_usec: int  # CLOCK_MONOTONIC µs of the same moment
    exec_main_code: int  # CLD_EXITED=1, CLD_KILLED=2, CLD_DUMPED=3, 0 while running
    exec_main_status: int
    result: str
    job_pending: bool = False  # a job is queued: with Restart=, a failed unit restarts
    exec_main_exit_usec: int = 0  # realtime µs of the main process's end, 0 before

    GONE_STATES = ("inactive", "failed")

    def ending(self) -> Ending | None:
        """How the unit's main process ended, if the unit says it has."""
        if not self.loaded or self.exec_main_code == 0:
            return None
        if self.active_state not in self.GONE_STATES and self.main_pid:
            return None
        ended_at = usec_to_iso(self.exec_main_exit_usec)  # before its exit hook records it
        if self.exec_main_code == 1:
            return Ending(ended_at, self.exec_main_status, None, self.result)
        return Ending(ended_at, None, signal_name(self.exec_main_status), self.result)


@dataclass(frozen=True)
class UnitFacts:
    """What a unit of ours tells about itself, for adopting it without a record."""

    unit: str
    view: UnitView
    description: str
    environment: list[str]
    argv: list[str]
    program: str
    cwd: str
    hook_argv: list[str]


def ended_status(ending: Ending, intent: Intent | None, agent_error: bool | None = None) -> Status:
    """The terminal status an ENDING means, given orch's INTENT and the agent's verdict."""
    if intent is Intent.KILL:
        return Status.KILLED
    if intent is Intent.STOP:
        return Status.STOPPED
    if ending.result == "success":
        if agent_error:
            return Status.FAILED  # the program exited 0, but the agent says it failed
        # systemd counts a SIGTERM during a stop as success: the manager stopped it.
        return Status.EXITED if ending.exit_signal is None else Status.STOPPED
    return Status.FAILED


STARTING_GRACE_SECONDS = 30.0


def derive_status(record: Record, unit: UnitView | None, main_alive: bool,
                  now: datetime | None = None) -> Status:
    """The session's status from its record, what the manager says of its unit (None if
    unread) and whether its MainPID is still systemd's process (start time checked)."""
    if record.blocked is not None:
        return Status.FAILED  # a dependency failed: it never ran
    if record.queued:
        return Status.QUEUED
    if record.resumes_at is not None and record.intent is None:
        return Status.LIMITED if record.wait_kind == "usage-limit" else Status.RETRYING
    waiting = bool(record.after) and record.invocation_id is None and record.ending() is None
    if waiting and (unit is None or not unit.loaded or unit.active_state == "inactive"):
        return Status.STARTING  # its unit waits for its dependencies (--after)
    if unit is not None and unit.loaded:
        # A loaded unit of this name is this session's: under the recorded invocation,
        # or a newer one systemd started itself (Restart=).
        if unit.active_state == "activating" or (
                unit.job_pending and unit.active_state in UnitView.GONE_STATES):
            return Status.STARTING
        if unit.active_state in ("active", "reloading", "deactivating") and unit.main_pid:
            return Status.RUNNING if main_alive else Status.LOST
        if record.restarting and record.intent is None:
            # Between its runs a restarting unit passes through stop-post, auto-restart and
            # a moment of failed: it is over once collected, or stopped or killed by orch.
            return Status.STARTING
        same = record.invocation_id in (None, unit.invocation_id)
        recorded = record.ending() if same else None
        if recorded is None and unit.active_state == "deactivating" and record.provider:
            # Its exit hook runs: an agent's may yet find the API failed it, and set it to
            # wait rather than fail. Over once the hook has said (or the unit is gone).
            return Status.RUNNING
        ending = recorded or unit.ending()
        if ending is not None:
            return ended_status(ending, record.intent, record.agent_error)
        if unit.active_state not in UnitView.GONE_STATES:
            return Status.RUNNING  # main process gone, stop-post hook still running
        return Status.LOST
    ending = record.ending()
    if ending is not None:
        return ended_status(ending, record.intent, record.agent_error)
    if record.invocation_id is None and recent(record.requested_at or record.created_at, now):
        return Status.STARTING  # a spawn in flight has not confirmed its unit yet
    return Status.LOST


def recent(iso: str, now: datetime | None) -> bool:
    """Whether ISO (a record's stamp) is so near NOW that a start may still be in flight."""
    from datetime import UTC, datetime  # rarely needed: not at import
    try:
        created = datetime.fromisoformat(iso)
    except ValueError:
        return False
    if created.tzinfo is None:  # orch writes UTC; a hand-edited stamp may lack the zone
        created = created.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - created).total_seconds() < STARTING_GRACE_SECONDS


@dataclass(frozen=True)
class Session:
    """A session as every `--json` shows it: the record joined with live status."""

    id: str
    name: str
    unit: str
    scope: str
    status: Status
    main_pid: int | None
    invocation_id: str | None
    argv: list[str]
    cwd: str
    tags: list[str]
    description: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    exit_signal: str | None
    result: str | None
    final_result: str | None
    parent_id: str | None
    persistent: bool = False
    restarts: int = 0
    invocations: list[dict[str, Any]] = field(default_factory=list)
    provider: str | None = None
    provider_session_id: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    worktree: str | None = None
    after: list[str] = field(default_factory=list)
    blocked: str | None = None
    placement: str | None = None
    queue: str | None = None
    priority: int = 0  # its place in its queue: higher first (spawn --priority)
    position: int | None = None  # 1 for the next to start of its queue, while queued
    resumes_at: str | None = None  # while limited or retrying: when it runs again
    waiting_for: str | None = None  # and why
    # What its cgroup uses now (orch.cgroups.Usage), while it runs; None where unknown.
    memory_current: int | None = None
    cpu_usage_nsec: int | None = None
    tasks_current: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    processes: list[dict[str, Any]] | None = None  # as show reads them; None in ps

    @classmethod
    def of(cls, record: Record, status: Status, unit: UnitView | None = None,
           usage: Usage = NO_USAGE) -> Session:
        """RECORD with STATUS, completed from UNIT where the record lacks facts (a run
        systemd started again, not yet recorded), with USAGE, and its cost and tokens
        summed over every invocation."""
        if unit is not None and unit.invocation_id and record.ending() is not None and \
                record.invocation_id not in (None, unit.invocation_id) and \
                unit.active_state not in UnitView.GONE_STATES:
            record = replace(record.next_invocation(record.ended_at or ""),
                             invocation_id=unit.invocation_id, intent=record.intent)
        ending, ended = record.ending(), status.ended
        if ending is None and unit is not None and ended:
            ending = unit.ending()
        main_pid = None
        if status is Status.RUNNING and unit is not None and unit.main_pid:
            main_pid = unit.main_pid
        elif not ended and not status.waiting_to_resume:
            main_pid = record.main_pid
        started_at = record.started_at  # unless the unit runs one systemd started again:
        if unit is not None and (started_at is None or unit.invocation_id not in (
                None, record.invocation_id)):
            started_at = usec_to_iso(unit.exec_main_start_usec) or started_at
        invocation_id = record.invocation_id or (unit.invocation_id if unit else None)
        # One that ended with no exit (blocked by a failed dependency) has its time too.
        ended_at = record.ended_at if ended else None
        exit_code = exit_signal = result = None
        if ending is not None:
            ended_at, exit_code = ending.ended_at, ending.exit_code
            exit_signal, result = ending.exit_signal, ending.result
            if result == "success" and status is Status.FAILED and record.agent_error:
                result = "agent-error"  # the program's success, the agent's failure
        current = {"invocation_id": invocation_id, "started_at": started_at,  # Invocation's
                   "ended_at": ended_at, "status": str(status), "exit_code": exit_code,
                   "exit_signal": exit_signal, "result": result,
                   "usage": record.usage, "cost_usd": record.cost_usd}
        cost, tokens = record.cost_usd, record.usage
        if record.history:
            from orch.results import summed

            cost, tokens = summed([*record.history, current])
        # One a record for `orch ps`: the fields in order, as __init__ would, uncopied.
        session = cls.__new__(cls)
        object.__setattr__(session, "__dict__", {
            "id": record.id, "name": record.name, "unit": record.unit,
            "scope": record.scope, "status": status, "main_pid": main_pid,
            "invocation_id": invocation_id, "argv": list(record.argv), "cwd": record.cwd,
            "tags": list(record.tags), "description": record.description,
            "created_at": record.created_at, "started_at": started_at,
            "ended_at": ended_at, "exit_code": exit_code, "exit_signal": exit_signal,
            "result": result, "final_result": record.final_result,
            "parent_id": record.parent_id, "persistent": record.persistent,
            "restarts": record.restarts, "invocations": [*record.history, current],
            "provider": record.provider, "provider_session_id": record.provider_session_id,
            "usage": tokens, "cost_usd": cost, "options": dict(record.options),
            "worktree": record.worktree, "after": list(record.after), "blocked": record.blocked,
            "placement": record.placement, "queue": record.queue, "priority": record.priority,
            "position": None, "resumes_at": None if ended else record.resumes_at,
            "waiting_for": None if ended else record.waiting_for,
            **usage.__dict__, "processes": None})
        return session

    def json_view(self) -> Mapping[str, Any]:
        """to_json's data uncopied, to encode at once (a Status encodes as its text)."""
        return self.__dict__  # every field, in order, as of() and __init__ fill it

    def to_json(self) -> dict[str, Any]:
        """The session object of the JSON contract. Its lists and objects are copies one
        level deep (asdict's recursive copy costs more than `orch ps --json` at 1,000)."""
        values = self.__dict__  # every field, and only fields: read at C speed
        data = {name: values[name] for name in _SESSION_FIELDS}
        data["status"] = str(self.status)
        for name in _SESSION_CONTAINERS:
            value = data[name]
            if value is not None:
                data[name] = [dict(v) for v in value] if name in _LISTS_OF_OBJECTS else \
                    type(value)(value)
        return data


_SESSION_FIELDS = shape(Session).names
_SESSION_CONTAINERS = ("argv", "tags", "invocations", "usage", "options", "after",
                       "processes")
_LISTS_OF_OBJECTS = ("invocations", "processes")
