"""The one definition of orch's command line: every command, option, argument and help
text, as plain data.

Everything that reads a command line derives from it at run time: orch.app builds
typer's command tree from it (help, usage errors, completion, the man page), orch.fastcli
reads well-formed lines with it without loading typer, orch.hostcli finds --host,
--label and the scope with fastcli's scanner, and orch.completion answers from it. A new
option is one entry here (a spawn setting is one entry in orch.settings) and a body in
orch.commands. Kept light at import: plain classes, no typer, no enum machinery.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    # What an option or argument's value is: "flag" (takes none), "str", "int", "float",
    # "path", or a function that returns the Enum whose values it takes (loaded on use).
    Kind = Any


class Option:
    """An option: its names (`flags`, the first long one naming it in messages; a flag
    may have `negative` names, which set it false), where its value goes (`dest`, the
    body's parameter), and how it reads."""

    __slots__ = ("completions", "default", "dest", "flags", "help", "hidden", "kind",
                 "metavar", "multiple", "negative", "setting")

    def __init__(self, dest: str, flags: tuple[str, ...], kind: Kind, help: str, *,
                 default: object = None, multiple: bool = False, metavar: str | None = None,
                 hidden: bool = False, setting: bool = False,
                 negative: tuple[str, ...] = (), completions: tuple[str, ...] = ()) -> None:
        self.completions = completions  # the words Tab offers for its value (--restart)
        self.dest, self.flags, self.kind, self.help = dest, flags, kind, help
        self.negative = negative
        self.default, self.multiple = default, multiple
        # What --help and the man page show for its value: its name, not typer's <str>.
        self.metavar = metavar or (None if kind == "flag" else
                                   _METAVARS.get(dest, dest.upper().replace("_", "-")))
        self.hidden = hidden
        self.setting = setting  # a spawn setting: the body gets it in `settings`


class Argument:
    """A positional argument; a variadic one takes every word left."""

    __slots__ = ("completes", "default", "dest", "help", "kind", "metavar", "required",
                 "variadic")

    def __init__(self, dest: str, kind: Kind, help: str | None = None, *,
                 metavar: str | None = None, variadic: bool = False,
                 required: bool = True, completes: str | None = None) -> None:
        self.dest, self.kind, self.help = dest, kind, help
        self.metavar = metavar or _METAVARS.get(dest, dest.upper())
        self.variadic, self.required = variadic, required
        self.default = None
        # What a shell's Tab offers for it (the sources orch.completion.values reads).
        self.completes = completes


# Value names where an option's or argument's own name would not say it.
_METAVARS = {"env": "KEY=VALUE", "after": "ID", "ref": "ID", "refs": "ID...",
             "description": "TEXT", "signal": "SIG", "since": "TIME", "profile": "NAME",
             "file": "FILE", "signal_": "SIG"}


class Command:
    """A command: the orch.commands function that is its body, and its parameters in the
    order --help lists them (PARAMS, or a function that makes them when first asked: a
    spawn's come from its settings, which other commands need not load). Not
    interspersed: options end at the first argument (the program of `spawn`, say, keeps
    its own options)."""

    __slots__ = ("_params", "function", "help", "hidden", "interspersed")

    def __init__(self, function: str, help: str,
                 params: list[Option | Argument] | Callable[[], list[Option | Argument]],
                 *, interspersed: bool = True, hidden: bool = False) -> None:
        self.function, self.help, self._params = function, help, params
        self.interspersed, self.hidden = interspersed, hidden  # HIDDEN: orch's own use

    @property
    def params(self) -> list[Option | Argument]:
        if callable(self._params):
            self._params = self._params()
        return self._params


class Group:
    """Commands under one name (`orch config get`)."""

    __slots__ = ("commands", "help")

    def __init__(self, help: str, commands: dict[str, Command | Group]) -> None:
        self.help, self.commands = help, commands


def _log_format() -> Any:
    from orch.journal import LogFormat

    return LogFormat


USER = Option("user", ("--user",), "flag", "Use the calling user's manager.", default=False)
SYSTEM = Option("system", ("--system",), "flag", "Use the system manager.", default=False)
JSON = Option("as_json", ("--json",), "flag", "Print JSON on stdout.", default=False)
SCOPED = [USER, SYSTEM]
# A config command's --user and --system choose a file, not a manager.
CONFIG_SCOPED = [Option("user", ("--user",), "flag", "The calling user's configuration file.",
                        default=False),
                 Option("system", ("--system",), "flag", "The system's configuration file "
                        "(/etc/orch/config.toml).", default=False)]
REF = Argument("ref", "str", "A session id, a unique id prefix (4+ characters), a name, a "
               "unit name, or `self`.")

# logs and events read --since alike (timespan.since_usec).
SINCE_HELP = ("Only {what} since TIME: an ISO 8601 time (local without a zone; 15:09 is "
              "today's), a time span ago (1h, '2 min ago'), today or yesterday.")
ROOT_HELP = "Run AI coding agents and other long-running commands as systemd services."
ROOT = [
    Option("debug", ("--debug",), "flag", "Show tracebacks.", default=False),
    Option("version", ("--version",), "flag", "Print the version.", default=False),
    Option("host", ("--host",), "str", "Run the command on another host over SSH: "
           "[USER@]HOST[:PORT] or a [hosts.NAME]; `auto` lets spawn choose the one with the "
           "most free memory. Also ORCH_HOST. Accepted after the command name too.",
           metavar="HOST"),
    Option("label", ("--label",), "str", "spawn: choose among the hosts with this label "
           "(implies --host auto).", metavar="LABEL"),
]
# The root's options that take a value, and those that take none and run no command.
HOST_OPTIONS = tuple(o.flags[0] for o in ROOT if o.kind != "flag")
ROOT_FLAGS = tuple(o.flags[0] for o in ROOT if o.kind == "flag" and o.dest != "version")


def _spawn_params() -> list[Option | Argument]:
    from orch.settings import SPAWN_SETTINGS

    # A flag's --no- form sets it false for this spawn, whatever [spawn] or the profile say.
    settings = [Option(s.key, (s.flag,), s.cli_type, s.flag_help, multiple=s.repeatable,
                       metavar=s.metavar, setting=True, completions=s.choices,
                       negative=(f"--no-{s.flag[2:]}",) if s.cli_type == "flag" else ())
                for s in SPAWN_SETTINGS.values() if s.flag is not None]
    return [
        Argument("command", "str", "The program and its arguments; with --provider, the "
                 "prompt.", metavar="-- CMD [ARG...] | PROMPT", variadic=True),
        Option("name", ("--name",), "str", "A name to refer to the session by."),
        Option("description", ("--description",), "str", "What the session is for.",
               default=""),
        Option("env", ("--env",), "str", "KEY=VALUE for the program's environment "
               "(repeatable).", multiple=True),
        *settings,
        Option("profile", ("--profile",), "str", "Defaults from [profiles.NAME]."),
        Option("after", ("--after",), "str", "Start only after this session ended "
               "successfully (repeatable).", multiple=True),
        *SCOPED, JSON,
        Option("placement", ("--placement",), "str", "Why this host was chosen (set by "
               "--host auto).", hidden=True),
    ]


_NOT_SCHEDULED = ("after", "placement", "user", "system", "as_json")


def _schedule_add_params() -> list[Option | Argument]:
    spawn = [p for p in _spawn_params() if p.dest not in _NOT_SCHEDULED]
    arguments = [p for p in spawn if isinstance(p, Argument)]
    return [
        Argument("schedule", "str", "The schedule's name: letters, digits, _ and -.",
                 metavar="NAME"),
        *arguments,
        Option("on_calendar", ("--on-calendar",), "str", "When it runs (required), in "
               "systemd's calendar syntax (systemd.time(7)): daily, 'Mon..Fri 02:00', "
               "'*:0/30'.",
               metavar="SPEC"),
        Option("overlap", ("--overlap",), "flag", "Start the next run even if the last "
               "one's session still runs.", default=False),
        *(p for p in spawn if not isinstance(p, Argument)), *SCOPED]


def spawn_words(values: dict[str, Any], command: list[str]) -> list[str]:
    """`orch spawn`'s words for VALUES (by dest, a setting's value as its flag took it)
    and COMMAND: the spawn a schedule runs, written out to be read back the same."""
    words: list[str] = []
    for param in _spawn_params():
        if not isinstance(param, Option) or param.dest not in values:
            continue
        value = values[param.dest]
        if value is False and param.negative:
            words.append(param.negative[0])
            continue
        if value in (None, False, [], ()) or (param.kind != "flag" and value == param.default):
            continue
        flag = next(f for f in param.flags if f.startswith("--"))
        if param.kind == "flag":
            words.append(flag)
        else:
            words += [f"{flag}={v}" for v in (value if param.multiple else [value])]
    return [*words, "--", *command]


def _scoped(function: str, help: str, *params: Option | Argument,
            json: bool = True, scopes: list[Option] = SCOPED) -> Command:
    return Command(function, help, [*params, *scopes, *([JSON] if json else [])])


def _tree() -> dict[str, Command | Group]:
    return {
        "spawn": Command("spawn", "Start CMD (or, with --provider, an agent on PROMPT) as a "
                         "new session: a transient systemd service. Unset options take "
                         "[spawn] and --profile defaults from the config.", _spawn_params,
                         interspersed=False),
        "result": _scoped("result", "Print the final text of a session: its agent's result, "
                          "or what `orch kill` recorded (exit 1 if there is none yet).", REF,
                          Option("all_", ("--all",), "flag", "Every turn's, oldest first: a "
                                 "conversation's turns and a resumed agent's runs.",
                                 default=False)),
        "resume": _scoped("resume", "Start an ended agent session again, resuming the "
                          "agent's own conversation.", REF,
                          Argument("prompt", "str", "What to tell the agent.", required=False)),
        "send": _scoped("send", "Hand a conversation (spawn --interactive) its next "
                        "message; an ended agent session is resumed with it. During a "
                        "turn, claude reads it at the turn's next step.", REF,
                        Argument("message", "str", "The message; - reads it from standard "
                                 "input.", required=False),
                        Option("file", ("--file",), "str", "Read the message from a file."),
                        Option("interrupt", ("--interrupt",), "flag", "Stop the agent's "
                               "current turn instead (claude).", default=False)),
        "attach": _scoped("attach", "Connect this terminal to a session spawned with --tty: "
                          "keys in, screen out, the window size passed on. Ctrl-\\ "
                          "detaches and leaves it running.", REF, json=False),
        "ps": Command("ps", "List sessions, newest first, with their live status.", [
            Option("running", ("--running",), "flag", "Only sessions not ended.",
                   default=False),
            Option("tag", ("--tag",), "str", "Only sessions with this tag (repeatable: "
                   "with every one given).", multiple=True),
            *SCOPED, JSON,
            Option("all_hosts", ("--all-hosts",), "flag", "This machine's sessions and "
                   "every [hosts.NAME]'s, read at once (a HOST column; ORCH_HOST_TIMEOUT "
                   "bounds each host).", default=False),
            Option("full", ("-l", "--full"), "flag", "Print every cell whole (on a terminal "
                   "the table is cut to its width, $COLUMNS if set; piped, it is always "
                   "whole).", default=False),
        ]),
        "show": _scoped("show", "Show one session.", REF),
        "serve": _scoped("web.serve:command", "Serve the HTTP API and web dashboard: on "
                         "the socket systemd passes (orch-web.socket: the caller checked by "
                         "its credentials), else in the foreground on --listen, every "
                         "request needing the token.",
                         Option("listen", ("--listen",), "str", "Listen on TCP HOST:PORT "
                                "(default 127.0.0.1:8765).", metavar="HOST:PORT"),
                         Option("token_file", ("--token-file",), "str", "The token's file "
                                "(default: $XDG_CONFIG_HOME/orch/web-token, made if "
                                "missing).", metavar="FILE"),
                         Option("allow_remote", ("--allow-remote",), "flag", "Listen on an "
                                "address other machines reach.", default=False),
                         Option("idle_exit", ("--idle-exit",), "str", "Socket-activated: "
                                "exit after this long with no connection (default 10min).",
                                metavar="DURATION"), json=False),
        "top": _scoped("top:command", "Watch the sessions live on the whole terminal: "
                       "status, age, memory, CPU (% over the interval), cost and what each "
                       "last said; keys sort (m, c, $, a), show logs (l), stop (s) and kill "
                       "(k, asked first); q quits. Needs a terminal.",
                       Option("interval", ("-i", "--interval"), "float", "Seconds between "
                              "refreshes.", default=2.0, metavar="SECONDS"),
                       Option("all_hosts", ("--all-hosts",), "flag", "This machine's "
                              "sessions and every [hosts.NAME]'s (a HOST column).",
                              default=False), json=False),
        "logs": _scoped("logs", "Show a session's output from the journal, whole lines, "
                        "every invocation in order; the short format marks where each "
                        "invocation starts. On a terminal the output goes through a pager "
                        "($SYSTEMD_PAGER, $PAGER, less). With -f, exit once the session has "
                        "ended: 0 if it ended successfully, 1 otherwise.", REF,
                        Option("lines", ("-n", "--lines"), "int", "Last N lines."),
                        Option("follow", ("-f", "--follow"), "flag", "Keep printing until "
                               "the session has ended; exit as `wait`.", default=False),
                        Option("since", ("--since",), "str", SINCE_HELP.format(what="lines")),
                        Option("output", ("-o", "--output"), _log_format, "The format: "
                               "transcript (an agent's default), short (any other "
                               "program's), cat or json.", default=None),
                        Option("no_pager", ("--no-pager",), "flag", "Do not pipe the output "
                               "into a pager on a terminal.", default=False),
                        Option("after_cursor", ("--after-cursor",), "str", "Only what came "
                               "after this journal cursor (an entry's __CURSOR in -o json), "
                               "as journalctl --after-cursor; not with -n.",
                               metavar="CURSOR"),
                        Option("sse", ("--sse",), "flag", "With -f: as Server-Sent Events, "
                               "each with its journal cursor as id (for `orch serve` on "
                               "another host).", default=False, hidden=True), json=False),
        "wait": _scoped("wait", "Wait for sessions to end: exit 0 if all ended successfully, "
                        "1 if any ended otherwise, 124 on timeout, 2 for an unknown id.",
                        Argument("refs", "str", "Sessions to wait for.", metavar="ID...",
                                 variadic=True),
                        Option("any_", ("--any",), "flag", "Return when the first one ends.",
                               default=False),
                        Option("timeout", ("--timeout",), "str", "Give up after DURATION "
                               "(exit 124): 90, 2m, 1h30m (a bare number is seconds; "
                               "infinity: never).", metavar="DURATION")),
        "events": _scoped("fleetcli:events", "Print sessions' state changes, one per line: "
                          "spawned, queued, started, limited, retrying, resumed, retried, "
                          "ended (with how). --json: one object per line.",
                          Argument("refs", "str", "Only these sessions (default: all).",
                                   metavar="[ID...]", variadic=True, required=False),
                          Option("follow", ("-f", "--follow"), "flag", "Keep printing "
                                 "events as they come, until Ctrl-C.", default=False),
                          Option("since", ("--since",), "str",
                                 SINCE_HELP.format(what="events"))),
        "stop": _scoped("stop", "Stop a session gracefully (SIGTERM, then SIGKILL after the "
                        "stop timeout).", REF),
        "kill": _scoped("kill", "Record a final result, then signal the session's program "
                        "(STOP, CONT and the like: sent, nothing recorded).", REF,
                        Argument("result", "str", "The final result to record.",
                                 required=False),
                        Option("file", ("--file",), "str", "Read the result from a file."),
                        Option("signal_", ("--signal",), "str", "Signal name or number.",
                               default="TERM")),
        "recover": _scoped("recover", "Reconcile records with the manager: refresh, record "
                           "endings, restart persistent sessions, adopt units of ours with "
                           "no record. Safe to run any time."),
        "reap": _scoped("reap", "Remove ended sessions' records (and reset their failed "
                        "units); print their ids.",
                        Option("older_than", ("--older-than",), "str", "Only sessions that "
                               "ended longer ago than DURATION: 7d, 12h, 90 (a bare number "
                               "is seconds; 0: every ended one). Default: 7d; with --all, 0.",
                               metavar="DURATION"),
                        Option("everything", ("--all",), "flag", "Every session: also stop "
                               "running ones and remove them.", default=False),
                        Option("dry_run", ("--dry-run",), "flag", "Only say what would go.",
                               default=False)),
        "box": Group("A private systemd for hosts whose PID 1 is not systemd.", {
            "up": Command("box_up", "Boot a private systemd (root only) and wait until it "
                          "is running.", [
                JSON, Option("root", ("--root",), "path", "Boot this OS tree (a "
                             "debootstrap, say) instead of sharing the host's file system.")]),
            "down": Command("box_down", "Power the box off cleanly.", []),
            "status": Command("box_status", "Say whether a box runs, and its manager's "
                              "state (exit 3 if none runs).", [JSON]),
            "exec": Command("box_exec", "Run a command inside the box, in this directory.",
                            [Argument("command", "str", metavar="-- CMD [ARG...]",
                                      variadic=True)], interspersed=False),
            "shell": Command("box_shell", "Open a shell inside the box.", []),
        }),
        "config": Group("Settings in config.toml ([spawn], [hooks], [providers.NAME], "
                        "[profiles.NAME], [hosts.NAME], [queues.NAME]).", {
            "get": _scoped("config_get", "Print one setting (dotted: spawn.memory_max); exit "
                           "1 if it is not set.", Argument("key", "str", completes="keys"),
                           json=False, scopes=CONFIG_SCOPED),
            "set": _scoped("config_set", "Set one setting, checked before anything is "
                           "written.", Argument("key", "str", completes="keys"),
                           Argument("value", "str"), json=False, scopes=CONFIG_SCOPED),
            "unset": _scoped("config_unset", "Remove one setting.",
                             Argument("key", "str", completes="keys"), json=False,
                             scopes=CONFIG_SCOPED),
            "list": _scoped("config_list", "Print every setting that is set.",
                            scopes=CONFIG_SCOPED),
        }),
        "schedule": Group("Spawns on a calendar: timer units in the scope's unit "
                          "directory, so they survive reboots and catch up on a missed run.", {
            "add": Command("fleetcli:schedule_add", "Add a schedule: at each --on-calendar "
                           "time, spawn CMD (or, with --provider, an agent on PROMPT) with "
                           "these spawn options, tagged schedule:NAME; runs never overlap "
                           "unless --overlap.", _schedule_add_params),
            "list": _scoped("fleetcli:schedule_list", "List the schedules, with when each "
                            "runs next and ran last."),
            "remove": _scoped("fleetcli:schedule_remove", "Remove a schedule (a run in "
                              "progress goes on).", Argument("schedule", "str",
                                                             metavar="NAME",
                                                             completes="schedules"),
                              json=False),
            "run": _scoped("fleetcli:schedule_run", "Run a schedule now, as its timer "
                           "would (not while a run of it is still going).",
                           Argument("schedule", "str", metavar="NAME",
                                    completes="schedules"), json=False),
            "fire": Command("fleetcli:schedule_fire", "What a schedule's timer runs: spawn "
                            "with SPAWN_ARGS and, unless --overlap, wait for the session.", [
                Argument("schedule", "str", metavar="NAME"),
                Option("overlap", ("--overlap",), "flag", "Do not wait for the session.",
                       default=False),
                Argument("spawn_args", "str", "orch spawn's options, --, and the command.",
                         metavar="[SPAWN_ARGS...]", variadic=True, required=False),
                *SCOPED], interspersed=False, hidden=True),
        }),
        "units": Group("The units that recover sessions at boot, reap daily, and answer "
                       "the web API on a Unix socket.", {
            "install": _scoped("units_install", "Write orch-recover.service, "
                               "orch-reap.service and .timer, orch-web.socket and .service "
                               "for this orch; enable them, and start the timer and the "
                               "socket.", json=False),
            "uninstall": _scoped("units_uninstall", "Disable and remove the units `orch "
                                 "units install` wrote.", json=False),
        }),
    }


_TREE: dict[str, Command | Group] | None = None


def tree() -> dict[str, Command | Group]:
    """The command tree, built once per process."""
    global _TREE
    if _TREE is None:
        _TREE = _tree()
    return _TREE


def commands() -> list[tuple[tuple[str, ...], Command]]:
    """Every command with its path, in the tree's order."""
    found: list[tuple[tuple[str, ...], Command]] = []

    def walk(node: dict[str, Command | Group], path: tuple[str, ...]) -> None:
        for name, child in node.items():
            if isinstance(child, Command):
                found.append(((*path, name), child))
            else:
                walk(child.commands, (*path, name))

    walk(tree(), ())
    return found


def choices(kind: Kind) -> list[str] | None:
    """The values a choice KIND takes, or None if KIND is not a choice."""
    if callable(kind):
        return [str(member.value) for member in kind()]
    return None


def body_of(command: Command) -> Callable[..., int]:
    """The function that runs COMMAND: orch.commands' of its name, or for a
    "module:function" name, that module's (orch.fleetcli...)."""
    module, _, function = command.function.rpartition(":")
    bodies = __import__(f"orch.{module or 'commands'}", fromlist=[function])
    body: Callable[..., int] = getattr(bodies, function)
    return body


def call(command: Command, values: dict[str, Any],
         body: Callable[..., int] | None = None) -> int:
    """Run COMMAND's body with VALUES (by dest), as either parser read them: a spawn's
    settings go to it as one `settings` mapping (setting key: the flag's value or None)."""
    if body is None:
        body = body_of(command)
    grouped = [p.dest for p in command.params if isinstance(p, Option) and p.setting]
    if grouped:
        values = dict(values)
        values["settings"] = {dest: values.pop(dest) for dest in grouped}
    return int(body(**values))
