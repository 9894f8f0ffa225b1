"""Shell completion for `orch`: the scripts bash, zsh and fish source, and the answers
to the requests those scripts make.

A script runs `orch` with _ORCH_COMPLETE=complete_SHELL (and the words typed so far) in
the environment; `main()` hands that request to `answer()` before anything else, so a
completion never forwards into a box nor contacts systemd. Where the word being
completed is a session reference (what show, logs, wait, stop, kill, result and resume
take), it is answered here, from the records of the scope the command line names, read
without the lock, and without loading typer: typer's import alone costs more than the
50 ms a completion may take. Everything else (commands, options and their values) is
answered as typer's completion machinery answers, from the one definition of the command
line (orch.commandline), or by typer itself where only it can tell.

`python -m orch.completion SHELL` prints the script (the Debian package build installs
its output).
"""

from __future__ import annotations

import os
import sys

from orch import commandline
from orch.completion_click import Shell, fast_reply, load_typer, zsh_escape
from orch.hostcli import HOST_ENV

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from orch.session import Record

PROG_NAME = "orch"
COMPLETE_VAR = "_ORCH_COMPLETE"
# The parameters of the command tree that take session references: app.RefArg's `ref`
# and wait's `refs` (tests/unit/test_completion.py holds this to the tree).
REF_PARAMETERS = frozenset({"ref", "refs"})
# The options that take one too: spawn's --after.
REF_OPTIONS = frozenset({"--after"})
# The id as `orch ps` shows it; the resolver takes any unique prefix of 4 or more.
SHOWN_ID = 8


def script(shell: str) -> str:
    """The script SHELL sources to complete `orch` (ValueError for another shell)."""
    try:
        name = Shell(shell)
    except ValueError:
        raise ValueError(f"no completion for {shell!r}; shells: "
                         f"{', '.join(Shell)}") from None
    load_typer()
    from typer._completion_shared import get_completion_script

    text = get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR,
                                 shell=name.value) + "\n"
    if name is Shell.ZSH:
        # Installed in an fpath directory, this file is autoloaded as the body of
        # `_orch` on the first Tab; typer's script only defines its function there, so
        # that first Tab would complete nothing. Answer it too (cobra's idiom).
        text += f'\nif [ "$funcstack[1]" = "_{PROG_NAME}" ]; then\n' \
                f'  _{PROG_NAME}_completion "$@"\nfi\n'
    return text


class Request:
    """A completion request as typer's shell classes read it from the environment: the
    words before the one being completed (without the program's name), that word, and
    for fish what it asks (get-args: the completions; is-args: whether there are any)."""

    __slots__ = ("action", "args", "incomplete", "shell")

    def __init__(self, shell: Shell, args: list[str], incomplete: str,
                 action: str = "") -> None:
        self.shell, self.args, self.incomplete, self.action = shell, args, incomplete, action

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Request | None:
        """The request in ENVIRON; None if it is not one of bash, zsh or fish's."""
        kind = environ.get(COMPLETE_VAR, "")
        if not kind.startswith("complete_"):
            return None  # e.g. source_bash: typer's to answer
        try:
            shell = Shell(kind.removeprefix("complete_"))
        except ValueError:
            return None
        if shell is Shell.BASH:
            try:
                words, cword = split(environ["COMP_WORDS"]), int(environ["COMP_CWORD"])
            except (KeyError, ValueError):
                return None
            return cls(shell, words[1:cword], words[cword] if cword < len(words) else "")
        line = environ.get("_TYPER_COMPLETE_ARGS", "")
        words = split(line)[1:]
        incomplete = words.pop() if words and not line.endswith(" ") else ""
        return cls(shell, words, incomplete, environ.get("_TYPER_COMPLETE_FISH_ACTION", ""))


def split(line: str) -> list[str]:
    """LINE's words as click's split_arg_string reads them (the shell's quoting; an
    unterminated quote takes the rest of the line)."""
    import shlex

    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    try:
        words.extend(lexer)
    except ValueError:
        words.append(lexer.token)
    return words


def session_scope(args: list[str], incomplete: str) -> tuple[bool, bool] | None:
    """(user, system) as given on the command line ARGS if the word after them,
    INCOMPLETE, is a session reference of a command that runs on this machine; None if
    it is anything else (a command, an option or its value, another argument) or the
    command goes to another host (--host, --label, ORCH_HOST): typer answers those."""
    if incomplete.startswith("-") or os.environ.get(HOST_ENV, "") not in ("", "local"):
        return None
    from orch.errors import UsageError
    from orch.fastcli import scan

    try:
        found = scan(args)
    except UsageError:
        return None  # the word being completed is --host's value
    if found.command is None or found.host is not None or found.label is not None:
        return None
    if found.pending is not None:  # the word is that option's value
        return (found.given("user"), found.given("system")) \
            if found.pending in REF_OPTIONS else None
    positional = len(found.arguments)
    for param in found.command.params:
        if not isinstance(param, commandline.Argument):
            continue
        if positional == 0 or param.variadic:
            return ((found.given("user"), found.given("system"))
                    if param.dest in REF_PARAMETERS else None)
        positional -= 1
    return None


def candidates(records: Iterable[Record], incomplete: str) -> list[tuple[str, str]]:
    """The session references that complete INCOMPLETE, newest session first, each with
    a description for the shells that show one. Every session's id as `orch ps` shows it
    (its first 8 characters; the whole id where two share those, or once more than 8 are
    typed), and the name of every session that is the only one so named (the resolver
    refuses a shared name)."""
    newest = sorted(records, key=lambda r: (r.created_at, r.id), reverse=True)
    names: dict[str, int] = {}
    shorts: dict[str, int] = {}
    for record in newest:
        names[record.name] = names.get(record.name, 0) + 1
        shorts[record.id[:SHOWN_ID]] = shorts.get(record.id[:SHOWN_ID], 0) + 1
    found: dict[str, str] = {}
    for record in newest:
        short = record.id[:SHOWN_ID]
        ident = short if shorts[short] == 1 and len(incomplete) <= SHOWN_ID else record.id
        if ident.startswith(incomplete):
            found.setdefault(ident, record.name)
        if names[record.name] == 1 and record.name.startswith(incomplete):
            found.setdefault(record.name, short)
    return list(found.items())


def read_records(user: bool, system: bool) -> list[Record]:
    """The records of the scope --user/--system choose, read as `orch ps` reads them but
    without ever taking the lock or making a file; none if they cannot be read (a
    completion never complains)."""
    from orch import state
    from orch.errors import OrchError
    from orch.scope import Scope

    try:
        found = state.StateStore(Scope.for_command(user, system).state_dir()).peek()
        if found is not None:
            return list(found.values())
    except OrchError:
        pass
    return []


def reply(request: Request, items: list[tuple[str, str]]) -> tuple[str, int]:
    """What `orch` prints for ITEMS (value, description) and its exit status, in the
    form REQUEST's shell reads (typer's, so both answerers agree)."""
    if request.shell is Shell.BASH:
        return "\n".join(value for value, _ in items), 0
    if request.shell is Shell.ZSH:
        if not items:
            return "_files", 0
        body = "\n".join(f'"{zsh_escape(value)}":"{zsh_escape(about)}"'
                         for value, about in items)
        return f"_arguments '*: :(({body}))'", 0
    if request.action == "is-args":
        return "", 0 if items else 1
    return "\n".join(f"{value}\t{about}" for value, about in items), 0


def values(source: str, params: Mapping[str, object], incomplete: str) -> list[str]:
    """What Tab offers for an argument that names SOURCE's values (commandline.Argument's
    `completes`): "keys", a config command's (every setting, and those the file sets);
    "schedules", the scope's schedules. PARAMS: what the command line gave so far (its
    --user, --system). None if they cannot be read: a completion never complains."""
    from orch.errors import OrchError
    from orch.scope import Scope

    found: list[str] = []
    try:
        scope = Scope.for_command(bool(params.get("user")), bool(params.get("system")))
        if source == "keys":
            from orch import config

            found = [key for key, _ in config.describe() if "NAME" not in key]
            found += [key for key, _ in config.items(scope)]
        elif source == "schedules":
            from orch import schedules

            found = schedules.names(scope)
    except (OrchError, OSError):
        pass
    return sorted({value for value in found if value.startswith(incomplete)})


def answer() -> int:
    """Print the completions the request in the environment asks for (no command runs);
    the exit status."""
    request = Request.from_environ(os.environ)
    if request is None:
        return _answer_with_typer()
    where = session_scope(request.args, request.incomplete)
    if where is not None:
        replied: tuple[str, int] | None = reply(
            request, candidates(read_records(*where), request.incomplete))
    else:
        replied = fast_reply(request)
    if replied is None:
        return _answer_with_typer()
    text, code = replied
    if not (request.shell is Shell.FISH and request.action == "is-args"):
        sys.stdout.write(text + "\n")  # as click.echo does, even for nothing
    return code


def _answer_with_typer() -> int:
    """The request in the environment, answered from typer's command tree."""
    load_typer()
    import typer.main
    from typer._completion_classes import completion_init
    from typer.completion import shell_complete

    from orch.app import app

    # The app is made with add_completion=False (no --install-completion option), and
    # only the code behind that option registers typer's shell classes; without them
    # every request fails with "Shell bash not supported".
    completion_init()
    return shell_complete(typer.main.get_command(app), {}, PROG_NAME, COMPLETE_VAR,
                          os.environ[COMPLETE_VAR])


def main(argv: list[str] | None = None) -> int:
    """`python -m orch.completion SHELL`: print SHELL's completion script."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m orch.completion",
                                     description="Print the completion script of a shell.")
    parser.add_argument("shell", choices=[str(s) for s in Shell])
    sys.stdout.write(script(parser.parse_args(argv).shell))
    return 0


if __name__ == "__main__":
    sys.exit(main())
