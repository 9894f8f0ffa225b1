"""Shell completion for `orch`: the scripts bash, zsh and fish source, and the answers
to the requests those scripts make.

A script runs `orch` with _ORCH_COMPLETE=complete_SHELL (and the words typed so far) in
the environment; `main()` hands that request to `answer()` before anything else, so a
completion never forwards into a box nor contacts systemd. Where the word being
completed is a session reference (what show, logs, wait, stop, kill, result and resume
take), it is answered here, from the records of the scope the command line names, read
without the lock, and without loading typer: typer's import alone costs more than the
50 ms a completion may take. Everything else (commands, options and their values) is
answered by typer's completion machinery from the command tree in orch.app.

`python -m orch.completion SHELL` prints the script (the Debian package build installs
its output).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum

from orch.cli_table import COMMANDS, COMPLETION, PARAMS
from orch.fastcli import ROOT_FLAGS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from orch.session import Record

    # [kind, name, opts, secondary_opts, takes_value, multiple, hidden, help, values]
    _Param = list[Any]

PROG_NAME = "orch"
COMPLETE_VAR = "_ORCH_COMPLETE"
# The parameters of the command tree that take session references: app.RefArg's `ref`
# and wait's `refs` (tests/unit/test_completion.py holds this to the tree).
REF_PARAMETERS = frozenset({"ref", "refs"})
# The id as `orch ps` shows it; the resolver takes any unique prefix of 4 or more.
SHOWN_ID = 8
ROOT_OPTIONS_WITH_VALUE = ("--host", "--label")  # the root callback's (orch.app._root)
HOST_ENV = "ORCH_HOST"  # orch.hosts.HOST_ENV, not imported: its regexes cost time here


class Shell(StrEnum):
    """The shells orch ships completion for."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def script(shell: str) -> str:
    """The script SHELL sources to complete `orch` (ValueError for another shell)."""
    try:
        name = Shell(shell)
    except ValueError:
        raise ValueError(f"no completion for {shell!r}; shells: "
                         f"{', '.join(Shell)}") from None
    _load_typer()
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


def _load_typer() -> None:
    from orch import vendor

    vendor.activate()  # a package's vendored typer must win, as in orch.cli


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
    node: dict[str, Any] = COMMANDS
    words = iter(args)
    for word in words:
        if word.startswith(ROOT_OPTIONS_WITH_VALUE):
            return None
        if word in ROOT_FLAGS:
            continue
        if word.startswith("-"):
            return None  # typer's to read (and refuse)
        node = node.get(word, {})
        if not node:
            return None
        if "function" in node:
            break
    else:
        return None
    options: dict[str, list[Any]] = node["options"]
    given: set[str] = set()
    positional = 0
    only_arguments = False
    for word in words:
        if only_arguments or word == "-" or not word.startswith("-"):
            positional += 1
        elif word == "--":
            only_arguments = True
        elif word.startswith(ROOT_OPTIONS_WITH_VALUE):
            return None  # --host is taken after the command's name too
        else:
            name, equals, _ = word.partition("=")
            given.add(options.get(name, [name])[0])
            takes_value = name in options and options[name][1] != "flag" and not equals
            if takes_value and next(words, None) is None:
                return None  # the word being completed is this option's value
    for dest, _kind, variadic, _required in node["arguments"]:
        if positional == 0 or variadic:
            return (("user" in given, "system" in given) if dest in REF_PARAMETERS
                    else None)
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


def _zsh_escape(text: str) -> str:
    """TEXT inside typer's zsh `_arguments '*: :(("value":"help"))'` (as typer escapes it)."""
    return (text.replace('"', '""').replace("'", "''").replace("$", "\\$")
            .replace("`", "\\`").replace(":", r"\\:"))


def reply(request: Request, items: list[tuple[str, str]]) -> tuple[str, int]:
    """What `orch` prints for ITEMS (value, description) and its exit status, in the
    form REQUEST's shell reads (typer's, so both answerers agree)."""
    if request.shell is Shell.BASH:
        return "\n".join(value for value, _ in items), 0
    if request.shell is Shell.ZSH:
        if not items:
            return "_files", 0
        body = "\n".join(f'"{_zsh_escape(value)}":"{_zsh_escape(about)}"'
                         for value, about in items)
        return f"_arguments '*: :(({body}))'", 0
    if request.action == "is-args":
        return "", 0 if items else 1
    return "\n".join(f"{value}\t{about}" for value, about in items), 0


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


# --- what typer answers, from its tree as orch.cli_table holds it ------------------------
# This mirrors click's shell_completion (_resolve_context, _resolve_incomplete, the
# parser it runs in resilient mode, Command/Group.shell_complete) and typer's
# _completion_classes formats; tests/unit/test_completion_fast.py holds it to typer's
# answers over generated command lines.



class _Declined(Exception):
    """A case left to typer (a custom completer, a help text only rich can render)."""


class _Usage(Exception):
    """What click's parser raises as a UsageError (resilient parsing stops there)."""


def parameters(node: dict[str, Any]) -> list[_Param]:
    """NODE's parameters, in click's order (the table names them by index in PARAMS)."""
    return [PARAMS[i] for i in node["params"]]


def _parse(node: dict[str, Any], args: list[str]) -> tuple[set[str], set[str], list[str]]:
    """ARGS as click's parser reads them in resilient mode for NODE: the names of the
    parameters given on the command line, those of the arguments that got a value, and
    the words left over (a group's command and what follows it)."""
    params = parameters(node)
    options = {opt: p for p in params if p[0] == "option" for opt in p[2] + p[3]}
    arguments = [p for p in params if p[0] == "argument"]
    given: set[str] = set()
    rargs, largs = list(args), []

    def value(option: str) -> None:
        if not rargs:
            raise _Usage(option)  # "Option requires an argument"
        rargs.pop(0)

    def shorts(arg: str) -> None:
        unknown = []
        for i, char in enumerate(arg[1:], start=2):
            param = options.get("-" + char)
            if param is None:
                if node["ignore_unknown"]:
                    unknown.append(char)
                    continue
                raise _Usage(arg)
            given.add(param[1])
            if param[4]:
                if i < len(arg):
                    rargs.insert(0, arg[i:])
                value(char)
                if i < len(arg):
                    break
        if unknown:
            largs.append("-" + "".join(unknown))

    try:
        while rargs:
            arg = rargs.pop(0)
            if arg == "--":
                break
            if arg[:1] == "-" and len(arg) > 1:
                name, equals, inline = arg.partition("=")
                param = options.get(name)
                if param is not None and (len(name) > 2 or name[1:2] == "-"):
                    if param[4]:
                        if equals:
                            rargs.insert(0, inline)
                        value(name)
                    elif equals:
                        raise _Usage(name)  # "does not take a value"
                    given.add(param[1])
                elif arg[:2] != "--":
                    shorts(arg)
                elif node["ignore_unknown"]:
                    largs.append(arg)
                else:
                    raise _Usage(arg)
            elif node["interspersed"]:
                largs.append(arg)
            else:
                rargs.insert(0, arg)
                break
    except _Usage:
        return given, set(), largs
    rest = largs + rargs
    filled = set()
    # click's _unpack_args: those before a variadic argument from the front, those after
    # it from the back, the variadic one what is between.
    variadic = next((i for i, p in enumerate(arguments) if p[5]), len(arguments))
    for param in arguments[:variadic]:
        if rest:
            rest.pop(0)
            filled.add(param[1])
    for param in reversed(arguments[variadic + 1:]):
        if rest:
            rest.pop()
            filled.add(param[1])
    if variadic < len(arguments):
        rest = []
    return given, filled, rest


def _items(request: Request, args: list[str]) -> list[tuple[str, _Param | None]]:
    """The completions click finds for REQUEST's words: (value, the parameter or command
    node whose help goes with it) pairs."""
    node: dict[str, Any] = COMPLETION[""]
    path = ""
    rest = list(args)
    while True:
        given, filled, rest = _parse(node, rest)
        if node["commands"] is None or not rest or rest[0] not in node["commands"]:
            break
        path = f"{path} {rest[0]}".strip()
        node, rest = COMPLETION[path], rest[1:]
    incomplete = request.incomplete
    args = list(args)
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete[:1] == "-":
        name, _, incomplete = incomplete.partition("=")
        args.append(name)
    params = parameters(node)
    target: _Param | None = None
    if "--" in args or incomplete[:1] != "-":
        last = args[-1] if args else ""
        target = next((p for p in params if p[0] == "option" and p[4] and last[:1] == "-"
                       and last in p[2]), None)
        if target is None:
            target = next((p for p in params if p[0] == "argument"
                           and (p[5] or p[1] not in filled)), None)
    if target is not None:
        values = target[8]
        if values == "custom":
            raise _Declined
        if values == "file":
            return [(incomplete, None)]
        return [(v, None) for v in values or () if v.startswith(incomplete)]
    found: list[tuple[str, Any]] = []
    for name in node["commands"] or ():
        sub: dict[str, Any] = COMPLETION[f"{path} {name}".strip()]
        if name.startswith(incomplete) and not sub["hidden"]:
            found.append((name, sub["about"]))
    if incomplete and not incomplete[0].isalnum():
        for param in params:
            if param[0] == "option" and not param[6] and (param[5] or param[1] not in given):
                found.extend((opt, param[7]) for opt in param[2] + param[3]
                             if opt.startswith(incomplete))
    return found


def _help_width() -> int | None:
    """The width rich wraps typer's help texts at (as typer's console finds it); None
    where this cannot tell as surely as rich would."""
    environ = os.environ
    if any(environ.get(name) for name in ("GITHUB_ACTIONS", "FORCE_COLOR", "PY_COLORS",
                                           "TTY_COMPATIBLE", "TTY_INTERACTIVE",
                                           "_TYPER_FORCE_DISABLE_TERMINAL", "JUPYTER_COLUMNS")):
        return None
    # typer's own width, then rich's (neither is a setting of orch's: not in the man page)
    fixed = next((environ[name] for name in ("TERMINAL_WIDTH", "COLUMNS")
                  if environ.get(name)), None)
    if fixed is not None:
        return int(fixed) if fixed.isascii() and fixed.isdigit() else None
    if sys.stdout.isatty():
        return None
    for descriptor in (0, 1, 2):
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except OSError:
            pass
    return 80


def _has_rich() -> bool:
    """Whether typer renders help texts with rich here (it does where rich imports)."""
    import importlib.util

    _load_typer()
    return importlib.util.find_spec("rich") is not None


def fast_reply(request: Request) -> tuple[str, int] | None:
    """What typer answers REQUEST (text without the final newline, exit status), found
    without loading typer; None where only typer can tell."""
    try:
        items = _items(request, request.args)
    except _Declined:
        return None
    if request.shell is Shell.BASH:
        return "\n".join(value for value, _ in items), 0
    if request.shell is Shell.FISH and request.action == "is-args":
        return "", 0 if items else 1
    about = [help_ for _, help_ in items if help_]
    width = _help_width() if about else 0
    rich = _has_rich() if about else False
    column = 1 if request.shell is Shell.ZSH else 2
    lines = []
    for value, help_ in items:
        text = help_ and (help_[column] if rich else
                          _zsh_escape(help_[0]) if column == 1 else
                          "".join(" " if c.isspace() else c for c in help_[0]))
        if rich and help_ and (text is None or width is None or len(text) > width):
            return None  # rich would wrap it, or render what only rich knows
        if request.shell is Shell.ZSH:
            lines.append(f'"{_zsh_escape(value)}":"{text}"' if text
                         else f'"{_zsh_escape(value)}"')
        else:
            lines.append(f"{value}\t{text}" if text else value)
    if request.shell is Shell.ZSH:
        return (f"_arguments '*: :(({chr(10).join(lines)}))'" if lines else "_files"), 0
    return ("\n".join(lines) if request.action == "get-args" else ""), 0


def _answer_with_typer() -> int:
    """The request in the environment, answered from typer's command tree."""
    _load_typer()
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
