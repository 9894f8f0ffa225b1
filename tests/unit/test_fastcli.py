"""orch.fastcli against typer: whatever command line the light parser takes, typer must
read the same way, down to every value the command gets."""

from __future__ import annotations

import enum
import importlib
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orch import commandline, commands, completion_click, fastcli, hostcli
from orch.app import app, typer
from orch.commandline import Argument, Command, Option
from tests.unit.typer_tree import completion_nodes, fast_tree

ROOT = Path(__file__).resolve().parents[2]
LEAVES: list[tuple[tuple[str, ...], Command]] = commandline.commands()


class _Called(Exception):
    def __init__(self, function: str, values: dict[str, Any]) -> None:
        super().__init__(function)
        self.function = function
        self.values = values


def _plain(value: Any) -> Any:
    """typer's Enum and Path values as the strings the commands also accept."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def typer_reads(args: list[str], monkeypatch: pytest.MonkeyPatch) -> _Called | None:
    """What typer calls for ARGS (None if it refuses them or calls nothing)."""
    def recorder(function: str) -> Any:
        def record(**values: Any) -> int:
            raise _Called(function, {k: _plain(v) for k, v in values.items()})
        return record

    with monkeypatch.context() as patch:
        for _path, leaf in LEAVES:
            module, _, name = leaf.function.rpartition(":")
            patch.setattr(importlib.import_module(f"orch.{module or 'commands'}"), name,
                          recorder(leaf.function))
        patch.setattr(commands, "version", recorder("version"))
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                app(args=args, prog_name="orch", standalone_mode=False)
        except _Called as called:
            return called
        except (typer.Exit, typer.TyperException, typer.Abort):
            return None
    return None


def fast_reads(args: list[str]) -> _Called | None:
    """What the light parser calls for ARGS, through the same call typer's tree makes."""
    fast = fastcli.parse(args)
    if fast is None:
        return None
    if fast.command is None:
        return _Called("version", {})

    def record(**values: Any) -> int:
        raise _Called(fast.command.function if fast.command else "", values)

    try:
        commandline.call(fast.command, fast.values, body=record)
    except _Called as called:
        return called
    raise AssertionError("the body was not called")


def assert_same(args: list[str], monkeypatch: pytest.MonkeyPatch) -> _Called | None:
    fast = fast_reads(args)
    if fast is None:
        return None
    called = typer_reads(args, monkeypatch)
    assert called is not None, f"fastcli took {args!r}, which typer refuses"
    assert (fast.function, fast.values) == (called.function, called.values), args
    return fast


def _definition_node(command: Command) -> dict[str, Any]:
    """COMMAND as typer_tree.fast_tree describes typer's reading of it."""
    options: dict[str, list[Any]] = {}
    arguments: list[list[Any]] = []
    defaults: dict[str, Any] = {}
    for param in command.params:
        kind = commandline.choices(param.kind) or param.kind
        defaults[param.dest] = param.default
        if isinstance(param, Argument):
            arguments.append([param.dest, kind, param.variadic, param.required])
            continue
        for flag in param.flags:
            options[flag] = [param.dest, kind, True if kind == "flag" else None,
                             param.multiple]
        for flag in param.negative:  # a flag's --no- form
            options[flag] = [param.dest, kind, False, param.multiple]
    return {"function": command.function, "interspersed": command.interspersed,
            "options": options, "arguments": arguments, "defaults": defaults}


def test_typer_reads_each_command_as_its_definition_says() -> None:
    tree = fast_tree()
    for path, command in LEAVES:
        node = tree
        for word in path:
            node = node[word]
        assert node == _definition_node(command), path


def _custom(path: str, param: list[Any]) -> Any:
    """PARAM's values as typer's tree says them: "custom" where a callback gives them
    (the definition's completions or completes)."""
    defined = {p.dest: p for p in _params_at(path)}.get(param[1])
    if (isinstance(defined, Option) and defined.completions) or \
            (isinstance(defined, Argument) and defined.completes):
        return "custom"
    return param[8]


def _params_at(path: str) -> list[Option | Argument]:
    children: dict[str, Any] = commandline.tree()
    item: Any = None
    for word in path.split():
        item = children[word]
        children = getattr(item, "commands", {})
    return list(commandline.ROOT) if item is None else list(getattr(item, "params", []))


def test_completion_sees_the_tree_typer_builds() -> None:
    nodes, params = completion_nodes()
    assert set(nodes) == {"", "box", "config", "units", "schedule",
                          *(" ".join(path) for path, _ in LEAVES)}
    for path, node in nodes.items():
        ours = completion_click.node_at(path)
        assert ours["commands"] == node["commands"], path
        assert ours["interspersed"] == node["interspersed"], path
        assert completion_click.about(ours) == node["about"][0], path
        theirs = [params[i] for i in node["params"]]
        # What typer reads through a callback (an option's words, an argument's values
        # read when asked), it calls custom; test_completion_fast holds the answers alike.
        assert [[*p[:7], _custom(path, p)] for p in ours["params"]] == \
            [p[:7] + p[8:] for p in theirs], path
        for mine, typer_param in zip(ours["params"], theirs, strict=True):
            help_text, rendered = mine[7], typer_param[7]
            assert help_text == (rendered[0] if rendered else None), (path, mine[1])
            if not help_text:
                continue
            zsh = completion_click.rendered(completion_click.zsh_escape(help_text))
            fish = completion_click.rendered(" ".join(help_text.split(" ")))
            # where orch.completion renders a help text itself, rich renders it so
            assert zsh is None or zsh == rendered[1], (path, mine[1])
            assert fish is None or fish == rendered[2], (path, mine[1])


def test_every_command_has_a_body_that_takes_its_values() -> None:
    import inspect

    for path, leaf in LEAVES:
        function = commandline.body_of(leaf)
        accepted = set(inspect.signature(function).parameters)
        settings = {p.dest for p in leaf.params if isinstance(p, Option) and p.setting}
        expected = {p.dest for p in leaf.params} - settings | ({"settings"} if settings else set())
        assert accepted == expected, path


# The command lines scripts and people write most: each must stay on the light path.
COMMON = [
    ["spawn", "--", "/bin/sleep", "1000"],
    ["spawn", "--name", "fixer", "--tag", "a", "--tag", "b", "--", "claude", "-p", "x"],
    ["spawn", "--sandbox", "--no-sandbox", "--no-worktree", "--", "sleep", "1"],
    ["spawn", "--json", "--env", "A=1", "--timeout=30m", "--nice", "5", "--", "prog"],
    ["spawn", "--provider", "claude", "--model", "opus", "--auto-approve", "fix it"],
    ["spawn", "--persistent", "--restart", "on-failure", "/bin/prog", "--json"],
    ["--debug", "ps"],
    ["ps"],
    ["ps", "--json"],
    ["ps", "--running", "--tag", "x", "--user"],
    ["show", "abcd1234", "--json"],
    ["show", "--system", "self"],
    ["logs", "fixer", "-n", "20", "-o", "json"],
    ["logs", "-f", "fixer"],
    ["wait", "a", "b", "--any", "--timeout", "2.5"],
    ["wait", "--timeout", "30", "a"],
    ["stop", "fixer"],
    ["kill", "fixer", "done: tests pass", "--signal", "KILL"],
    ["result", "fixer", "--json"],
    ["resume", "fixer", "and the docs"],
    ["recover", "--json"],
    ["reap", "--older-than", "0", "--all", "--json"],
    ["config", "set", "spawn.memory_max", "2G"],
    ["config", "get", "spawn.memory_max", "--user"],
    ["config", "list", "--json"],
    ["units", "install", "--system"],
    ["box", "status", "--json"],
    ["box", "up", "--root", "/srv/root"],
    ["box", "up", "--root", "srv//root/"],
    ["box", "up", "--root="],
    ["box", "exec", "--", "ls", "-l"],
    ["--version"],
]


@pytest.mark.parametrize("args", COMMON, ids=[" ".join(a) for a in COMMON])
def test_common_command_lines_take_the_light_path_and_read_as_typer_reads_them(
        args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert assert_same(args, monkeypatch) is not None


# Left to typer: help, usage errors, and forms the light parser does not read.
DECLINED = [
    [], ["--help"], ["spawn", "--help"], ["ps", "--help"], ["config"], ["box"],
    ["nosuch"], ["ps", "--nosuch"], ["ps", "extra"], ["show"], ["wait"],
    ["spawn"], ["spawn", "--name"], ["logs", "x", "-n5"], ["logs", "x", "-fn", "5"],
    ["logs", "x", "-n", "five"], ["logs", "x", "-n", "-1"], ["logs", "x", "-o", "yaml"],
    ["ps", "--json=1"], ["wait", "x", "--timeout"], ["spawn", "--nice", "-5", "p"],
    ["spawn", "--name", "--json", "p"], ["ps", "-h"], ["--debug"], ["--user", "ps"],
]


@pytest.mark.parametrize("args", DECLINED, ids=[" ".join(a) or "(none)" for a in DECLINED])
def test_help_errors_and_rarer_forms_are_left_to_typer(args: list[str]) -> None:
    assert fastcli.parse(args) is None


def _token(leaf: Command) -> st.SearchStrategy[str]:
    words = st.sampled_from(["x", "a b", "-", "--", "0", "12", "1.5", "-3", "=", "a=b", "1.",
                             ".5", "²", "1_000", " 7", "007",
                             "--json", "-n", "json", "short", "é", ""])
    flags = [f for p in leaf.params if isinstance(p, Option) for f in (*p.flags, *p.negative)]
    options = st.sampled_from(sorted(flags) or ["--json"])
    attached = st.builds(lambda o, v: f"{o}={v}", options, words)
    return st.one_of(words, options, options, attached, st.text(max_size=4))


@st.composite
def _command_lines(draw: st.DrawFn) -> list[str]:
    path, leaf = draw(st.sampled_from(LEAVES))
    prefix = draw(st.sampled_from([[], ["--debug"]]))
    return [*prefix, *path, *draw(st.lists(_token(leaf), max_size=8))]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=_command_lines())
def test_random_command_lines_read_the_same_or_go_to_typer(args: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert_same(args, monkeypatch)


def test_main_runs_the_light_path_without_loading_typer(tmp_path: Path) -> None:
    import subprocess

    probe = ("import sys; from orch import cli\n"
             "try:\n    cli.main(['--version'])\n"
             "except SystemExit as done:\n"
             "    assert done.code == 0, done.code\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('typer', 'pydantic', 'rich', 'pystemd', 'psutil')))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=True)
    assert done.stdout.splitlines() == [f"orch {commands.__version__}", "[]"]


def _click_with_host_options(path: tuple[str, ...]) -> Any:
    """The click command typer builds for PATH, taking --host and --label as its own
    options too: what orch.hostcli means by accepting them after the command's name."""
    import copy

    import typer.main

    command = root = typer.main.get_command(app)
    for word in path:
        command = command.commands[word]  # type: ignore[attr-defined]
    command = copy.copy(command)
    given_more = []  # every value given, as orch reads them all (a second is refused)
    for param in root.params:
        if param.name in ("host", "label"):
            param = copy.copy(param)
            param.multiple = True
            given_more.append(param)
    command.params = [*command.params, *given_more]
    return command


def _given(value: object) -> list[str]:
    """The values a multiple --host or --label took: typer's converter writes them as a
    list's text ("['h1', 'h2']"), or none."""
    import ast

    return list(ast.literal_eval(value)) if isinstance(value, str) else list(value or ())  # type: ignore[call-overload]


def _scoped_token(leaf: Command) -> st.SearchStrategy[list[str]]:
    host = st.sampled_from(["h1", "user@h2:22", "auto", "--json", "-"])
    return st.one_of(
        st.tuples(st.sampled_from(["--host", "--label"]), host).map(list),
        host.map(lambda v: [f"--host={v}"]),
        st.sampled_from([["--user"], ["--system"], ["-n5"], ["-fn", "5"], ["--"]]),
        _token(leaf).map(lambda t: [t]))


@st.composite
def _lines_with_hosts(draw: st.DrawFn) -> tuple[tuple[str, ...], list[str], list[str]]:
    path, leaf = draw(st.sampled_from(LEAVES))
    prefix = draw(st.sampled_from([[], ["--host", "r1"], ["--debug", "--label=gpu"]]))
    words = [w for token in draw(st.lists(_scoped_token(leaf), max_size=8)) for w in token]
    return path, prefix, words


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=_lines_with_hosts())
def test_host_and_scope_are_read_as_click_reads_the_line(
        line: tuple[tuple[str, ...], list[str], list[str]]) -> None:
    """--host, --label, --user and --system anywhere before the arguments, in every form:
    orch.hostcli finds the ones click's own parser finds (given --host and --label as the
    command's options), and what it leaves is the same line to typer."""
    from typer._click.exceptions import BadOptionUsage, NoSuchOption
    from typer._click.exceptions import UsageError as ClickUsageError

    from orch.errors import UsageError

    path, prefix, words = line
    args = [*prefix, *path, *words]
    command = _click_with_host_options(path)
    try:
        command.make_context(path[-1], list(words))
    except (NoSuchOption, BadOptionUsage):
        return  # an option the command does not have, or a flag given a value: refused
    except ClickUsageError:
        pass  # a missing argument, say: the options were still read
    try:
        ctx = command.make_context(path[-1], list(words), resilient_parsing=True)
    except ClickUsageError:
        return  # a line click refuses: orch refuses it too, wherever it runs
    root_host = prefix[1] if prefix[:1] == ["--host"] else None
    root_label = "gpu" if "--label=gpu" in prefix else None
    hosts = {*([root_host] if root_host else []), *_given(ctx.params["host"])}
    labels = {*([root_label] if root_label else []), *_given(ctx.params["label"])}
    if len(hosts) > 1 or len(labels) > 1:  # which one was meant: orch asks
        with pytest.raises(UsageError, match="given twice"):
            hostcli.split(args)
        return
    target = hostcli.split(args)
    assert target.host == next(iter(hosts), None), args
    assert target.label == next(iter(labels), None), args
    kept = target.args
    start = 0
    while kept[start:start + 1] == ["--debug"]:
        start += 1
    assert tuple(kept[start:start + len(path)]) == path, args
    rest = kept[start + len(path):]
    again = _click_with_host_options(path).make_context(path[-1], rest,
                                                        resilient_parsing=True)
    assert {**again.params, "host": None, "label": None} == \
        {**ctx.params, "host": None, "label": None}, args
    user, system = ctx.params.get("user"), ctx.params.get("system")
    if user and system:
        return  # refused as a usage error, here as by the command itself
    scope = hostcli._scope(target)
    expected = "user" if user else "system" if system else None
    assert (str(scope) if scope is not None else None) == expected, args


@pytest.mark.parametrize("args", [["--host", "X", "logs", "-n", "5", "ID", "--system"],
                                  ["--host", "X", "logs", "-n5", "ID", "--system"],
                                  ["logs", "-fn5", "--host=X", "ID", "--system"]])
def test_the_scope_of_a_line_for_another_host_does_not_depend_on_the_option_form(
        args: list[str]) -> None:
    target = hostcli.split(args)
    assert target.host == "X"
    assert str(hostcli._scope(target)) == "system"
