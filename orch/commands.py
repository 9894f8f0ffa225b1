"""What each `orch` command does, with its arguments already parsed: plain functions
that return the exit status. Data on stdout, messages on stderr.

Two parsers read the one definition of the command line (orch.commandline) and call
these through orch.commandline.call: typer's command tree (orch.app, which also gives
help, errors and completion) and, for the well-formed command lines most calls are, the
light parser in orch.fastcli, which does not load typer. Both hand over the same values,
so each command has one body. Kept free of typer, pystemd and psutil at import.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

from orch import __version__, api, jsontext
from orch.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from orch.scope import Scope

# Exit codes of `orch wait`, as scripts rely on them.
WAIT_FAILED = 1
WAIT_UNKNOWN = 2
WAIT_TIMEOUT = 124


def emit_json(data: Any) -> None:
    """DATA as JSON on stdout: a list (or the items of an iterator) with one item per
    line (json's C encoder; its indenting one is pure Python, and slow for a thousand
    sessions), else indented."""
    if not isinstance(data, (list, Iterator)):
        sys.stdout.write(jsontext.pretty(data) + "\n")
        return
    # Made a batch at a time: the whole text at once (a megabyte at a thousand sessions)
    # was made three times over (joined, framed, encoded), each in memory new to the
    # process, whose first touch costs more than the encoding. Written once every item
    # is made: an iterator that fails midway leaves stdout empty, never half a list.
    batches: list[str] = []
    batch: list[str] = []
    size, separator = 0, "[\n  "
    for item in data:
        text = jsontext.item(item)
        batch += (separator, text)
        separator, size = ",\n  ", size + len(text)
        if size >= _BATCH_CHARS:
            batches.append("".join(batch))
            batch, size = [], 0
    opened = separator != "[\n  "  # an item was: its list is
    batches.append("".join(batch) + "\n]\n" if opened else "[]\n")
    for text in batches:
        sys.stdout.write(text)


_BATCH_CHARS = 1 << 15


def say(message: str) -> None:
    """MESSAGE on stderr, what it quotes (another host's words, a name) made visible
    rather than handed to the terminal; its own line ends kept."""
    from orch.visible import visible

    print(visible(message, keep="\r\n"), file=sys.stderr)


def ps_all_hosts(running: bool, tag: list[str], user: bool, system: bool,
                 as_json: bool, full: bool = False) -> int:
    """`orch ps --all-hosts`: a host that does not answer is a warning, not a failure;
    exit 3 only if none answered."""
    from orch import config, hosts, remote
    from orch.scope import Scope

    ps_args = [*(["--running"] if running else []), *(f"--tag={t}" for t in tag),
               *(["--user"] if user else []), *(["--system"] if system else [])]
    scope = Scope.choose(user, system)
    fleet = hosts.fleet(config.load(scope).hosts)
    listings = remote.list_all(
        list(fleet.values()), ps_args,
        local=lambda: [s.to_json() for s in api.list_sessions(scope, running=running, tag=tag)])
    # Newest first, as one host's ps lists them; the HOST column tells the hosts apart.
    sessions = sorted((s for listing in listings for s in listing.sessions), reverse=True,
                      key=lambda s: (str(s.get("created_at") or ""), str(s.get("id") or "")))
    for listing in listings:
        if listing.problem is not None:
            say(f"orch: warning: host {listing.host}: {listing.problem}")
    if as_json:
        emit_json(sessions)
    elif sessions:
        from orch import render

        print(render.hosts_table(sessions, render.table_width(sys.stdout, full),
                                 _ellipsis()))
    return 0 if any(listing.problem is None for listing in listings) else 3


def version() -> int:
    """`orch --version`."""
    print(f"orch {__version__}")
    return 0


def spawn(command: list[str], settings: dict[str, object], name: str | None = None,
          description: str = "", env: list[str] | None = None, profile: str | None = None,
          after: list[str] | None = None, user: bool = False, system: bool = False,
          as_json: bool = False, placement: str | None = None) -> int:
    """`orch spawn`: SETTINGS are the spawn settings' flags by key (None: not given);
    unset ones take [spawn] and --profile defaults from the config."""
    from orch import request
    from orch.spec import parse_env

    scope = api.current_scope(user, system)
    loaded, asked = request.for_spawn(scope, profile, settings)  # the one read of it
    session = api.spawn_requested(command, asked, name=name, description=description,
                                  env=parse_env(env or []), scope=scope, after=after or [],
                                  placement=placement, config=loaded)
    from orch import spawn_warnings

    for warning in spawn_warnings.lines(asked, scope):
        say(warning)
    if session.position is not None:
        held = f"; waiting for {session.waiting_for}" if session.waiting_for else ""
        say(f"orch: session {session.id[:8]} queued in {session.queue}, "
            f"#{session.position} in line{held}")
    elif str(session.status) == "queued":
        say(f"orch: session {session.id[:8]} queued in {session.queue}, after its "
            "dependencies")
    if as_json:
        emit_json(session.to_json())
    else:
        print(session.id)
    return 0


def result(ref: str, all_: bool = False, user: bool = False, system: bool = False,
           as_json: bool = False) -> int:
    """`orch result`: exit 1 if the session has no result yet."""
    if all_:
        return _every_result(ref, api.current_scope(user, system), as_json)
    session = api.result(ref, api.current_scope(user, system))
    if as_json:
        emit_json({"id": session.id, "status": str(session.status),
                   "final_result": session.final_result,
                   "provider_session_id": session.provider_session_id,
                   "usage": session.usage, "cost_usd": session.cost_usd})
    elif session.final_result is not None:
        sys.stdout.write(session.final_result.rstrip("\n") + "\n")
    if session.final_result is None:
        say(f"orch: session {session.id[:8]} ({session.name}) has no result "
            f"({session.status})")
        return 1
    return 0


def _every_result(ref: str, scope: Scope, as_json: bool) -> int:
    """`orch result --all`: each turn's text under a mark, oldest first; exit 1 if no
    turn said anything yet."""
    found = api.turn_results(ref, scope)
    if as_json:
        emit_json([{"final_result": r.final_result, "is_error": r.is_error,
                    "provider_session_id": r.provider_session_id, "usage": r.usage,
                    "cost_usd": r.cost_usd} for r in found])
    else:
        for number, turn in enumerate(found, 1):
            failed = " (error)" if turn.is_error else ""
            sys.stdout.write(f"-- turn {number}{failed} --\n"
                             f"{(turn.final_result or '').rstrip(chr(10))}\n")
    if not found:  # named as `result` without --all names it
        record = api.find_record(ref, scope)
        say(f"orch: session {record.id[:8]} ({record.name}) has no result")
        return 1
    return 0


def resume(ref: str, prompt: str | None = None, user: bool = False, system: bool = False,
           as_json: bool = False) -> int:
    """`orch resume`."""
    session = api.resume(ref, prompt, api.current_scope(user, system))
    if as_json:
        emit_json(session.to_json())
    else:
        print(session.id)
    return 0


def send(ref: str, message: str | None = None, file: str | None = None,
         interrupt: bool = False, user: bool = False, system: bool = False,
         as_json: bool = False) -> int:
    """`orch send`: the session's id on stdout, what became of the message on stderr."""
    if sum((message is not None, file is not None, interrupt)) != 1:
        raise UsageError("give one of: a MESSAGE, --file F, or --interrupt")
    if file is not None:
        message = api.read_result_file(file)
    elif message == "-":
        message = sys.stdin.read().removesuffix("\n")
    sent = api.send(ref, message, api.current_scope(user, system), interrupt=interrupt)
    session = sent.session
    who = f"session {session.id[:8]} ({session.name})"
    if sent.how == "queued":
        say(f"orch: {who} is in a turn; the agent reads the message at the turn's next step")
    elif sent.how == "resumed":
        say(f"orch: {who} had ended: invocation {session.restarts + 1} resumes its "
            "conversation with the message")
    if as_json:
        emit_json({**session.to_json(), "sent": sent.how})
    else:
        print(session.id)
    return 0


def attach(ref: str, user: bool = False, system: bool = False) -> int:
    """`orch attach`: 0 when detached or the session ended; 2 without a terminal here."""
    from orch import terminal

    if not terminal.on_terminal():
        raise UsageError("orch attach needs a terminal (standard input and output)")
    session, path = api.terminal(ref, api.current_scope(user, system))
    who = f"session {session.id[:8]} ({session.name})"
    if terminal.attach(path, who, f"orch: attached to {who}; Ctrl-\\ detaches"):
        say(f"\r\norch: detached from {who}; it runs on (`orch attach {session.id[:8]}`)")
    else:
        say(f"\r\norch: {who} has ended")
    return 0


def config_get(key: str, user: bool = False, system: bool = False) -> int:
    """`orch config get`: exit 1 if the setting is not set."""
    from orch import config

    value = config.get(api.current_scope(user, system), key)
    if value is None:
        return 1
    print(jsontext.dumps(value) if not isinstance(value, str) else value)
    return 0


def config_set(key: str, value: str, user: bool = False, system: bool = False) -> int:
    """`orch config set`."""
    from orch import config

    config.set_value(api.current_scope(user, system), key, value)
    return 0


def config_unset(key: str, user: bool = False, system: bool = False) -> int:
    """`orch config unset`."""
    from orch import config

    if not config.unset(api.current_scope(user, system), key):
        say(f"orch: {key} was not set")
    return 0


def config_list(user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch config list`."""
    from orch import config

    entries = config.items(api.current_scope(user, system))
    if as_json:
        emit_json(dict(entries))
    for key, value in [] if as_json else entries:
        print(f"{key} = {jsontext.dumps(value)}")
    return 0


def _ellipsis() -> str:
    from orch import render

    return render.ELLIPSIS if render.utf8(sys.stdout) else render.ASCII_ELLIPSIS


def ps(running: bool = False, tag: list[str] | None = None, user: bool = False,
       system: bool = False, as_json: bool = False, all_hosts: bool = False,
       full: bool = False) -> int:
    """`orch ps`: on a terminal the table fits its width, unless FULL."""
    if all_hosts:
        return ps_all_hosts(running, tag or [], user, system, as_json, full)
    scope = api.current_scope(user, system)
    if as_json:  # written as they come
        emit_json(s.json_view() for s in api.each_session(scope, running=running, tag=tag))
        return 0
    sessions = api.list_sessions(scope, running=running, tag=tag)
    if sessions:
        from orch import render

        print(render.table(sessions, render.table_width(sys.stdout, full), _ellipsis()))
    else:  # said, not listed: a script reading the table finds it empty
        tagged = f" tagged {' and '.join(tag)}" if tag else ""
        say(f"orch: no {'running ' if running else ''}sessions{tagged}")
    return 0


def show(ref: str, user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch show`."""
    session = api.show(ref, api.current_scope(user, system))
    if as_json:
        emit_json(session.to_json())
    else:
        from orch import render

        print(render.details(session, unicode=render.utf8(sys.stdout)))
    return 0


def logs(ref: str, lines: int | None = None, follow: bool = False, since: str | None = None,
         output: str | None = None, no_pager: bool = False, after_cursor: str | None = None,
         sse: bool = False, user: bool = False, system: bool = False) -> int:
    """`orch logs`: whole lines, rendered by orch from journalctl's JSON. With --follow,
    until the session has ended, and then as `wait` exits (with SSE, as Server-Sent
    Events keyed by cursor); else through a pager on a terminal."""
    from orch.journal import LogFormat, write_logs
    from orch.pager import paged, when_reader_leaves, write_now
    from orch.sse import writer
    from orch.transcript import Style

    if after_cursor is not None and lines is not None:
        raise UsageError("-n and --after-cursor do not go together: give one")
    if after_cursor == "":  # read as none, it showed the whole log
        raise UsageError("--after-cursor: not a cursor of this journal (it is empty)")
    if sse and not follow:
        raise UsageError("--sse goes with -f")
    log_format = None if output is None else LogFormat(output)
    scope = api.current_scope(user, system)
    style = None if sse else Style.for_stream(sys.stdout)
    try:
        if follow:
            when_reader_leaves(sys.stdout)  # a follower nobody reads ends
            write, mark = writer(sys.stdout) if sse else (write_now, None)
            outcome = api.follow_logs(ref, write, scope, lines=lines, since=since,
                                      output=log_format, style=style, after=after_cursor,
                                      mark=mark)
            return 0 if outcome.succeeded else WAIT_FAILED
        record = api.find_record(ref, scope)
        with paged(not no_pager) as out:
            write_logs(record, out.write, lines=lines, since=since, output=log_format,
                       style=style, after=after_cursor)
    except KeyboardInterrupt:
        return 130
    return 0


def wait(refs: list[str], any_: bool = False, timeout: str | None = None,
         user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch wait`: 0 if all ended successfully, 1 if any ended otherwise, 124 on timeout.
    TIMEOUT is a time span; infinity waits as long as no timeout does."""
    from orch.timespan import parse_seconds

    seconds = None if timeout is None else parse_seconds(timeout, "--timeout")
    if seconds == float("inf"):
        seconds = None
    from orch.pager import when_reader_leaves

    # Nobody left to tell (an ssh client gone, from `--host H wait`): no wait for hours.
    when_reader_leaves(sys.stdout, then=lambda: os._exit(0))
    outcome = api.wait(refs, api.current_scope(user, system), any_=any_, timeout=seconds)
    if as_json:
        emit_json([s.to_json() for s in outcome.sessions])
    if outcome.timed_out:
        say(f"orch: timed out after {seconds:g}s")
        return WAIT_TIMEOUT
    for s in outcome.sessions:
        if s.status.ended and not s.status.succeeded:
            say(f"orch: session {s.id[:8]} ({s.name}) {s.status}"
                + (f" (result {s.result})" if s.result else ""))
    return 0 if outcome.succeeded else WAIT_FAILED


def stop(ref: str, user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch stop`."""
    session = api.stop(ref, api.current_scope(user, system))
    if as_json:
        emit_json(session.to_json())
    else:
        say(f"orch: session {session.id[:8]} ({session.name}) {session.status}")
    return 0


def kill(ref: str, result: str | None = None, file: str | None = None,
         signal_: str = "TERM", user: bool = False, system: bool = False,
         as_json: bool = False) -> int:
    """`orch kill`: record a final result, then signal the session's processes."""
    if result is not None and file is not None:
        raise UsageError("give the result as an argument or with --file, not both")
    text = api.read_result_file(file) if file is not None else result
    session = api.kill(ref, text, api.current_scope(user, system),
                       signum=api.parse_signal(signal_))
    if as_json:
        emit_json(session.to_json())
    else:
        # One that waited (in its queue, for its dependencies) was canceled instead; one
        # that waited to resume (limited, retrying) had nothing running: killed at once.
        done = "canceled before it ran:" if session.result == "canceled" else \
            "killed" if session.status.ended else "signalled"
        say(f"orch: {done} session {session.id[:8]} ({session.name})")
    return 0


def recover(user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch recover`: exit 1 if any session could not be handled."""
    report = api.recover(api.current_scope(user, system))
    if as_json:
        emit_json({"counts": report.counts,
                   "outcomes": {k: str(v) for k, v in report.outcomes.items()},
                   "sessions": [s.to_json() for s in report.sessions],
                   "errors": report.errors})
    else:
        print(", ".join(f"{n} {outcome}" for outcome, n in report.counts.items() if n)
              or "no sessions")
    for error in report.errors:
        say(f"orch: {error}")
    return 1 if report.errors else 0


def reap(older_than: str | None = None, everything: bool = False, dry_run: bool = False,
         user: bool = False, system: bool = False, as_json: bool = False) -> int:
    """`orch reap`. An age of infinity would reap no ended session: refused as a mistake."""
    from orch.timespan import parse_seconds

    given = older_than if older_than is not None else "0" if everything else "7d"
    age = parse_seconds(given, "--older-than", infinity=False)
    reaped = api.reap(api.current_scope(user, system), older_than=age,
                      everything=everything, dry_run=dry_run)
    if as_json:
        emit_json([s.to_json() for s in reaped])
    else:
        for session in reaped:
            print(session.id)
    say(f"orch: {'would reap' if dry_run else 'reaped'} {len(reaped)} session(s)")
    return 0


def units_install(user: bool = False, system: bool = False) -> int:
    """`orch units install`."""
    from orch import unitfiles

    for path in unitfiles.install(api.current_scope(user, system)):
        print(path)
    return 0


def units_uninstall(user: bool = False, system: bool = False) -> int:
    """`orch units uninstall`."""
    from orch import unitfiles

    for path in unitfiles.uninstall(api.current_scope(user, system)):
        print(path)
    return 0


def box_up(as_json: bool = False, root: str | Path | None = None) -> int:
    """`orch box up`."""
    from pathlib import Path

    from orch import box

    info = box.up(Path(root) if root is not None else None)
    if as_json:
        emit_json(box.as_dict(info))
    else:
        say(f"orch: box up: systemd pid {info.pid} (host), {info.state}")
    return 0


def box_down() -> int:
    """`orch box down`."""
    from orch import box

    say("orch: box powered off" if box.down() else "orch: no box was running")
    return 0


def box_status(as_json: bool = False) -> int:
    """`orch box status`: exit 3 if no box runs."""
    from orch import box

    info = box.status()
    if as_json:
        emit_json(box.as_dict(info) if info else None)
    elif info:
        print(f"running: systemd pid {info.pid} (host), {info.state}")
    else:
        print("not running")
    return 3 if info is None else 0


def box_exec(command: list[str]) -> int:
    """`orch box exec`."""
    from orch import box

    box.exec_inside(command)
    return 0


def box_shell() -> int:
    """`orch box shell`."""
    from orch import box

    box.exec_inside([os.environ.get("SHELL") or "/bin/bash"])
    return 0
