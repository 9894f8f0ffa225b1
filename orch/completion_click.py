"""What typer's completion answers, found without loading typer: click's shell_completion
(_resolve_context, _resolve_incomplete, the parser it runs in resilient mode,
Command/Group.shell_complete) and typer's _completion_classes formats, mirrored over the
one definition of the command line (orch.commandline).
tests/unit/test_completion_fast.py holds it to typer's answers over generated command
lines, and tests/unit/test_fastcli.py its view of the tree to the tree typer builds.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum

from orch import commandline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    # [kind, name, opts, secondary_opts, takes_value, multiple, hidden, help, values]
    _Param = list[Any]

    class _Request(Protocol):
        shell: Shell
        args: list[str]
        incomplete: str
        action: str


class Shell(StrEnum):
    """The shells orch ships completion for."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def load_typer() -> None:
    from orch import vendor

    vendor.activate()  # a package's vendored typer must win, as in orch.cli


def zsh_escape(text: str) -> str:
    """TEXT inside typer's zsh `_arguments '*: :(("value":"help"))'` (as typer escapes it)."""
    return (text.replace('"', '""').replace("'", "''").replace("$", "\\$")
            .replace("`", "\\`").replace(":", r"\\:"))


class _Usage(Exception):
    """What click's parser raises as a UsageError (resilient parsing stops there)."""


_HELP_OPTION: _Param = ["option", "help", ["--help"], [], False, False, False,
                       "Show this message and exit.", None]


def _param(param: commandline.Option | commandline.Argument) -> _Param:
    """PARAM as click's completion sees it: [kind, name, opts, secondary_opts,
    takes_value, multiple, hidden, help, values (None, the choices, or the name of where
    they are read when asked: orch.completion.values)]."""
    values = commandline.choices(param.kind)
    if isinstance(param, commandline.Argument):
        return ["argument", param.dest, [], [], True, param.variadic, False, None,
                values or param.completes]
    return ["option", param.dest, list(param.flags), list(param.negative), param.kind != "flag",
            param.multiple, param.hidden, param.help or None,
            values or list(param.completions) or None]


_NODES: dict[str, dict[str, Any]] = {}


def node_at(path: str) -> dict[str, Any]:
    """The command or group at PATH ('' is the root; 'config get'), as click's completion
    reads it: its parameters in click's order, help, and a group's commands."""
    found = _NODES.get(path)
    if found is not None:
        return found
    item: commandline.Command | commandline.Group | None = None
    params: list[commandline.Option | commandline.Argument]
    children = commandline.tree()
    for word in path.split():
        item = children[word]
        children = item.commands if isinstance(item, commandline.Group) else {}
    if item is None:
        params, help_text = list(commandline.ROOT), commandline.ROOT_HELP
    elif isinstance(item, commandline.Group):
        params, help_text = [], item.help
    else:
        params, help_text = item.params, item.help
    interspersed = isinstance(item, commandline.Command) and item.interspersed
    found = {"params": [*map(_param, params), _HELP_OPTION],
             "help": help_text, "interspersed": interspersed,
             "commands": None if isinstance(item, commandline.Command) else list(children),
             "hidden": {name for name, child in children.items()  # not offered, as click's
                        if isinstance(child, commandline.Command) and child.hidden}}
    _NODES[path] = found
    return found


def parameters(node: dict[str, Any]) -> list[_Param]:
    """NODE's parameters, in click's order."""
    return list(node["params"])


def about(node: dict[str, Any], limit: int = 45) -> str:
    """A group or command's help as click shortens it for a list of commands
    (click.utils.make_default_short_help, which loading click would cost more than the
    rest of a completion): its first sentence if it fits LIMIT, else whole words and
    "..."."""
    words = node["help"].split("\n\n", 1)[0].split()
    length = 0
    for i, word in enumerate(words):
        length += len(word) + (i > 0)
        if length > limit:
            break
        if word[-1] == ".":
            return " ".join(words[:i + 1])
        if length == limit and i != len(words) - 1:
            break
    else:
        return " ".join(words)
    length += len("...")
    while i > 0:
        length -= len(words[i]) + (i > 0)
        if length <= limit:
            break
        i -= 1
    return " ".join(words[:i]) + "..."


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
        for i, char in enumerate(arg[1:], start=2):
            param = options.get("-" + char)
            if param is None:
                raise _Usage(arg)
            given.add(param[1])
            if param[4]:
                if i < len(arg):
                    rargs.insert(0, arg[i:])
                value(char)
                if i < len(arg):
                    break

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


def _items(request: _Request, args: list[str]) -> list[tuple[str, str | None]]:
    """The completions click finds for REQUEST's words: (value, help) pairs."""
    node = node_at("")
    path = ""
    rest = list(args)
    while True:
        given, filled, rest = _parse(node, rest)
        if node["commands"] is None or not rest or rest[0] not in node["commands"]:
            break
        path = f"{path} {rest[0]}".strip()
        node, rest = node_at(path), rest[1:]
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
    if target is not None and isinstance(target[8], str):  # read now, as typer's would
        from orch.completion import values

        scope = {name: name in given for name in ("user", "system")}
        return [(v, None) for v in values(target[8], scope, incomplete)]
    if target is not None:
        return [(v, None) for v in target[8] or () if v.startswith(incomplete)]
    found: list[tuple[str, str | None]] = []
    for name in node["commands"] or ():
        sub = node_at(f"{path} {name}".strip())
        if name.startswith(incomplete) and name not in node["hidden"]:
            found.append((name, about(sub)))
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


def rendered(text: str) -> str | None:
    """TEXT as typer's rich renders a help text in a completion: its markup tags
    (`[hosts.NAME]`: a lowercase word in brackets) taken out, the rest as it is; None
    where rich might do more (an escaped bracket, a closing tag, an emoji code, anything
    but printable ASCII). tests/unit/test_fastcli.py holds it to rich over every help."""
    import re

    if not (text.isascii() and text.isprintable()) or "\\[" in text:
        return None
    tags = re.findall(r"\[([a-z#/@][^[]*?)]", text)
    if any(tag.startswith("/") for tag in tags) or re.search(r":\S*?:", text):
        return None
    return re.sub(r"\[[a-z#/@][^[]*?]", "", text) if tags else text


def _has_rich() -> bool:
    """Whether typer renders help texts with rich here (it does where rich imports)."""
    import importlib.util

    load_typer()
    return importlib.util.find_spec("rich") is not None


def fast_reply(request: _Request) -> tuple[str, int] | None:
    """What typer answers REQUEST (text without the final newline, exit status), found
    without loading typer; None where only typer can tell."""
    items = _items(request, request.args)
    if request.shell is Shell.BASH:
        return "\n".join(value for value, _ in items), 0
    if request.shell is Shell.FISH and request.action == "is-args":
        return "", 0 if items else 1
    helps = [help_ for _, help_ in items if help_]
    width = _help_width() if helps else 0
    rich = _has_rich() if helps else False
    column = 1 if request.shell is Shell.ZSH else 2  # zsh escapes its descriptions
    lines = []
    for value, help_ in items:
        text = help_ and (zsh_escape(help_) if column == 1 else
                          "".join(" " if c.isspace() else c for c in help_))
        if rich and text:
            text = rendered(text)
            if text is None or width is None or len(text) > width:
                return None  # rich would wrap it, or render what only rich knows
        if request.shell is Shell.ZSH:
            lines.append(f'"{zsh_escape(value)}":"{text}"' if text
                         else f'"{zsh_escape(value)}"')
        else:
            lines.append(f"{value}\t{text}" if text else value)
    if request.shell is Shell.ZSH:
        return (f"_arguments '*: :(({chr(10).join(lines)}))'" if lines else "_files"), 0
    return ("\n".join(lines) if request.action == "get-args" else ""), 0


