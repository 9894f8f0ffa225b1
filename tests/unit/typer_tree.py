"""typer's command tree, read back from the tree orch.app builds: the oracle the tests
hold orch.commandline's own readers (orch.fastcli, orch.completion) to."""

from __future__ import annotations

import enum
import types
import typing
from pathlib import Path
from typing import Any

import typer
import typer.main

from orch.app import app


def fast_tree() -> dict[str, Any]:
    """Every command as the light parser needs it: its body, options (name: [dest, kind,
    flag value, multiple]), arguments ([dest, kind, variadic, required]) and defaults."""
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

    return tree(typer.main.get_command(app))


def completion_nodes() -> tuple[dict[str, dict[str, Any]], list[list[Any]]]:
    """What click's completion reads of each group and command, by path."""
    return completion_tree(typer.main.get_command(app))


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
