"""orch's command tree in typer: every command, option and help text. It parses what
orch.fastcli does not take (help, completion, errors, the rarer forms) and feeds the
man page and completion; each command's body is in orch.commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from orch import commands, vendor
from orch.journal import LogFormat

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


def _run(code: int) -> None:
    if code:
        raise typer.Exit(code)


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
        help="Fail the session after DURATION (30m, 2h 30min; a bare number is seconds; "
        "0 or infinity: never): result timeout.", metavar="DURATION")] = None,
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
        "--persistent", help="Start it again at boot (orch recover) if it was cut off; for "
        "a user, at boot only with lingering (loginctl enable-linger), else at login.")] = None,
    after: Annotated[list[str] | None, typer.Option(
        help="Start only after this session ended successfully (repeatable).")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
    placement: Annotated[str | None, typer.Option(
        hidden=True, help="Why this host was chosen (set by --host auto).")] = None,
) -> None:
    """Start CMD (or, with --provider, an agent on PROMPT) as a new session: a transient
    systemd service. Unset options take [spawn] and --profile defaults from the config."""
    _run(commands.spawn(**locals()))


@app.command()
def result(ref: RefArg, user: UserOpt = False, system: SystemOpt = False,
           as_json: JsonOpt = False) -> None:
    """Print the final text of a session: its agent's result, or what `orch kill` recorded
    (exit 1 if there is none yet)."""
    _run(commands.result(**locals()))


@app.command()
def resume(
    ref: RefArg,
    prompt: Annotated[str | None, typer.Argument(help="What to tell the agent.")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Start an ended agent session again, resuming the agent's own conversation."""
    _run(commands.resume(**locals()))


config_app = typer.Typer(help="Settings in config.toml ([spawn], [providers.NAME], "
                         "[profiles.NAME]).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(config_app, name="config")


@config_app.command("get")
def config_get(key: str, user: UserOpt = False, system: SystemOpt = False) -> None:
    """Print one setting (dotted: spawn.memory_max); exit 1 if it is not set."""
    _run(commands.config_get(**locals()))


@config_app.command("set")
def config_set(key: str, value: str, user: UserOpt = False, system: SystemOpt = False) -> None:
    """Set one setting, checked before anything is written."""
    _run(commands.config_set(**locals()))


@config_app.command("unset")
def config_unset(key: str, user: UserOpt = False, system: SystemOpt = False) -> None:
    """Remove one setting."""
    _run(commands.config_unset(**locals()))


@config_app.command("list")
def config_list(user: UserOpt = False, system: SystemOpt = False,
                as_json: JsonOpt = False) -> None:
    """Print every setting that is set."""
    _run(commands.config_list(**locals()))


@app.command()
def ps(
    running: Annotated[bool, typer.Option("--running", help="Only sessions not ended.")] = False,
    tag: Annotated[str | None, typer.Option(help="Only sessions with this tag.")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
    all_hosts: Annotated[bool, typer.Option(
        "--all-hosts", help="This machine's sessions and every [hosts.NAME]'s, read at "
        "once (a HOST column; ORCH_HOST_TIMEOUT bounds each host).")] = False,
    full: Annotated[bool, typer.Option(
        "-l", "--full", help="Print every cell whole (on a terminal the table is cut to "
        "its width, $COLUMNS if set; piped, it is always whole).")] = False,
) -> None:
    """List sessions, newest first, with their live status."""
    _run(commands.ps(**locals()))


@app.command()
def show(ref: RefArg, user: UserOpt = False, system: SystemOpt = False,
         as_json: JsonOpt = False) -> None:
    """Show one session."""
    _run(commands.show(**locals()))


@app.command()
def logs(
    ref: RefArg,
    lines: Annotated[int | None, typer.Option("-n", "--lines", help="Last N lines.")] = None,
    follow: Annotated[bool, typer.Option(
        "-f", "--follow", help="Keep printing until the session has ended; exit as `wait`.")
    ] = False,
    since: Annotated[str | None, typer.Option(help="As journalctl --since.")] = None,
    output: Annotated[LogFormat, typer.Option("-o", "--output")] = LogFormat.SHORT,
    no_pager: Annotated[bool, typer.Option(
        "--no-pager", help="Do not pipe the output into a pager on a terminal.")] = False,
    user: UserOpt = False,
    system: SystemOpt = False,
) -> None:
    """Show a session's output from the journal, whole lines, every invocation in order;
    the short format marks where each invocation starts. On a terminal the output goes
    through a pager ($SYSTEMD_PAGER, $PAGER, less). With -f, exit once the session has
    ended: 0 if it ended successfully, 1 otherwise."""
    _run(commands.logs(**locals()))


@app.command()
def wait(
    refs: Annotated[list[str], typer.Argument(help="Sessions to wait for.", metavar="ID...")],
    any_: Annotated[bool, typer.Option("--any", help="Return when the first one ends.")] = False,
    timeout: Annotated[str | None, typer.Option(
        help="Give up after DURATION (exit 124): 90, 2m, 1h30m (a bare number is seconds; "
        "infinity: never).", metavar="DURATION")] = None,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Wait for sessions to end: exit 0 if all ended successfully, 1 if any ended
    otherwise, 124 on timeout, 2 for an unknown id."""
    _run(commands.wait(**locals()))


@app.command()
def stop(ref: RefArg, user: UserOpt = False, system: SystemOpt = False,
         as_json: JsonOpt = False) -> None:
    """Stop a session gracefully (SIGTERM, then SIGKILL after the stop timeout)."""
    _run(commands.stop(**locals()))


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
    _run(commands.kill(**locals()))


@app.command()
def recover(user: UserOpt = False, system: SystemOpt = False, as_json: JsonOpt = False) -> None:
    """Reconcile records with the manager: refresh, record endings, restart persistent
    sessions, adopt units of ours with no record. Safe to run any time."""
    _run(commands.recover(**locals()))


@app.command()
def reap(
    older_than: Annotated[str, typer.Option(
        help="Only sessions that ended longer ago than DURATION: 7d, 12h, 90 (a bare number "
        "is seconds; 0: every ended one).", metavar="DURATION")] = "7d",
    everything: Annotated[bool, typer.Option(
        "--all", help="Also stop running sessions and remove them.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    user: UserOpt = False,
    system: SystemOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove ended sessions' records (and reset their failed units); print their ids."""
    _run(commands.reap(**locals()))


units_app = typer.Typer(help="The units that recover sessions at boot and reap daily.",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(units_app, name="units")


@units_app.command("install")
def units_install(user: UserOpt = False, system: SystemOpt = False) -> None:
    """Write orch-recover.service, orch-reap.service and .timer for this orch; enable them."""
    _run(commands.units_install(**locals()))


@units_app.command("uninstall")
def units_uninstall(user: UserOpt = False, system: SystemOpt = False) -> None:
    """Disable and remove the units `orch units install` wrote."""
    _run(commands.units_uninstall(**locals()))


@box_app.command("up")
def box_up(
    as_json: JsonOpt = False,
    root: Annotated[Path | None, typer.Option(
        "--root", help="Boot this OS tree (a debootstrap, say) instead of sharing the host's "
        "file system.")] = None,
) -> None:
    """Boot a private systemd (root only) and wait until it is running."""
    _run(commands.box_up(**locals()))


@box_app.command("down")
def box_down() -> None:
    """Power the box off cleanly."""
    _run(commands.box_down(**locals()))


@box_app.command("status")
def box_status(as_json: JsonOpt = False) -> None:
    """Say whether a box runs, and its manager's state (exit 3 if none runs)."""
    _run(commands.box_status(**locals()))


@box_app.command("exec", context_settings={"allow_interspersed_args": False})
def box_exec(command: Annotated[list[str], typer.Argument(metavar="-- CMD [ARG...]")]) -> None:
    """Run a command inside the box, in this directory."""
    _run(commands.box_exec(**locals()))


@box_app.command("shell")
def box_shell() -> None:
    """Open a shell inside the box."""
    _run(commands.box_shell(**locals()))


def _version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # completion parses too: it must not print
        raise typer.Exit(commands.version())


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
    host: Annotated[str | None, typer.Option(
        "--host", help="Run the command on another host over SSH: [USER@]HOST[:PORT] or a "
        "[hosts.NAME]; `auto` lets spawn choose the one with the most free memory. Also "
        "ORCH_HOST. Accepted after the command name too.")] = None,
    label: Annotated[str | None, typer.Option(
        "--label", help="spawn: choose among the hosts with this label (implies --host "
        "auto).")] = None,
) -> None:
    """Run AI coding agents and other long-running commands as systemd services."""
