"""orch.fastcli against typer: whatever command line the light parser takes, typer must
read the same way, down to every value the command gets."""

from __future__ import annotations

import enum
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orch import cli_table, commands, fastcli
from orch.app import app, typer

ROOT = Path(__file__).resolve().parents[2]


def _leaves(node: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...],
                                                                          dict[str, Any]]]:
    if "function" in node:
        return [(path, node)]
    return [leaf for name, sub in node.items() for leaf in _leaves(sub, (*path, name))]


LEAVES = _leaves(cli_table.COMMANDS)


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
            patch.setattr(commands, leaf["function"], recorder(leaf["function"]))
        patch.setattr(commands, "version", recorder("version"))
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                app(args=args, prog_name="orch", standalone_mode=False)
        except _Called as called:
            return called
        except (typer.Exit, typer.TyperException, typer.Abort):
            return None
    return None


def assert_same(args: list[str], monkeypatch: pytest.MonkeyPatch) -> fastcli.Parsed | None:
    fast = fastcli.parse(args)
    if fast is None:
        return None
    called = typer_reads(args, monkeypatch)
    assert called is not None, f"fastcli took {args!r}, which typer refuses"
    assert (fast.command, fast.values) == (called.function, called.values), args
    return fast


def test_the_table_is_the_current_tree() -> None:
    generated = fastcli.table_source()
    checked_in = (ROOT / "orch" / "cli_table.py").read_text()
    assert generated == checked_in, "run `make cli-table` and commit orch/cli_table.py"


def test_every_command_has_a_body_and_the_body_takes_the_tables_values() -> None:
    import inspect

    for path, leaf in LEAVES:
        function = getattr(commands, leaf["function"])
        accepted = set(inspect.signature(function).parameters)
        assert accepted == set(leaf["defaults"]), path


# The command lines scripts and people write most: each must stay on the light path.
COMMON = [
    ["spawn", "--", "/bin/sleep", "1000"],
    ["spawn", "--name", "fixer", "--tag", "a", "--tag", "b", "--", "claude", "-p", "x"],
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


def _token(leaf: dict[str, Any]) -> st.SearchStrategy[str]:
    words = st.sampled_from(["x", "a b", "-", "--", "0", "12", "1.5", "-3", "=", "a=b", "1.",
                             ".5", "²", "1_000", " 7", "007",
                             "--json", "-n", "json", "short", "é", ""])
    options = st.sampled_from(sorted(leaf["options"]) or ["--json"])
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
