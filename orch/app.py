"""typer's command tree, built from the one definition of the command line
(orch.commandline). It parses what orch.fastcli does not take (help, completion, errors,
the rarer forms) and feeds the man page; each command's body is in orch.commands."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

from orch import commandline, vendor
from orch.commandline import Argument, Command, Group, Option

vendor.activate()  # before typer: a package's vendored copy must win
import typer  # noqa: E402
import typer.core  # noqa: E402
import typer.main  # noqa: E402


class _Argument(typer.core.TyperArgument):
    """An argument shown as its metavar says, which carries its own dots (`ID...`), and
    in brackets where it may be left out: typer would write `{ID...}...` in the usage
    line and add the Python type (`<list[str]>`) in the help."""

    def _usage_display_name(self) -> str:
        if self.metavar is None:
            return super()._usage_display_name()
        if self.required or self.metavar.startswith("["):
            return self.metavar
        return f"[{self.metavar}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.metavar is not None else super().display_type_rich(ctx)


typer.main.TyperArgument = _Argument  # type: ignore[attr-defined]  # what typer builds them of

_TYPES: dict[str, type] = {"flag": bool, "str": str, "int": int, "float": float,
                           "path": Path}


def _annotation(param: Option | Argument) -> Any:
    """PARAM's type and typer's description of it, as a function parameter's annotation."""
    kind = param.kind
    base: Any = kind() if callable(kind) else _TYPES[kind]
    variadic = param.multiple if isinstance(param, Option) else param.variadic
    if variadic:
        base = list[base]
    optional = not param.required if isinstance(param, Argument) else param.default is None
    if optional:
        base = base | None
    if isinstance(param, Argument):
        info: Any = typer.Argument(help=param.help, metavar=param.metavar,
                                   autocompletion=_completer(param.completes))
    else:
        flags = param.flags
        if param.negative:  # click's secondary names: "--sandbox/--no-sandbox"
            flags = (f"{flags[0]}/{'/'.join(param.negative)}", *flags[1:])
        info = typer.Option(*flags, help=param.help or None, metavar=param.metavar,
                            hidden=param.hidden, autocompletion=_words(param.completions))
    return Annotated[base, info]


def _completer(source: str | None) -> Any:
    """What Tab offers for an argument of SOURCE's values (orch.completion.values)."""
    if source is None:
        return None

    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        from orch.completion import values

        return values(source, ctx.params, incomplete)
    return complete


def _words(words: tuple[str, ...]) -> Any:
    """What Tab offers for an option that takes one of WORDS (--restart)."""
    if not words:
        return None

    def complete(incomplete: str) -> list[str]:
        return [word for word in words if word.startswith(incomplete)]
    return complete


def _parameter(param: Option | Argument) -> inspect.Parameter:
    default = inspect.Parameter.empty if isinstance(param, Argument) and param.required \
        else param.default
    return inspect.Parameter(param.dest, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             default=default, annotation=_annotation(param))


def _callback(command: Command) -> Any:
    """A function typer reads COMMAND's parameters from; calling it runs the body."""
    def run(**values: Any) -> None:
        code = commandline.call(command, values)
        if code:
            raise typer.Exit(code)

    run.__name__ = command.function
    run.__doc__ = command.help
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [_parameter(p) for p in command.params])
    return run


def _group(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None,
                       add_completion=False, pretty_exceptions_enable=False)


def _add(group: typer.Typer, name: str, child: Command | Group) -> None:
    if isinstance(child, Group):
        sub = _group(child.help)
        for sub_name, grandchild in child.commands.items():
            _add(sub, sub_name, grandchild)
        group.add_typer(sub, name=name)
        return
    settings = {} if child.interspersed else {"allow_interspersed_args": False}
    group.command(name, context_settings=settings or None,
                  hidden=child.hidden)(_callback(child))


def _version(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # completion parses too: it must not print
        from orch import commands

        raise typer.Exit(commands.version())


def _root() -> Any:
    """The root's callback: its options are read before the command by orch.cli and
    orch.hostcli; typer only has to know them (and --version answers here)."""
    def root(**values: Any) -> None:
        del values

    params = []
    for option in commandline.ROOT:
        extra: dict[str, Any] = {}
        if option.dest == "version":
            extra = {"callback": _version, "is_eager": True}
        info = typer.Option(*option.flags, help=option.help, metavar=option.metavar, **extra)
        base: Any = bool if option.kind == "flag" else str | None
        params.append(inspect.Parameter(option.dest, inspect.Parameter.KEYWORD_ONLY,
                                        default=option.default,
                                        annotation=Annotated[base, info]))
    root.__doc__ = commandline.ROOT_HELP
    root.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return root


app = typer.Typer(name="orch", help=commandline.ROOT_HELP, add_completion=False,
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
app.callback()(_root())
for _name, _child in commandline.tree().items():
    _add(app, _name, _child)
