"""The orch(1) man page, generated from the CLI's command tree so that it cannot drift
from `--help`.

`python -m orch.manpage [OUTPUT]` writes it (to stdout without OUTPUT); the Debian
package build runs it. It reads the click objects only: no manager is contacted, so it
runs where no systemd is.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from orch import __version__, vendor
from orch.alarm import DEFAULT_CALL_TIMEOUT
from orch.ssh import DEFAULT_PERSIST
from orch.ssh import DEFAULT_TIMEOUT as DEFAULT_HOST_TIMEOUT

# The package build runs this with typer vendored: that copy must win, as in orch.cli.
vendor.activate()
import typer.main  # noqa: E402
from typer import _click as click  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from orch.app import app  # noqa: E402

# What each exit status means; a test keeps it in step with orch.errors and orch.cli.
EXIT_STATUS = (
    (0, "Success."),
    (1, "Failure: the command could not do what it was asked (a session could not be "
        "started, `orch wait` saw a session end unsuccessfully, `orch result` found no "
        "result yet, `orch config get` found the setting unset, `orch recover` met errors)."),
    (2, "Usage error: a malformed option or argument, an invalid configuration file, or a "
        "session reference that matches no session or more than one; `orch wait` also "
        "exits 2 for an unknown id."),
    (3, "The systemd manager cannot be reached or did not answer within the call timeout; "
        "`orch box status` exits 3 when no box runs."),
    (4, "Permission denied by the manager or the file system."),
    (5, "The state file cannot be read or written safely; it is left as it was."),
    (70, "Internal error (a bug); run with --debug for the trace."),
    (124, "`orch wait --timeout` gave up before the sessions ended."),
    (130, "Interrupted."),
    # `orch logs -f` exits as `orch wait` does once the session has ended.
)

# Every variable orch reads or sets; a test checks the code reads none besides these.
ENVIRONMENT = (
    ("ORCH_STATE_DIR", "Keep the state file in this directory, for either scope, instead of "
                       "the default; sessions and the units `orch units install` writes "
                       "inherit it."),
    ("ORCH_CONFIG", "Read and write this configuration file, for either scope, instead of "
                    "the default."),
    ("ORCH_CALL_TIMEOUT", "How long one call to the systemd manager may take: a time span "
                          "such as 20s or 1min, a bare number being seconds (default "
                          f"{DEFAULT_CALL_TIMEOUT:g}s)."),
    ("ORCH_HOST", "Run every session command on this host, as --host does: [USER@]HOST[:PORT] "
                  "or a [hosts.NAME] (empty: this machine). `orch box` stays here."),
    ("ORCH_HOST_TIMEOUT", "How long a host may take to let orch in over SSH (a time span; "
                          "a bare number is seconds; a command then has 5s more to answer), "
                          "for --host, ps --all-hosts and spawn --host auto (default "
                          f"{DEFAULT_HOST_TIMEOUT:g}s)."),
    ("ORCH_SSH_CONFIG", "The ssh_config(5) file orch's ssh reads (ssh -F) instead of "
                        "~/.ssh/config."),
    ("ORCH_SSH_PERSIST", "How long a shared SSH connection to a host outlives the last "
                         f"command (ControlPersist; a time span, default {DEFAULT_PERSIST}); "
                         "0 or no: every command connects afresh; infinity: until ssh -O "
                         "exit."),
    ("ORCH_DEBUG", "When set and not empty, print the trace of a failure, as --debug does."),
    ("ORCH_BOX_DIR", "Where the host keeps the running box's record (default "
                     "/run/orch-box)."),
    ("ORCH_CRASH_AT", "For orch's own fault tests only: POINT[:N] kills orch with SIGKILL "
                      "the Nth time it passes that crash point. Never set it otherwise."),
    ("ORCH_SESSION_ID", "Set by orch in each session: its id. Inside a session `self` names "
                        "it, and sessions spawned from it record it as their parent."),
    ("ORCH_SCOPE", "Set by orch in each session: its scope (user or system), which orch run "
                   "inside the session uses unless --user or --system is given."),
    ("ORCH_UNIT", "Set by orch in each session: the name of its systemd unit."),
    ("ORCH_IN_BOX", "Set by orch when it forwards a command into the box, so that the orch "
                    "inside does not forward it again."),
    ("ORCH_BOX_ROOT", "Set by `orch box up --root` for the box's first process: the OS tree "
                      "it boots."),
    ("ORCH_BOX_CGROUP", "For `orch box up`: boot the box in this cgroup (a relative path, "
                        "created under the caller's own in every hierarchy), so that several "
                        "boxes at once each manage a tree of their own; `orch box down` "
                        "removes it."),
    ("ORCH_BOX_BINDS", "For `orch box up`: SRC:DST,... host paths the box binds over its "
                       "own DST before systemd starts (a private journal directory, machine "
                       "ID or state directory)."),
    ("ORCH_BOX_UNITS", "For `orch box up`: a directory whose unit files and .wants/ links "
                       "the box adds to its runtime units (/run/systemd/system)."),
    ("XDG_STATE_HOME", "The user scope's state file is under $XDG_STATE_HOME/orch "
                       "(default ~/.local/state/orch)."),
    ("XDG_CONFIG_HOME", "The user scope's configuration file is under $XDG_CONFIG_HOME/orch, "
                        "and `orch units install --user` writes to "
                        "$XDG_CONFIG_HOME/systemd/user (default ~/.config)."),
    ("XDG_RUNTIME_DIR", "The user manager's runtime directory (default /run/user/UID), where "
                        "orch keeps secrets and dependency markers of user sessions."),
    ("SHELL", "The shell `orch box shell` opens (default /bin/bash)."),
    ("SYSTEMD_PAGER", "The pager `orch logs` pipes its output into on a terminal, before "
                      "$PAGER and less; empty or cat: none (as journalctl(1))."),
    ("PAGER", "The pager, when $SYSTEMD_PAGER is not set."),
    ("SYSTEMD_LESS", "less's options for `orch logs` (default FRSXMK; as in systemd's tools, "
     "$LESS has no effect)."),
    ("_ORCH_COMPLETE", "Set by the shell completion scripts to ask orch for completions; "
                       "orch then prints them and does nothing else."),
    ("COMP_WORDS", "With COMP_CWORD, the words bash's completion script hands orch."),
    ("COMP_CWORD", "Which of COMP_WORDS is being completed."),
    ("_TYPER_COMPLETE_ARGS", "The command line zsh's and fish's completion scripts hand "
                             "orch."),
    ("_TYPER_COMPLETE_FISH_ACTION", "What fish's completion script asks orch: the "
                                    "completions (get-args) or whether there are any "
                                    "(is-args)."),
    ("COLUMNS", "The width `orch ps` fits its table to on a terminal, instead of the "
                "terminal's own (as systemctl); piped, the table is always whole."),
    ("TERM", "In a session spawned with --tty: the terminal type its program is told, "
             "given with --env (xterm-256color if none)."),
    ("NO_COLOR", "Set (to anything but the empty string): `orch logs` shows a transcript "
                 "without colour, even on a terminal (no-color.org)."),
)

# Default places; a test checks them against orch.scope, orch.config, orch.box and others.
FILES = (
    ("~/.local/state/orch/", "The user scope's state: sessions.json (a snapshot of the "
                             "session records), sessions.log (the changes since), "
                             "sessions.lock (taken while they change) and worktrees/ (the git "
                             "worktrees of --worktree sessions). $XDG_STATE_HOME or "
                             "$ORCH_STATE_DIR move it."),
    ("/var/lib/orch/", "The system scope's state, laid out likewise."),
    ("~/.config/orch/config.toml", "The user scope's configuration: [spawn] defaults, "
                                   "[hooks], [providers.NAME], [profiles.NAME], "
                                   "[hosts.NAME] and [queues.NAME]."),
    ("/etc/orch/config.toml", "The system scope's configuration."),
    ("/run/orch/, /run/user/UID/orch/", "Runtime files of the system and user scopes: "
                                        "secrets/ (secrets waiting for the manager to start "
                                        "a session, mode 600) and after/ (the markers that "
                                        "start sessions waiting with --after)."),
    ("/etc/systemd/system/, ~/.config/systemd/user/", "Where `orch units install` writes "
                                                      "orch-recover.service, orch-reap.service "
                                                      "and orch-reap.timer."),
    ("/run/orch-box/", "The running box's record (box.json) and its console log."),
)

SEE_ALSO = (("systemd.exec", 5), ("systemd.resource-control", 5), ("journalctl", 1),
            ("systemctl", 1))

# A hyphen that starts a word (an option, a negative number) and every hyphen after it in
# that word; a hyphen inside a word ("long-running") stays a hyphen.
_MINUS = re.compile(r"(?<![\w-])-[\w-]*")
# A word that reads as code (an option, a path, a variable, a file or key name): never
# hyphenated.
_CODE_WORD = re.compile(r"(?<!\S)(?=[(\[`'\"]*-|\S*(?:[/_$]|\w[.-]\w))")
_WORD = re.compile(r"(?<!\S)(?=\S)")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _char(match: re.Match[str]) -> str:
    return f"\\[u{ord(match[0]):04X}]"


def escape(text: str, *, literal: bool = False) -> str:
    """TEXT as roff text lines: backslashes as \\e, minus signs as \\-, non-ASCII as
    \\[uXXXX] (the page stays ASCII, whatever the formatter's input encoding), words that
    read as code marked \\% (not hyphenated), and a zero-width \\& before a line's leading
    '.' or "'", which roff would read as a request. LITERAL text (flags, command names)
    has every hyphen made a minus sign and no word hyphenated, so that it can be copied
    from the rendered page."""
    text = text.replace("\\", "\\e")
    if literal:
        text = _WORD.sub("\\%", text.replace("-", "\\-"))
    else:
        text = _MINUS.sub(lambda m: m[0].replace("-", "\\-"), _CODE_WORD.sub("\\%", text))
    text = _NON_ASCII.sub(_char, text)
    return re.sub(r"^(?=[.'])", "\\&", text, flags=re.MULTILINE)


def _quoted(argument: str) -> str:
    """ARGUMENT as one argument of a request (.TH, .SS): never a control line itself."""
    text = argument.replace("\\", "\\e").replace("-", "\\-").replace('"', "\\(dq")
    return '"' + _NON_ASCII.sub(_char, text) + '"'


def _paragraphs(help_text: str) -> list[str]:
    """Click's help text as roff paragraphs, cut where click cuts it (at \\f): filled as
    click rewraps it, except blocks marked \\b, which click prints as they are."""
    text = inspect.cleandoc(help_text).partition("\f")[0].strip()
    paragraphs = []
    for block in re.split(r"\n\s*\n", text) if text else []:
        lines = block.splitlines()
        if lines[0].strip() == "\b":
            paragraphs.append(".nf\n" + escape("\n".join(lines[1:])) + "\n.fi")
        else:
            paragraphs.append(escape(" ".join(block.split())))
    return paragraphs


def _help(command: click.Command) -> str:
    """The command's help, with the deprecation note click adds."""
    text = command.help or ""
    if command.deprecated:
        note = (f"(DEPRECATED: {command.deprecated})" if isinstance(command.deprecated, str)
                else "(DEPRECATED)")
        text = f"{text}\n\n{note}"
    return text


def _term(name: str) -> str:
    """The name column of a help record ("-n, --lines <int>"): flags bold, the rest
    (metavars, argument names) italic, separators plain."""
    words = []
    for word in name.split(" "):
        core = word.rstrip(",;")
        sep = word[len(core):]
        if core in ("", "/", "|"):
            words.append(word)
        elif core.startswith("-"):
            words.append(f"\\fB{escape(core, literal=True)}\\fR{sep}")
        else:
            words.append(f"\\fI{escape(core, literal=True)}\\fR{sep}")
    return " ".join(words)


def _entry(term: str, help_text: str) -> list[str]:
    """A tagged paragraph: TERM, then its help indented below it."""
    lines = [".TP", term]
    for number, paragraph in enumerate(_paragraphs(help_text)):
        if number:
            lines.append(".IP")
        lines.append(paragraph)
    return lines


def _usage(ctx: click.Context) -> str:
    pieces = " ".join(ctx.command.collect_usage_pieces(ctx))
    return f"\\fB{escape(ctx.command_path, literal=True)}\\fR {escape(pieces, literal=True)}"


def _params(ctx: click.Context, kind: str, *, with_help_option: bool) -> list[str]:
    """The command's arguments or options (KIND), as its --help lists them."""
    help_option = ctx.command.get_help_option(ctx)
    lines = []
    for param in ctx.command.get_params(ctx):
        record = param.get_help_record(ctx)  # None for a hidden one
        if (record is None or param.param_type_name != kind
                or (param is help_option and not with_help_option)):
            continue
        lines += _entry(_term(record[0]), record[1])
    return lines


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """The context click would give COMMAND (with its context settings), not invoked."""
    return command.context_class(command, parent=parent, info_name=name,
                                 **command.context_settings)


def commands(ctx: click.Context) -> Iterator[click.Context]:
    """The contexts of every visible command under CTX's group, depth first, in the order
    --help lists them."""
    group = ctx.command
    if not isinstance(group, TyperGroup):
        return
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = _context(command, name, ctx)
        yield sub
        yield from commands(sub)


def root_context(cli: typer.Typer = app) -> click.Context:
    """The context of the command the typer app CLI makes (`orch` itself)."""
    return _context(typer.main.get_command(cli), "orch", None)


def _build_date(today: date | None) -> date:
    # SOURCE_DATE_EPOCH keeps package builds reproducible (reproducible-builds.org).
    if today is not None:
        return today
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        return datetime.fromtimestamp(int(epoch), UTC).date()
    return date.today()


def _section(title: str) -> str:
    return f".SH {_quoted(title)}" if " " in title else f".SH {title}"


def _then(paragraphs: list[str]) -> list[str]:
    """PARAGRAPHS after a heading: separated by .PP, with none before the first."""
    return [line for n, p in enumerate(paragraphs) for line in ([".PP", p] if n else [p])]


def _command_sections(root: click.Context) -> list[str]:
    lines = []
    for ctx in commands(root):
        lines += [f".SS {_quoted(ctx.command_path)}", _usage(ctx)]
        for paragraph in _paragraphs(_help(ctx.command)):
            lines += [".PP", paragraph]
        for kind, title in (("argument", "Arguments:"), ("option", "Options:")):
            entries = _params(ctx, kind, with_help_option=False)
            lines += [".PP", title, *entries] if entries else []
    return lines


def render(today: date | None = None, *, cli: typer.Typer = app) -> str:
    """The orch(1) man page in roff, dated TODAY (default: $SOURCE_DATE_EPOCH, else
    today), for the commands of CLI (orch's own unless a test gives another)."""
    root = root_context(cli)
    summary = " ".join(inspect.cleandoc(root.command.help or "").split()).rstrip(".")
    return "\n".join([
        '.\\" Generated by `python -m orch.manpage` from the orch command; do not edit.',
        f".TH ORCH 1 {_build_date(today).isoformat()} {_quoted('orch ' + __version__)} "
        '"User Commands"',
        _section("NAME"),
        f"orch \\- {escape(summary[:1].lower() + summary[1:])}",
        _section("SYNOPSIS"),
        _usage(root),
        _section("DESCRIPTION"),
        *_then([*_paragraphs(_help(root.command)),
                escape("Each command is described under COMMANDS below; "
                       "`orch COMMAND --help` prints the same.")]),
        _section("OPTIONS"),
        escape("Options of orch itself, given before the command. Every command also takes "
               "--help, which prints its usage, arguments and options."),
        *_params(root, "option", with_help_option=True),
        _section("COMMANDS"),
        *_command_sections(root),
        _section("EXIT STATUS"),
        *[line for code, text in EXIT_STATUS for line in _entry(f"\\fB{code}\\fR", text)],
        _section("ENVIRONMENT"),
        *[line for name, text in ENVIRONMENT
          for line in _entry(f"\\fB{escape(name, literal=True)}\\fR", text)],
        _section("FILES"),
        *[line for path, text in FILES
          for line in _entry(f"\\fI{escape(path, literal=True)}\\fR", text)],
        _section("SEE ALSO"),
        ",\n".join(f"\\fB{escape(page, literal=True)}\\fR({number})"
                   for page, number in SEE_ALSO),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m orch.manpage [OUTPUT]`: write the page to OUTPUT, or to stdout."""
    parser = argparse.ArgumentParser(prog="python -m orch.manpage",
                                     description="Write the orch(1) man page.")
    parser.add_argument("output", nargs="?", help="the file to write (default: stdout)")
    args = parser.parse_args(argv)
    page = render()
    if args.output:
        Path(args.output).write_text(page, encoding="ascii")
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
