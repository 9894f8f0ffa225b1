"""The command-line bodies of running a fleet unattended: `orch events` and `orch
schedule ...` (orch.commands holds the others; orch.commandline names these by
"fleetcli:NAME")."""

from __future__ import annotations

import os
import sys

from orch import api, jsontext
from orch.commands import emit_json, say

TYPE_CHECKING = False
if TYPE_CHECKING:
    from orch import schedules
    from orch.events import Event
    from orch.scope import Scope


def events(refs: list[str] | None = None, follow: bool = False, since: str | None = None,
           user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch events`."""
    from orch.render import event_line

    def emit(event: Event) -> None:
        line = jsontext.dumps(event.to_json(), ascii=False) if as_json \
            else event_line(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    scope = api.current_scope(user, system)
    if follow:  # nobody reads any more (`| head`, an ssh client gone): end now, not at
        # the next event, which may be hours away; as `wait` does (nothing to flush, and
        # no exception raised into whatever the main thread is doing then)
        from orch.pager import when_reader_leaves

        when_reader_leaves(sys.stdout, then=lambda: os._exit(0))
    try:
        found = api.events(refs or [], scope, since=_since(since),
                           follow=emit if follow else None)
    except KeyboardInterrupt:
        return 130  # how a follow ends, as `logs -f`'s: quietly, with SIGINT's status
    for event in found:
        emit(event)
    return 0


def _since(text: str | None) -> str | None:
    """--since as the ISO 8601 UTC stamp events carry."""
    if text is None:
        return None
    from orch.session import usec_to_iso
    from orch.timespan import since_usec

    return usec_to_iso(since_usec(text))


def schedule_add(schedule: str, command: list[str], settings: dict[str, object],
                 on_calendar: str | None = None, overlap: bool = False,
                 name: str | None = None, description: str = "",
                 env: list[str] | None = None, profile: str | None = None,
                 user: bool = False, system: bool = False) -> int:
    """`orch schedule add`: the spawn is checked as `orch spawn` would check it, then
    written out as spawn's own words for the timer to run."""
    from orch import request, schedules
    from orch.commandline import spawn_words
    from orch.errors import UsageError
    from orch.locate import resolve_cwd, resolve_program, session_path
    from orch.spec import parse_env
    from orch.unitfiles import this_orch

    scope = api.current_scope(user, system)
    schedules.check_name(schedule)
    if not on_calendar:
        raise UsageError("schedule add needs --on-calendar SPEC (daily, 'Mon..Fri 02:00')")
    if not command:
        raise UsageError("schedule add needs -- CMD [ARG...], or with --provider a PROMPT")
    loaded, asked = request.for_spawn(scope, profile, settings)
    given_env = parse_env(env or [])
    # What every run would be refused for is refused now, not at 3 a.m. in the journal.
    # Runs start where a spawn from here would, not in the home directory the timer's
    # service starts in: the directory and env files (the flags' or the config's) are
    # pinned as paths from here, and the program is found on this PATH too
    # (schedules.render), not the manager's.
    here = resolve_cwd(asked.cwd)
    settings = {**settings, "cwd": here}
    if asked.env_files:
        settings = {**settings, "env_files": [os.path.abspath(f) for f in asked.env_files]}
    from orch.secrets import parse_env_file

    for path in asked.env_files:  # a file missing, unreadable or bad: refused now too
        parse_env_file(os.path.abspath(path))
    if asked.interactive or asked.tty:  # a run waits for its end, and these never end
        raise UsageError(f"--{'interactive' if asked.interactive else 'tty'} is not for a "
                         "schedule: each run waits for its session's end, and a session "
                         "that waits for you (a conversation, a terminal) keeps running")
    if asked.secret_env:  # read from the spawner's environment: the timer's has none
        raise UsageError(f"spawn.secret_env names {', '.join(asked.secret_env)}, which a "
                         "schedule's runs cannot read from your environment: give it a "
                         "--profile whose secret_env = [], and an --env-file with them")
    argv = command
    if asked.agent is not None:
        from orch import agents

        argv = agents.fresh_argv(asked.agent, asked.agent_request(asked.agent_prompt(command)),
                                 scope, loaded)
    resolve_program(argv[0], given_env.get("PATH", session_path(os.environ.get("PATH"))),
                    here)
    if asked.queue is not None:
        from orch import config

        (loaded or config.load(scope)).queue_limits(asked.queue)
    words = spawn_words({**settings, "name": name, "description": description, "env": env,
                         "profile": profile}, command)
    added = schedules.add(schedules.Schedule(schedule, on_calendar, words, overlap), scope,
                          this_orch())
    next_run = _when(added.next_run) if added.next_run else "never"
    say(f"orch: schedule {schedule} added; next run {next_run}")
    return 0


def schedule_list(user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch schedule list`."""
    from orch import render, schedules, shellwords

    scope = api.current_scope(user, system)
    found = _counting_runs_now(schedules.listed(scope), scope)
    if as_json:
        emit_json([s.to_json() for s in found])
    elif found:
        rows = [("NAME", "CALENDAR", "NEXT", "LAST", "SPAWN")]
        rows += [(s.name, s.on_calendar, _when(s.next_run), _when(s.last_run),
                  shellwords.join(s.spawn_args)) for s in found]
        print(render.layout(rows, render.table_width(sys.stdout), [4]))
    else:
        say("orch: no schedules (`orch schedule add NAME --on-calendar SPEC -- CMD...` "
            "adds one)")
    return 0


def _counting_runs_now(found: list[schedules.Schedule],
                       scope: Scope) -> list[schedules.Schedule]:
    """FOUND with each one's last run counting those its timer did not trigger (`orch
    schedule run`): its newest session (tagged schedule:NAME), where that is later."""
    from orch.frozen import replace
    from orch.render import parse_time
    from orch.runtime import Runtime

    if not found:
        return found
    newest: dict[str, str] = {}
    for record in Runtime(scope).store.load().values():
        for tag in record.tags:
            name = tag.removeprefix("schedule:")
            if name != tag and record.created_at > newest.get(name, ""):
                newest[name] = record.created_at

    def later(schedule: schedules.Schedule) -> schedules.Schedule:
        run = parse_time(newest.get(schedule.name))
        last = parse_time(schedule.last_run)
        if run is None or (last is not None and last >= run):
            return schedule
        return replace(schedule, last_run=newest[schedule.name])

    return [later(s) for s in found]


def _when(iso: str | None) -> str:
    from orch.render import parse_time

    when = parse_time(iso)
    return when.astimezone().strftime("%a %Y-%m-%d %H:%M") if when else "-"


def schedule_remove(schedule: str, user: bool = False, system: bool = False) -> int:
    """`orch schedule remove`."""
    from orch import schedules

    schedules.remove(schedule, api.current_scope(user, system))
    say(f"orch: schedule {schedule} removed")
    return 0


def schedule_run(schedule: str, user: bool = False, system: bool = False) -> int:
    """`orch schedule run`: start its service now; its session is told in `orch events`
    and listed by `orch ps --tag schedule:NAME`."""
    from orch import schedules

    schedules.run_now(schedule, api.current_scope(user, system))
    say(f"orch: schedule {schedule} runs now (orch ps --tag schedule:{schedule})")
    return 0


def schedule_fire(schedule: str, overlap: bool = False, spawn_args: list[str] | None = None,
                  user: bool = False, system: bool = False) -> int:
    """`orch schedule fire`, the timer's command: spawn as the schedule says (tagged
    schedule:NAME, named NAME unless it names itself) and, unless OVERLAP, wait for the
    session, so that the service stays active (and no second run starts) meanwhile."""
    import subprocess

    from orch.unitfiles import this_orch

    scope = api.current_scope(user, system)
    args = list(spawn_args or [])
    options = args[:args.index("--")] if "--" in args else args
    named = any(a == "--name" or a.startswith("--name=") for a in options)
    argv = [this_orch(), "spawn", f"--{scope}", "--json", f"--tag=schedule:{schedule}",
            *([] if named else [f"--name={schedule}"]), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return done.returncode
    session = jsontext.loads(done.stdout)
    say(f"orch: schedule {schedule}: session {session['id']} ({session['name']}) "
        f"{session['status']}")
    if overlap:
        return 0
    outcome = api.wait([session["id"]], scope)
    return 0 if outcome.succeeded else 1
