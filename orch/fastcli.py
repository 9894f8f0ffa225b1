"""A light parser for well-formed `orch` command lines, driven by a table of typer's
command tree (orch.cli_table), so that most calls never load typer.

It takes a command line only when it is sure to read it exactly as typer would, and
returns None otherwise: help, a usage error, an unknown option, a value that starts
with `-`, an attached short value (`-n5`), a number written in any but the plain way.
typer then parses it, with its own messages. tests/unit/test_fastcli.py holds the two
parsers to the same values over every command and many command lines.

`python -m orch.fastcli` prints the table for the current tree (the test compares it
with orch/cli_table.py, and `make cli-table` writes it).
"""

from __future__ import annotations

from orch.cli_table import COMMANDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT_FLAGS = ("--debug",)  # the root callback's options that take no value


def _digits(text: str) -> bool:
    """TEXT is ASCII digits only (str.isdigit alone takes '²' and other digits)."""
    return text.isascii() and text.isdigit()


class Parsed:
    """A command line read: the orch.commands function to call, and its arguments."""

    __slots__ = ("command", "values")

    def __init__(self, command: str, values: dict[str, Any]) -> None:
        self.command = command
        self.values = values

    def __repr__(self) -> str:
        return f"Parsed({self.command!r}, {self.values!r})"


def parse(args: list[str]) -> Parsed | None:
    """ARGS (without the program name) as a command and its values, or None to leave
    them to typer."""
    i = 0
    while i < len(args) and args[i] in ROOT_FLAGS:
        i += 1
    if i < len(args) and args[i] == "--version":
        return Parsed("version", {})
    node: dict[str, Any] = COMMANDS
    while True:
        if i >= len(args) or args[i] not in node:
            return None
        node = node[args[i]]
        i += 1
        if "function" in node:
            values = _command(node, args[i:])
            return None if values is None else Parsed(node["function"], values)


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
    if isinstance(kind, list):  # the values of an Enum
        return raw if raw in kind else None
    return None


def _command(spec: dict[str, Any], rest: list[str]) -> dict[str, Any] | None:
    options: dict[str, list[Any]] = spec["options"]
    values: dict[str, Any] = dict(spec["defaults"])
    given: dict[str, list[Any]] = {}
    positional: list[str] = []
    only_arguments = False
    j = 0
    while j < len(rest):
        token = rest[j]
        j += 1
        if only_arguments or token == "-" or not token.startswith("-"):
            positional.append(token)
            if not spec["interspersed"]:
                only_arguments = True
            continue
        if token == "--":
            only_arguments = True
            continue
        name, equals, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        if name not in options:
            return None  # --help, an unknown option, -n5, -fn: typer's to read
        dest, kind, flag_value, multiple = options[name]
        if kind == "flag":
            if equals:
                return None
            value: Any = flag_value
        else:
            if equals:
                raw = inline
            elif j < len(rest):
                raw = rest[j]
                j += 1
            else:
                return None
            if raw.startswith("-"):
                return None  # a value or a forgotten one: typer decides
            value = _convert(kind, raw)
            if value is None:
                return None
        if multiple:
            given.setdefault(dest, []).append(value)
        else:
            values[dest] = value
    values.update(given)
    for dest, kind, variadic, required in spec["arguments"]:
        if variadic:
            taken, positional = positional, []
            if required and not taken:
                return None
            converted = [_convert(kind, raw) for raw in taken]
            if any(v is None for v in converted):
                return None
            values[dest] = converted if taken else values[dest]
        elif positional:
            value = _convert(kind, positional.pop(0))
            if value is None:
                return None
            values[dest] = value
        elif required:
            return None
    return None if positional else values


def table_source() -> str:
    """orch/cli_table.py for typer's current command tree (loads typer)."""
    import enum
    import pprint
    import types
    import typing
    from pathlib import Path

    from orch import vendor

    vendor.activate()  # a package's vendored typer must win
    import typer
    import typer.main

    from orch.app import app

    def kind(annotation: Any) -> tuple[Any, bool]:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            return kind(inner[0])
        if origin is list:
            return kind(typing.get_args(annotation)[0])[0], True
        if annotation is bool:
            return "flag", False
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return [m.value for m in annotation], False
        names = {str: "str", int: "int", float: "float", Path: "path"}
        return names[annotation], False

    def default(value: Any) -> Any:
        return value.value if isinstance(value, enum.Enum) else value

    def command(cmd: Any) -> dict[str, Any]:
        options: dict[str, list[Any]] = {}
        arguments: list[list[Any]] = []
        defaults: dict[str, Any] = {}
        for param in cmd.params:
            what, multiple = kind(param.type_descriptor.annotation)
            defaults[param.name] = default(param.default)
            if param.param_type_name == "argument":
                arguments.append([param.name, what, param.nargs == -1, param.required])
                continue
            for opt in param.opts:
                options[opt] = [param.name, what, True if what == "flag" else None, multiple]
            for opt in param.secondary_opts:
                options[opt] = [param.name, what, False, multiple]
        return {"function": cmd.callback.__name__, "interspersed":
                cmd.context_settings.get("allow_interspersed_args", True),
                "options": options, "arguments": arguments, "defaults": defaults}

    def tree(group: Any) -> dict[str, Any]:
        ctx = typer.Context(group)
        nodes = {}
        for name in sorted(group.list_commands(ctx)):
            sub = group.get_command(ctx, name)
            nodes[name] = tree(sub) if hasattr(sub, "list_commands") else command(sub)
        return nodes

    root = typer.main.get_command(app)
    body = pprint.pformat(tree(root), width=92, sort_dicts=True)
    nodes, params = completion_tree(root)
    completing = pprint.pformat(nodes, width=92, sort_dicts=False)
    shared = pprint.pformat(params, width=92)
    return ('"""typer\'s command tree as orch.fastcli and orch.completion read it.\n'
            'Generated by `python -m orch.fastcli` (`make cli-table`); '
            'tests/unit/test_fastcli.py\nchecks that it is current."""\n\n'
            "# fmt: off\n"
            f"COMMANDS = {body}\n\n"
            "# What click's completion reads of each group and command (orch.completion):\n"
            "# params [kind, name, opts, secondary_opts, takes_value, multiple, hidden, help,\n"
            "# values] in click's order, help as [text, zsh, fish] (rendered as typer renders\n"
            "# it, unwrapped; None where only typer can render it), values None, 'file',\n"
            "# 'custom' or the choices; a group's commands in click's order. Keyed by the\n"
            "# command's path ('' is the root). A node's params are indices into PARAMS,\n"
            "# where each parameter that several commands share (--user, --json) is once.\n"
            f"PARAMS = {shared}\n\n"
            f"COMPLETION = {completing}\n")


def completion_tree(group: Any) -> tuple[dict[str, dict[str, Any]], list[list[Any]]]:
    """The parts of typer's command tree GROUP (loaded) that its completion reads: the
    nodes by path, and the parameters they name by index (each distinct one once)."""
    import re

    import typer
    from typer import rich_utils
    from typer._completion_classes import _sanitize_help_text
    from typer.core import TyperArgument, TyperOption


    def zsh_escape(text: str) -> str:  # ZshComplete.format_completion's escape
        return (text.replace('"', '""').replace("'", "''").replace("$", "\\$")
                .replace("`", "\\`").replace(":", r"\\:"))

    def rendered(text: str) -> str | None:
        width, rich_utils.MAX_WIDTH = rich_utils.MAX_WIDTH, 1_000_000  # unwrapped: the
        try:  # completion checks at run time that it fits the width typer's rich finds
            out = _sanitize_help_text(text)
        finally:
            rich_utils.MAX_WIDTH = width
        return out if out.isascii() and out.isprintable() else None

    def about(text: str | None) -> list[Any] | None:
        if not text:
            return None
        return [text, rendered(zsh_escape(text)), rendered(re.sub(r"\s", " ", text))]

    def values(param: Any) -> Any:
        desc = param.type_descriptor
        if param._custom_shell_complete is not None:
            return "custom"
        if desc.is_choice and desc.choices is not None:
            if not desc.case_sensitive:
                return "custom"
            return [str(getattr(c, "value", c)) for c in desc.choices]
        return "file" if desc.is_file else None

    flat: dict[str, dict[str, Any]] = {}
    shared: list[list[Any]] = []

    def node(cmd: Any, ctx: Any, path: str) -> None:
        params: list[list[Any]] = []
        for param in cmd.get_params(ctx):
            if isinstance(param, TyperOption):
                assert param.nargs == 1 and not param.count, param.name
                assert all(o.startswith("-") for o in param.opts + param.secondary_opts)
                params.append(["option", param.name, param.opts, param.secondary_opts,
                               not param.is_flag, param.multiple, param.hidden,
                               about(param.help), values(param)])
            else:
                assert isinstance(param, TyperArgument) and param.nargs in (1, -1)
                params.append(["argument", param.name, [], [], True, param.nargs == -1,
                               False, None, values(param)])
        assert ctx.token_normalize_func is None
        names = list(cmd.list_commands(ctx)) if hasattr(cmd, "list_commands") else None
        indices = []
        for param in params:
            if param not in shared:
                shared.append(param)
            indices.append(shared.index(param))
        flat[path] = {"params": indices, "hidden": cmd.hidden,
                      "about": about(cmd.get_short_help_str()),
                      "interspersed": ctx.allow_interspersed_args,
                      "ignore_unknown": ctx.ignore_unknown_options, "commands": names}
        for name in names or ():
            sub = cmd.get_command(ctx, name)
            node(sub, typer.Context(sub, parent=ctx, **sub.context_settings),
                 f"{path} {name}".strip())

    node(group, typer.Context(group, **group.context_settings), "")
    return flat, shared


if __name__ == "__main__":
    print(table_source(), end="")
