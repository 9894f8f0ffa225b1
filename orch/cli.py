"""The `orch` command: a thin layer over orch.api. Data on stdout, messages on stderr."""

from __future__ import annotations

import json
import os
import shlex
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

from orch import __version__, api, box, vendor
from orch.errors import OrchError
from orch.journal import LogFormat
from orch.scope import Scope
from orch.session import Session

vendor.activate()  # before typer: a package's vendored copy must win
import typer  # noqa: E402

app = typer.Typer(
    name="orch",
    help="Run AI coding agents and other long-running commands as systemd services.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
box_app = typer.Typer(help="A private systemd for hosts whose PID 1 is not systemd.",
                      no_args_is_help=True, rich_markup_mode=None)
app.add_typer(box_app, name="box")

UserOpt = Annotated[bool, typer.Option("--user", help="Use the calling user's manager.")]
SystemOpt = Annotated[bool, typer.Option("--system", help="Use the system manager.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
RefArg = Annotated[str, typer.Argument(
    help="A session id, a unique id prefix (4+ characters), a name, a unit name, or `self`.")]

# Exit codes of `orch wait`, as scripts rely on them.
WAIT_FAILED = 1
WAIT_UNKNOWN = 2
WAIT_TIMEOUT = 124


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _age(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        seconds = int((datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds())
    except ValueError:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table(sessions: list[Session]) -> str:
    rows = [("ID", "NAME", "STATUS", "PID", "AGE", "COMMAND")]
    for s in sessions:
        command = shlex.join(s.argv)
        rows.append((s.id[:8], s.name[:24], str(s.status), str(s.main_pid or "-"),
                     _age(s.created_at), command[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + "  " + row[5] for row in rows)


def _details(session: Session) -> str:
    data = session.to_json()
    data["argv"] = shlex.join(session.argv)
    data["tags"] = ", ".join(session.tags)
    invocations = data.pop("invocations")
    width = max(len(k) for k in data)
    lines = [f"{key + ':':<{width + 1}} {value}" for key, value in data.items()
             if value not in (None, "")]
    lines.append("invocations:")
    for number, run in enumerate(invocations, 1):
        how = run["status"]
        if run["exit_code"] is not None:
            how += f" (exit code {run['exit_code']})"
        elif run["exit_signal"]:
            how += f" ({run['exit_signal']})"
        lines.append(f"  {number}. {run['invocation_id'] or '-'}"
                     f"  started {run['started_at'] or '-'}  ended {run['ended_at'] or '-'}  {how}")
    return "\n".join(lines)


@app.command(context_settings={"allow_interspersed_args": False})
def spawn(
    command: Annotated[list[str], typer.Argument(
        help="The program and its arguments; with --provider, the prompt.",
        metavar="-- CMD [ARG...] | PROMPT")],
    name: Annotated[str | None, typer.Option(help="A name to refer to the session by.")] = None,
    description: Annotated[str, typer.Option(help="What the session is for.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    env: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE for the program's environment (repeatable).")] = None,
    env_file: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE lines handed to the program as secrets (repeatable).")] = None,
    cwd: Annotated[str | None, typer.Option(help="Working directory (default: here).")] = None,
    provider: Annotated[str | None, typer.Option(
        help="Run an agent: claude, codex, gemini, copilot, ollama, or exec (a command).")] = None,
    model: Annotated[str | None, typer.Option(help="The agent's model.")] = None,
    system_prompt: Annotated[str | None, typer.Option(help="The agent's system prompt.")] = None,
    auto_approve: Annotated[bool | None, typer.Option(
        "--auto-approve", help="Let the agent act without asking.")] = None,
    add_dir: Annotated[list[str] | None, typer.Option(
        help="Another directory the agent may work in (repeatable).")] = None,
    max_turns: Annotated[int | None, typer.Option(help="Stop the agent after N turns.")] = None,
    profile: Annotated[str | None, typer.Option(help="Defaults from [profiles.NAME].")] = None,
    timeout: Annotated[str | None, typer.Option(
        help="Fail the session after DURATION (30m, 2h): result timeout.")] = None,
    memory_max: Annotated[str | None, typer.Option(help="Memory limit (300M, 2G).")] = None,
    cpu_quota: Annotated[str | None, typer.Option(help="CPU limit (50%, 200%).")] = None,
    tasks_max: Annotated[str | None, typer.Option(help="Process/thread limit.")] = None,
    nice: Annotated[int | None, typer.Option(help="Nice level, -20 to 19.")] = None,
    restart: Annotated[str | None, typer.Option(
        help="no, on-failure or always (with a bounded start limit).")] = None,
    sandbox: Annotated[bool | None, typer.Option(
        "--sandbox", help="Read-only system and home; writable: cwd and --add-dir.")] = None,
    worktree: Annotated[bool | None, typer.Option(
        "--worktree", help="Run in a git worktree of its own (kept until reaped).")] = None,
    persistent: Annotated[bool | None, typer.Option(
        "--persistent", help="Start it again at boot (orch recover) if it was cut off.")] = None,
    after: Annotated[list[str] | None, typer.Option(
        help="Start only after this session ended successfully (repeatable).")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Start CMD (or, with --provider, an agent on PROMPT) as a new session: a transient
    systemd service. Unset options take [spawn] and --profile defaults from the config."""
    from orch import config
    from orch.spec import parse_env

    scope = api.current_scope(user, system)
    flags = {"provider": provider, "model": model, "system_prompt": system_prompt,
             "auto_approve": auto_approve, "add_dirs": add_dir, "max_turns": max_turns,
             "timeout": timeout, "memory_max": memory_max, "cpu_quota": cpu_quota,
             "tasks_max": tasks_max, "nice": nice, "restart": restart, "sandbox": sandbox,
             "worktree": worktree, "persistent": persistent, "env_files": env_file,
             "tags": tag, "cwd": cwd}
    settings = config.load(scope).spawn_defaults(profile)
    settings.update({k: config.flag_value(k, v) for k, v in flags.items() if v is not None})
    session = api.spawn_from_settings(command, settings, name=name, description=description,
                                      env=parse_env(env or []), scope=scope,
                                      after=after or [])
    if as_json:
        _emit_json(session.to_json())
    else:
        print(session.id)


@app.command()
def result(ref: RefArg, user: UserOpt = False, system: SystemOpt = False,
           as_json: JsonOpt = False) -> None:
    """Print the final text of a session: its agent's result, or what `orch kill` recorded
    (exit 1 if there is none yet)."""
    session = api.result(ref, api.current_scope(user, system))
    if as_json:
        _emit_json({"id": session.id, "status": str(session.status),
                    "final_result": session.final_result,
                    "provider_session_id": session.provider_session_id,
                    "usage": session.usage, "cost_usd": session.cost_usd})
    elif session.final_result is not None:
        sys.stdout.write(session.final_result.rstrip("\n") + "\n")
    if session.final_result is None:
        _say(f"orch: session {session.id[:8]} ({session.name}) has no result "
             f"({session.status})")
        raise typer.Exit(1)


@app.command()
def resume(
    ref: RefArg,
    prompt: Annotated[str | None, typer.Argument(help="What to tell the agent.")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Start an ended agent session again, resuming the agent's own conversation."""
    session = api.resume(ref, prompt, api.current_scope(user, system))
    if as_json:
        _emit_json(session.to_json())
    else:
        print(session.id)


config_app = typer.Typer(help="Settings in config.toml ([spawn], [providers.NAME], "
                         "[profiles.NAME]).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")


@config_app.command("get")
def config_get(key: str, user: UserOpt = False, system: SystemOpt = False) -> None:
    """Print one setting (dotted: spawn.memory_max); exit 1 if it is not set."""
    from orch import config

    value = config.get(api.current_scope(user, system), key)
    if value is None:
        raise typer.Exit(1)
    print(json.dumps(value) if not isinstance(value, str) else value)


@config_app.command("set")
def config_set(key: str, value: str, user: UserOpt = False, system: SystemOpt = False) -> None:
    """Set one setting, checked before anything is written."""
    from orch import config

    config.set_value(api.current_scope(user, system), key, value)


@config_app.command("unset")
def config_unset(key: str, user: UserOpt = False, system: SystemOpt = False) -> None:
    """Remove one setting."""
    from orch import config

    if not config.unset(api.current_scope(user, system), key):
        _say(f"orch: {key} was not set")


@config_app.command("list")
def config_list(user: UserOpt = False, system: SystemOpt = False,
                as_json: JsonOpt = False) -> None:
    """Print every setting that is set."""
    from orch import config

    entries = config.items(api.current_scope(user, system))
    if as_json:
        _emit_json(dict(entries))
    for key, value in [] if as_json else entries:
        print(f"{key} = {json.dumps(value)}")


@app.command()
def ps(
    running: Annotated[bool, typer.Option("--running", help="Only sessions not ended.")] = False,
    tag: Annotated[str | None, typer.Option(help="Only sessions with this tag.")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List sessions, newest first, with their live status."""
    sessions = api.list_sessions(api.current_scope(user, system), running=running, tag=tag)
    if as_json:
        _emit_json([s.to_json() for s in sessions])
    elif sessions:
        print(_table(sessions))


@app.command()
def show(ref: RefArg, user: UserOpt = False, system: SystemOpt = False,
         as_json: JsonOpt = False) -> None:
    """Show one session."""
    session = api.show(ref, api.current_scope(user, system))
    if as_json:
        _emit_json(session.to_json())
    else:
        print(_details(session))


@app.command()
def logs(
    ref: RefArg,
    lines: Annotated[int | None, typer.Option("-n", "--lines", help="Last N lines.")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
    since: Annotated[str | None, typer.Option(help="As journalctl --since.")] = None,
    output: Annotated[LogFormat, typer.Option("-o", "--output")] = LogFormat.SHORT,
    user: UserOpt = False,
    system: SystemOpt = False,
) -> None:
    """Show a session's output from the journal, every invocation in order; the short
    format marks where each invocation starts."""
    from orch.journal import invocation_starts, logs_argv, stream_short

    record = api.find_record(ref, api.current_scope(user, system))
    argv = logs_argv(record, lines=lines, follow=follow, since=since, output=output)
    if output is LogFormat.SHORT:
        raise typer.Exit(stream_short(argv, invocation_starts(record)))
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        raise OrchError("journalctl is not installed") from None


@app.command()
def wait(
    refs: Annotated[list[str], typer.Argument(help="Sessions to wait for.", metavar="ID...")],
    any_: Annotated[bool, typer.Option("--any", help="Return when the first one ends.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Give up after S seconds (exit 124).",
                                                  metavar="S")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Wait for sessions to end: exit 0 if all ended successfully, 1 if any ended
    otherwise, 124 on timeout, 2 for an unknown id."""
    outcome = api.wait(refs, api.current_scope(user, system), any_=any_, timeout=timeout)
    if as_json:
        _emit_json([s.to_json() for s in outcome.sessions])
    if outcome.timed_out:
        _say(f"orch: timed out after {timeout:g}s")
        raise typer.Exit(WAIT_TIMEOUT)
    for s in outcome.sessions:
        if s.status.ended and not s.status.succeeded:
            _say(f"orch: session {s.id[:8]} ({s.name}) {s.status}"
                 + (f" (result {s.result})" if s.result else ""))
    raise typer.Exit(0 if outcome.succeeded else WAIT_FAILED)


@app.command()
def stop(ref: RefArg, user: UserOpt = False, system: SystemOpt = False,
         as_json: JsonOpt = False) -> None:
    """Stop a session gracefully (SIGTERM, then SIGKILL after the stop timeout)."""
    session = api.stop(ref, api.current_scope(user, system))
    if as_json:
        _emit_json(session.to_json())
    else:
        _say(f"orch: session {session.id[:8]} ({session.name}) {session.status}")


@app.command()
def kill(
    ref: RefArg,
    result: Annotated[str | None, typer.Argument(help="The final result to record.")] = None,
    file: Annotated[str | None, typer.Option("--file", help="Read the result from a file.")] = None,
    signal_: Annotated[str, typer.Option("--signal", help="Signal name or number.")] = "TERM",
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Record a final result, then signal all of a session's processes."""
    if result is not None and file is not None:
        raise OrchError("give the result as an argument or with --file, not both")
    text = api.read_result_file(file) if file is not None else result
    session = api.kill(ref, text, api.current_scope(user, system),
                       signum=api.parse_signal(signal_))
    if as_json:
        _emit_json(session.to_json())
    else:
        _say(f"orch: signalled session {session.id[:8]} ({session.name})")


@app.command()
def recover(user: UserOpt = False, system: SystemOpt = False, as_json: JsonOpt = False) -> None:
    """Reconcile records with the manager: refresh, record endings, restart persistent
    sessions, adopt units of ours with no record. Safe to run any time."""
    report = api.recover(api.current_scope(user, system))
    if as_json:
        _emit_json({"counts": report.counts,
                    "outcomes": {k: str(v) for k, v in report.outcomes.items()},
                    "sessions": [s.to_json() for s in report.sessions],
                    "errors": report.errors})
    else:
        print(", ".join(f"{n} {outcome}" for outcome, n in report.counts.items() if n)
              or "no sessions")
    for error in report.errors:
        _say(f"orch: {error}")
    if report.errors:
        raise typer.Exit(1)


@app.command()
def reap(
    older_than: Annotated[str, typer.Option(
        help="Only sessions that ended longer ago than this (0: every ended one).",
        metavar="DURATION")] = "7d",
    everything: Annotated[bool, typer.Option(
        "--all", help="Also stop running sessions and remove them.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove ended sessions' records (and reset their failed units); print their ids."""
    from orch.config import parse_duration_seconds

    reaped = api.reap(api.current_scope(user, system),
                      older_than=parse_duration_seconds(older_than),
                      everything=everything, dry_run=dry_run)
    if as_json:
        _emit_json([s.to_json() for s in reaped])
    else:
        for session in reaped:
            print(session.id)
    _say(f"orch: {'would reap' if dry_run else 'reaped'} {len(reaped)} session(s)")


units_app = typer.Typer(help="The units that recover sessions at boot and reap daily.",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(units_app, name="units")


@units_app.command("install")
def units_install(user: UserOpt = False, system: SystemOpt = False) -> None:
    """Write orch-recover.service, orch-reap.service and .timer for this orch; enable them."""
    from orch import unitfiles

    for path in unitfiles.install(api.current_scope(user, system)):
        print(path)


@units_app.command("uninstall")
def units_uninstall(user: UserOpt = False, system: SystemOpt = False) -> None:
    """Disable and remove the units `orch units install` wrote."""
    from orch import unitfiles

    for path in unitfiles.uninstall(api.current_scope(user, system)):
        print(path)


@box_app.command("up")
def box_up(
    as_json: JsonOpt = False,
    root: Annotated[Path | None, typer.Option(
        "--root", help="Boot this OS tree (a debootstrap, say) instead of sharing the host's "
        "file system.")] = None,
) -> None:
    """Boot a private systemd (root only) and wait until it is running."""
    info = box.up(root)
    if as_json:
        _emit_json(box.as_dict(info))
    else:
        _say(f"orch: box up: systemd pid {info.pid} (host), {info.state}")


@box_app.command("down")
def box_down() -> None:
    """Power the box off cleanly."""
    _say("orch: box powered off" if box.down() else "orch: no box was running")


@box_app.command("status")
def box_status(as_json: JsonOpt = False) -> None:
    """Say whether a box runs, and its manager's state (exit 3 if none runs)."""
    info = box.status()
    if as_json:
        _emit_json(box.as_dict(info) if info else None)
    elif info:
        print(f"running: systemd pid {info.pid} (host), {info.state}")
    else:
        print("not running")
    if info is None:
        raise typer.Exit(3)


@box_app.command("exec", context_settings={"allow_interspersed_args": False})
def box_exec(command: Annotated[list[str], typer.Argument(metavar="-- CMD [ARG...]")]) -> None:
    """Run a command inside the box, in this directory."""
    box.exec_inside(command)


@box_app.command("shell")
def box_shell() -> None:
    """Open a shell inside the box."""
    box.exec_inside([os.environ.get("SHELL") or "/bin/bash"])


def _version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # completion parses too: it must not print
        print(f"orch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
) -> None:
    """Run AI coding agents and other long-running commands as systemd services."""


def _forward_into_box(args: list[str]) -> None:
    """On a host whose PID 1 is not systemd, run session commands inside the box."""
    if not args or args[0] in ("box", "--help", "--version", "-h"):
        return
    if os.environ.get("ORCH_IN_BOX") or box.systemd_is_pid1() or os.geteuid() != 0:
        return
    running = box.running_box()
    if running is None or running.root != "/":  # a box over another OS tree lacks this orch
        return
    os.environ["ORCH_IN_BOX"] = "1"
    box.exec_inside([sys.executable, "-m", "orch", *args])


def _fail(message: str, code: int) -> NoReturn:
    _say(f"orch: {message}")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning expected failures into one line and an exit code."""
    if os.environ.get("_ORCH_COMPLETE"):  # a shell's completion script: answer, nothing else
        from orch import completion

        sys.exit(completion.answer(app))
    args = list(sys.argv[1:] if argv is None else argv)
    head = args[: args.index("--")] if "--" in args else args
    debug = "--debug" in head or bool(os.environ.get("ORCH_DEBUG"))
    try:
        _forward_into_box(args)
        code = app(args=args, prog_name="orch", standalone_mode=False)
    except typer.Exit as done:
        code = done.exit_code
    except typer.TyperException as err:  # click's usage errors, vendored by typer
        if debug:
            traceback.print_exc()
        ctx = getattr(err, "ctx", None)
        path = ctx.command_path.split(" ", 1)[-1] if ctx and " " in ctx.command_path else ""
        where = f"orch {path} --help" if path else "orch --help"
        _fail(f"{err.format_message()} (see `{where}`)".replace("\n", " "), err.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", 130)
    except OrchError as err:
        if debug:
            traceback.print_exc()
        _fail(err.message + (f"; {err.hint}" if err.hint else ""), err.exit_code)
    except Exception as err:
        if debug:
            traceback.print_exc()
        _fail(f"internal error: {err!r} (run with --debug for the trace)", 70)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["Scope", "app", "main"]
