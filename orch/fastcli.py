"""Reading an `orch` command line from its one definition (orch.commandline), without
loading typer.

`scan` reads the words as click's parser does (long options with `=` or the next word,
short ones clustered or with their value attached, `--`, commands that stop taking
options at their first argument) and takes out --host and --label wherever they stand
before the arguments: orch.hostcli sends a line elsewhere by what it finds. `parse` then
converts the values, but only where it is sure typer would read them the same way, and
returns None otherwise (help, usage errors, clustered or attached short options, numbers
written any but the plain way): typer then parses the line, with its own messages.
tests/unit/test_fastcli.py holds all three readings to each other over generated lines.
"""

from __future__ import annotations

from orch import commandline
from orch.commandline import HOST_OPTIONS, ROOT_FLAGS, Argument, Command, Group, Option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _digits(text: str) -> bool:
    """TEXT is ASCII digits only (str.isdigit alone takes '²' and other digits)."""
    return text.isascii() and text.isdigit()


class Scan:
    """A command line as click's parser splits it: the command, the raw values of the
    options given (by dest, in order), the arguments, and --host/--label taken out.
    `plain` is False where the line uses a form the light parser leaves to typer."""

    __slots__ = ("args", "arguments", "command", "host", "label", "options", "pending",
                 "plain")

    def __init__(self) -> None:
        self.command: Command | None = None
        self.host: str | None = None
        self.label: str | None = None
        self.args: list[str] = []  # the line without --host and --label
        self.options: dict[str, list[Any]] = {}
        self.arguments: list[str] = []
        self.pending: str | None = None  # an option at the end, still without its value
        self.plain = True

    def given(self, dest: str) -> bool:
        """Whether the option DEST is on the line."""
        return dest in self.options


class Parsed:
    """A command line read: the command, and its values by dest."""

    __slots__ = ("command", "values")

    def __init__(self, command: Command | None, values: dict[str, Any]) -> None:
        self.command = command  # None: --version
        self.values = values

    def __repr__(self) -> str:
        name = self.command.function if self.command is not None else "version"
        return f"Parsed({name!r}, {self.values!r})"


def _host_option(scan: Scan, args: list[str], i: int) -> int | None:
    """If ARGS[I] is --host or --label, record its value and return the next index."""
    name, equals, inline = args[i].partition("=")
    if name not in HOST_OPTIONS:
        return None
    if equals:
        value, after = inline, i + 1
    elif i + 1 < len(args):
        value, after = args[i + 1], i + 2
    else:
        from orch.errors import UsageError

        raise UsageError(f"option '{name}' requires an argument")
    if not value:
        from orch.errors import UsageError

        raise UsageError(f"{name}: expected a value")
    held = scan.host if name == "--host" else scan.label
    if held is not None and held != value:  # which one was meant: not the last by chance
        from orch.errors import UsageError

        raise UsageError(f"{name} given twice ({held}, {value}): a command runs on one host")
    if name == "--host":
        scan.host = value
    else:
        scan.label = value
    return after


def scan(args: list[str]) -> Scan:
    """ARGS (without the program name) as click's parser splits them; UsageError only
    for a --host or --label without its value, or given twice with different ones."""
    found = Scan()
    node: dict[str, Command | Group] = commandline.tree()
    command: Command | None = None
    i = 0
    while i < len(args) and command is None:  # up to the command's name
        after = _host_option(found, args, i)
        if after is not None:
            i = after
            continue
        child = node.get(args[i])
        if child is None and args[i] not in ROOT_FLAGS:
            break
        if child is None and found.args and found.args[-1] not in ROOT_FLAGS:
            found.plain = False  # a root option after a group's name: typer refuses it
        found.args.append(args[i])
        i += 1
        if isinstance(child, Command):
            command = child
        elif isinstance(child, Group):
            node = child.commands
    found.command = command
    if command is None:
        found.plain = False
        found.args += args[i:]
        return found
    options = {flag: p for p in command.params if isinstance(p, Option) for flag in p.flags}
    negatives = {flag: p for p in command.params if isinstance(p, Option)
                 for flag in p.negative}
    rest = args[i:]
    k = 0
    while k < len(rest):
        token = rest[k]
        after = _host_option(found, rest, k)
        if after is not None:
            k = after
            continue
        k += 1
        found.args.append(token)
        if token == "--":
            found.arguments += rest[k:]
            found.args += rest[k:]
            break
        if token == "-" or not token.startswith("-"):
            found.arguments.append(token)
            if not command.interspersed:  # the program and its own options follow
                found.arguments += rest[k:]
                found.args += rest[k:]
                break
            continue
        if token.startswith("--"):
            name, equals, inline = token.partition("=")
            option = options.get(name)
            if option is None and name in negatives and not equals:
                found.options.setdefault(negatives[name].dest, []).append(False)
                continue
            if option is None:
                found.plain = False  # an unknown option (or --help): typer's to refuse
                continue
            if option.kind == "flag":
                if equals:
                    found.plain = False
                value: Any = True
            elif equals:
                value = inline
            else:
                value, k = _next_word(found, rest, k, name)
                if value is None:
                    continue
            found.options.setdefault(option.dest, []).append(value)
            continue
        k = _short_options(found, options, rest, token, k)
    return found


def _next_word(found: Scan, rest: list[str], k: int, option: str) -> tuple[str | None, int]:
    """The word at REST[K] as OPTION's value, whatever it looks like (as click takes
    it), and the index after it; None at the end of the line: OPTION is pending."""
    if k < len(rest):
        found.args.append(rest[k])
        return rest[k], k + 1
    found.plain = False
    found.pending = option
    return None, k


def _short_options(found: Scan, options: dict[str, Option], rest: list[str], token: str,
                   k: int) -> int:
    """A short option word: `-n 5`, or clustered `-fn 5`, or attached `-n5` (forms the
    light parser leaves to typer, but whose words it must still step over right)."""
    if len(token) > 2:
        found.plain = False
    for at, char in enumerate(token[1:], start=2):
        option = options.get("-" + char)
        if option is None:
            found.plain = False
            continue
        if option.kind == "flag":
            found.options.setdefault(option.dest, []).append(True)
            continue
        if at < len(token):
            value: str | None = token[at:]
        else:
            value, k = _next_word(found, rest, k, "-" + char)
            if value is None:
                return k
        found.options.setdefault(option.dest, []).append(value)
        return k
    return k


def _convert(kind: Any, raw: str) -> Any:
    """RAW as KIND, or None if typer might read it otherwise."""
    if kind == "str":
        return raw
    if kind == "path":  # as typer's Path reads it: '' is '.', 'a//b/' is 'a/b'
        from pathlib import Path

        return str(Path(raw))
    if kind == "int":
        return int(raw) if _digits(raw) else None
    if kind == "float":
        whole, dot, fraction = raw.partition(".")
        return float(raw) if _digits(whole) and (not dot or _digits(fraction)) else None
    values = commandline.choices(kind)
    return raw if values is not None and raw in values else None


def parse(args: list[str]) -> Parsed | None:
    """ARGS (without the program name) as a command and its values, or None to leave
    them to typer."""
    i = 0
    while i < len(args) and args[i] in ROOT_FLAGS:
        i += 1
    if i < len(args) and args[i] == "--version":
        return Parsed(None, {})
    found = scan(args)
    command = found.command
    if (command is None or not found.plain or found.host is not None
            or found.label is not None):
        return None
    values = _values(command, found)
    return None if values is None else Parsed(command, values)


def _values(command: Command, found: Scan) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    positional = list(found.arguments)
    for param in command.params:
        if isinstance(param, Argument):
            if param.variadic:
                taken, positional = positional, []
                if param.required and not taken:
                    return None
                converted = [_convert(param.kind, raw) for raw in taken]
                if any(v is None for v in converted):
                    return None
                values[param.dest] = converted if taken else param.default
            elif positional:
                value = _convert(param.kind, positional.pop(0))
                if value is None:
                    return None
                values[param.dest] = value
            elif param.required:
                return None
            else:
                values[param.dest] = param.default
            continue
        raws = found.options.get(param.dest)
        if raws is None:
            values[param.dest] = param.default
            continue
        if param.kind == "flag":
            values[param.dest] = raws[-1]  # True, or False from its --no- form
            continue
        if any(raw.startswith("-") for raw in raws):
            return None  # a value or a forgotten one: typer decides
        converted = [_convert(param.kind, raw) for raw in raws]
        if any(v is None for v in converted):
            return None
        values[param.dest] = converted if param.multiple else converted[-1]
    return None if positional else values
