"""Reading sessions: list, show (with an ended agent's result), find a record, the
output (logs, follow), and wait for sessions to end."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter

from orch.errors import NotFound, UsageError
from orch.frozen import dataclass, replace
from orch.scope import Scope
from orch.session import Record, Session, Status, UnitView
from orch.state import Sessions, StateStore
from orch.systemd import GONE
from orch.usecases.common import (
    RESULT_GRACE,
    collect,
    ended_recently,
    find,
    lookup,
    view,
)
from orch.usecases.measure import Meter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch.events import Event, Position
    from orch.journal import LogFormat
    from orch.queues import InLine
    from orch.results import AgentResult
    from orch.runtime import ManagerPort, Runtime
    from orch.transcript import Style


def list_sessions(rt: Runtime, *, running: bool = False,
                  tags: Sequence[str] = ()) -> list[Session]:
    """Every session of the runtime's scope, newest first (see each_session)."""
    return list(each_session(rt, running=running, tags=tags))


def each_session(rt: Runtime, *, running: bool = False,
                 tags: Sequence[str] = ()) -> Iterator[Session]:
    """Every session of the runtime's scope, newest first, with live status from one
    listing pass: a session running as recorded costs no call of its own
    (running_as_recorded). Each is made as it is asked for, so that a listing written
    as it goes never holds a thousand of them at once (memory new to a process costs
    more than making them).
    RUNNING lists only those that have not ended, and reads no archived record unless a
    unit that may run is not a live record's (see may_run_archived). TAGS: only those
    with every one of them."""
    store = rt.store
    with Meter(rt) as meter:
        meter.read_ahead(rt.scope)  # while the records are read and the units listed
        records = store.load(archived=not running)
        manager = rt.manager  # connects even with no records: no manager, no answer
        chosen = [r for r in records.values() if _tagged(r, tags)]
        listed = manager.loaded() if chosen or (running and store.keeps_archive()) else {}
        if running and may_run_archived(store, records, listed):
            chosen = [r for r in store.load().values() if _tagged(r, tags)]
        chosen.sort(key=attrgetter("created_at", "id"), reverse=True)
        said: dict[str, InLine] | None = None  # each queued session's place, once needed
        for record in chosen:
            session = _session(record, listed.get(record.unit), manager, meter, running)
            if session is None or (running and session.status.ended):
                continue
            if session.status is Status.QUEUED:
                from orch.queues import in_line, placed  # a listing of none queued: not loaded

                said = said if said is not None else in_line(records, rt.now_iso())
                session = placed(session, said)
            yield session


def _session(record: Record, entry: tuple[bytes, tuple[str, str, str, int]] | None,
             manager: ManagerPort, meter: Meter, running: bool) -> Session | None:
    """RECORD's session, from its unit's ENTRY in the manager's listing (None: not
    loaded); None if a listing of RUNNING sessions leaves it out."""
    if entry is None:
        if running and record.result is not None:
            return None  # its end recorded and its unit gone: ended, whatever else
        return view(record, GONE)
    path, states = entry
    if running_as_recorded(record, states):
        return conversing(Session.of(record, Status.RUNNING, None, meter.usage(record)),
                          record)
    unit = manager.view(path, record.unit, states)
    return conversing(meter.measured(view(record, unit), record), record)


def _tagged(record: Record, tags: Sequence[str]) -> bool:
    return all(tag in record.tags for tag in tags)


def conversing(session: Session, record: Record) -> Session:
    """SESSION as IDLE, with its last turn's result, if it is a conversation whose agent
    waits for its next message (what the manager cannot tell: its output says it); while
    a turn is under way, still RUNNING, with what its turns before cost."""
    if session.status is not Status.RUNNING or not record.agent.get("interactive") \
            or record.intent is not None:  # being stopped or killed: not waiting for anyone
        return session
    from orch import conversation

    said, idle = conversation.idle_result(record)
    if not idle and said.usage is None and said.cost_usd is None:
        return session
    # Its cost and tokens (the run's so far, as the agent counts them) with its earlier
    # runs', as Session.of sums them; once idle, the last turn's verdict as the agent gave it.
    from orch.results import summed

    cost, tokens = summed([*record.history, {"usage": said.usage, "cost_usd": said.cost_usd}])
    if not idle:
        return replace(session, usage=tokens, cost_usd=cost)
    return replace(session, status=Status.IDLE, final_result=said.final_result,
                   result="agent-error" if said.is_error else "success",
                   provider_session_id=said.provider_session_id or session.provider_session_id,
                   usage=tokens, cost_usd=cost)


def turn_results(rt: Runtime, ref: str) -> list[AgentResult]:
    """What each turn of the agent session REF said, oldest first, every invocation's
    (a conversation's turns, a resumed agent's runs), from the journal."""
    from orch import agents, journal
    from orch.results import turns

    record = lookup(rt, ref)
    if not record.provider:  # a program has no turns: what `orch kill` recorded, as result's
        from orch.results import EMPTY

        return [] if record.final_result is None else [
            replace(EMPTY, final_result=record.final_result)]
    output = journal.read_logs(record, output=journal.LogFormat.JSON)
    return [turn for run in runs(output) for turn in turns(agents.output_format(record), run)]


def runs(output: str) -> list[list[str]]:
    """The program's lines in OUTPUT (`orch logs -o json`), each invocation's apart,
    oldest first: an agent's totals start again with each run. A line journald did not
    stamp (a process gone at once) goes with the run before it."""
    from orch import jsontext
    from orch.journal_entries import field_text, message

    found: list[list[str]] = []
    current = None
    for line in output.splitlines():
        entry = jsontext.loads(line)
        stamped = field_text(entry, "_SYSTEMD_INVOCATION_ID")
        if not found or (stamped and current is not None and stamped != current):
            found.append([])
        current = stamped or current
        found[-1].append(message(entry).decode("utf-8", "replace"))
    return found


def may_run_archived(store: StateStore, live: Sessions,
                     listed: dict[str, tuple[bytes, tuple[str, str, str, int]]]) -> bool:
    """Whether an archived record may be running now: its end is recorded and it has no
    Restart=, so only when its unit is loaded, and not inactive or failed with no job
    queued (started again behind orch's back). Such units are looked up in the
    archive's list of units, read from its first line only."""
    if not store.keeps_archive():
        return False
    units = {r.unit for r in live.values()}
    active = {unit for unit, (_, (_, state, _, job)) in listed.items()
              if unit not in units and unit.endswith(".service")
              and (state not in UnitView.GONE_STATES or job)}
    if not active:
        return False
    archived = store.archived_units()
    return archived is None or not active.isdisjoint(archived)


def running_as_recorded(record: Record, states: tuple[str, str, str, int]) -> bool:
    """Whether the session runs as RECORD describes it, judged from the listing's STATES
    (load, active, sub, job) alone: then its status is RUNNING and every other field is
    the record's (Session.of), and its unit's properties need not be read.

    The record names the invocation, MainPID and start that its spawn (or recover) read
    from the manager, and every end of an invocation runs the exit hook, which records
    it. So a record with no ending, whose unit is loaded, active and running with no job
    queued, describes the invocation that runs now: its MainPID is alive (the manager
    reaps its own children before it reports them gone, so the PID cannot have been
    reused meanwhile). A restarted unit (Restart=, `systemctl restart`) has an ending
    recorded by the hook that ran in between, and is read in full.
    """
    return states == ("loaded", "active", "running", 0) and record.invocation_id is not None \
        and bool(record.main_pid) and record.intent is None and record.blocked is None \
        and record.ending() is None


def find_record(rt: Runtime, ref: str) -> Record:
    """The record REF names, without asking the manager anything."""
    return lookup(rt, ref)


def result(rt: Runtime, ref: str) -> Session:
    """The session, with what its agent's output says of the run (final text, provider
    session id, usage) read from the journal and recorded."""
    record = lookup(rt, ref)
    unit = rt.manager_of(Scope(record.scope)).unit(record.unit)
    session = view(record, unit)
    if unit.loaded and not session.status.ended:
        with Meter(rt) as meter:
            session = replace(meter.measured(session, record),
                              processes=[p.to_json() for p in meter.processes(record)])
    if session.status.ended:
        record = collect(rt, record)
        session = view(record, unit)  # its cost and tokens summed over every run, as ps's
    if session.status is Status.QUEUED:
        from orch.queues import in_line, placed

        session = placed(session, in_line(rt.store.load(), rt.now_iso()))
    return conversing(session, record)


def logs_command(rt: Runtime, ref: str, *, lines: int | None = None, follow: bool = False,
                 since: str | None = None, output: LogFormat | str | None = None
                 ) -> list[str]:
    """The journalctl command line that shows the session's output (OUTPUT: a
    LogFormat or its name; None: the session's default)."""
    from orch.journal import logs_argv

    return logs_argv(lookup(rt, ref), lines=lines, follow=follow, since=since,
                     output=_format(output))


def logs(rt: Runtime, ref: str, *, lines: int | None = None, since: str | None = None,
         output: LogFormat | str = "cat") -> str:
    """The session's output so far, from the journal (OUTPUT: a LogFormat or its name)."""
    from orch.journal import LogFormat, read_logs

    return read_logs(lookup(rt, ref), lines=lines, since=since,
                     output=_format(output) or LogFormat.CAT)


def _format(output: LogFormat | str | None) -> LogFormat | None:
    """OUTPUT as a LogFormat (None stays None); UsageError naming the formats if it
    is none of them."""
    from orch.journal import LogFormat

    if output is None:
        return None
    try:
        return LogFormat(output)
    except ValueError:
        raise UsageError(f"output {str(output)[:60]!r}: expected one of "
                         + ", ".join(f.value for f in LogFormat)) from None


def follow_logs(rt: Runtime, ref: str, write: Callable[[str], object], *,
                lines: int | None = None, since: str | None = None,
                output: LogFormat | str | None = None, style: Style | None = None,
                after: str | None = None,
                mark: Callable[[str | None], None] | None = None) -> WaitOutcome:
    """WRITE the session's output (its last LINES lines, or what came AFTER a journal
    cursor) in OUTPUT format (None: the session's default; a transcript in STYLE), then
    its new lines as they come, until it has ended and its last lines are in; how it
    ended, as `wait` saw it. MARK hears the cursor of each line before it is written.
    The end is watched through the manager's signals (wait, in a thread of its own with
    a runtime of its own), the output through the journal; a session that has already
    ended is written whole at once."""
    import threading

    from orch import journal

    record = lookup(rt, ref)
    store = rt.store
    watcher_rt = rt.fork()
    end = journal.SessionEnd()
    outcomes: list[WaitOutcome] = []
    failures: list[BaseException] = []

    def watch() -> None:
        try:
            with watcher_rt:
                outcomes.append(wait(watcher_rt, [record.id], to_the_end=True))
            latest = store.load().get(record.id, record)
            end.set(RESULT_GRACE if ended_recently(rt, latest) else 0.0)
        except BaseException as error:  # raised again in the caller's thread, below
            failures.append(error)
            end.set(0.0)

    def invocations() -> list[tuple[str, int]]:
        return journal.invocation_starts(store.load().get(record.id, record))

    watcher = threading.Thread(target=watch, name="orch-logs-end", daemon=True)
    watcher.start()
    journal.follow_logs(record, write, end, lines=lines, since=since,
                        output=_format(output),
                        refresh=invocations, style=style, after=after, mark=mark)
    watcher.join()
    if failures:
        raise failures[0]
    return outcomes[0]


@dataclass(frozen=True)
class WaitOutcome:
    """What `wait` saw: every awaited session's last status, and whether time ran out."""

    sessions: list[Session]
    timed_out: bool

    @property
    def succeeded(self) -> bool:
        """True if every session that ended, ended successfully, and every idle
        conversation's last turn did (and some session settled so)."""
        ended = [s for s in self.sessions if s.status.ended]
        idle = [s for s in self.sessions if s.status is Status.IDLE]
        return bool(ended or idle) and all(s.status.succeeded for s in ended) \
            and all(s.result == "success" for s in idle)


# How often `wait` reads a conversation's output for the end of its turn.
POLL_S = 0.5


def wait(rt: Runtime, refs: Sequence[str], *, any_: bool = False,
         timeout: float | None = None, to_the_end: bool = False) -> WaitOutcome:
    """Block until every session in REFS has ended, or is a conversation waiting for
    its next message (idle, unless TO_THE_END: `logs -f` follows a conversation's turns
    until its end), or the first of them has, with ANY_: driven by the
    manager's signals, and for agents and queued sessions, their records (and a
    conversation's output) read every POLL_S seconds too.
    Unknown references raise NotFound before any waiting."""
    if not refs:
        raise UsageError("wait needs at least one session")
    if timeout is not None and timeout < 0:
        raise UsageError("--timeout must be 0 or more seconds")
    store = rt.store
    records = store.load()
    wanted = list(dict.fromkeys(find(ref, records).id for ref in refs))
    units = [records[i].unit for i in with_dependencies(wanted, records)]
    latest: list[Session] = []
    manager = rt.manager

    def current(session_id: str, now: Sessions) -> Session:
        record = now.get(session_id, records[session_id])
        unit = manager.unit(record.unit)
        session = view(record, unit)
        if session.status.ended and record.provider:
            # The agent's own verdict (claude's is_error) can turn an exit 0 to failed.
            session = view(collect(rt, record), unit)
        return conversing(session, record)

    def done() -> bool:
        nonlocal latest
        now = store.load()
        latest = [current(i, now) for i in wanted]
        settled = sum(1 for s in latest if s.status.ended
                      or (s.status is Status.IDLE and not to_the_end))
        return settled > 0 if any_ else settled == len(latest)

    # What changes in records alone, with no unit to signal it, is read every POLL_S: a
    # conversation's turn, a queued session cancelled, an agent a usage limit holds.
    if any(records[i].provider or records[i].queue for i in wanted):
        finished = manager.wait_until(units, done, timeout, POLL_S)
    else:
        finished = manager.wait_until(units, done, timeout)
    if not all(s.status.ended for s in latest):  # what those still running use, as ps has it
        with Meter(rt) as meter:
            latest = [meter.measured(s, records[s.id]) for s in latest]
    return WaitOutcome(latest, timed_out=not finished)


def with_dependencies(session_ids: list[str], records: Sessions) -> list[str]:
    """SESSION_IDS and every session they wait on (--after), transitively. A session
    blocked by a failed dependency never changes its own unit: the exit hook of the
    dependency records the block, and the dependency's unit ending after its hook is
    the signal that tells `wait` to look."""
    found = list(session_ids)
    for session_id in found:  # grows as it goes
        record = records.get(session_id)
        found += [d for d in (record.after if record else ()) if d in records and d not in found]
    return found


def _told_only(told: list[Event], records: Sessions, scope: Scope) -> Sessions:
    """The sessions the events TOLD tell of that RECORDS no longer hold (reaped), each
    as a record of its id, name, scope and first event's time, for a reference to name."""
    found: Sessions = {}
    for event in told:
        if event.session_id not in records and event.session_id not in found:
            found[event.session_id] = Record(
                id=event.session_id, name=event.name, unit="", scope=str(scope),
                argv=[], cwd="", created_at=event.time)
    return found


def events(rt: Runtime, refs: Sequence[str], since: str | None
           ) -> tuple[list[Event], Position, set[str] | None]:
    """The events of the sessions REFS name (None: all), at or after SINCE (an ISO 8601
    UTC stamp); and where the event file ends now (to follow on from) and the ids
    chosen (None: all)."""
    from orch import events as log

    store = rt.store
    everything, end = log.read_to_end(store.directory)
    chosen = None
    if refs:
        records = store.load()
        chosen = set()
        for ref in refs:
            try:
                chosen.add(find(ref, records).id)
            except NotFound:  # reaped: its events are still in the log
                chosen.add(find(ref, _told_only(everything, records, rt.scope)).id)
    found = [e for e in everything
             if (chosen is None or e.session_id in chosen)
             and (since is None or e.time >= since)]
    return found, end, chosen
