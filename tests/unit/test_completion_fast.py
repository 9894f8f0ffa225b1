"""The completion answers orch finds without typer are typer's answers: the same bytes
and exit status, over generated command lines of every command and group."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch import commandline, completion, completion_click

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["", "box", "config", "units",
         *(" ".join(path) for path, _ in commandline.commands())]
SHELLS = [("bash", ""), ("zsh", ""), ("fish", "get-args"), ("fish", "is-args")]
VALUES = ["5", "x", "json", "a=b", "-", ".", "short"]


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _env(shell: str, action: str, words: list[str], incomplete: str) -> dict[str, str]:
    line = " ".join(["orch", *words, incomplete])
    if shell == "bash":
        return {"_ORCH_COMPLETE": "complete_bash", "COMP_WORDS": line,
                "COMP_CWORD": str(len(words) + 1)}
    return {"_ORCH_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line,
            "_TYPER_COMPLETE_FISH_ACTION": action}


def _typer(env: dict[str, str]) -> tuple[str, int]:
    out = io.StringIO()
    with _environ(env), redirect_stdout(out):
        try:
            code = completion._answer_with_typer()
        except SystemExit as done:  # fish's is-args exits
            code = int(done.code or 0)
    return out.getvalue(), code


def _fast(env: dict[str, str]) -> tuple[str, int] | None:
    with _environ(env):
        request = completion.Request.from_environ(os.environ)
        assert request is not None
        found = completion_click.fast_reply(request)
    if found is None:
        return None
    text, code = found
    return ("" if env.get("_TYPER_COMPLETE_FISH_ACTION") == "is-args" else text + "\n"), code


def _option_words(param: list[Any]) -> st.SearchStrategy[list[str]]:
    names = param[2] + param[3]
    name = st.sampled_from(names)
    if not param[4]:
        return st.one_of(name.map(lambda n: [n]), name.map(lambda n: [n + "=x"]))
    value = st.sampled_from(param[8] if isinstance(param[8], list) else VALUES)
    forms = [st.tuples(name, value).map(list),
             st.tuples(name, value).map(lambda nv: [f"{nv[0]}={nv[1]}"])]
    shorts = [n for n in names if len(n) == 2]
    if shorts:
        forms.append(st.tuples(st.sampled_from(shorts), value).map(lambda nv: ["".join(nv)]))
    forms.append(name.map(lambda n: [n]))  # its value left to complete, or missing
    return st.one_of(forms)


@st.composite
def _line(draw: st.DrawFn) -> tuple[list[str], str]:
    """Words of a command line (root options, a command path, its options and arguments
    in any order and form) and the word being completed."""
    words: list[str] = draw(st.lists(st.sampled_from(
        ["--debug", "--version", "--host=h1", "--label=gpu", "--host", "--help"]), max_size=2))
    path = draw(st.sampled_from(PATHS))
    words += path.split()
    node = completion_click.node_at(path)
    options = [p for p in completion_click.parameters(node) if p[0] == "option"]
    parts = [_option_words(p) for p in options] + [
        st.sampled_from([["word"], ["1a2b"], ["--"], ["-"], ["--nosuch"], ["-z"], ["-fn"]])]
    for part in draw(st.lists(st.sampled_from(range(len(parts))), max_size=5)):
        words += draw(parts[part])
    names = [o for p in options for o in p[2] + p[3]] + (node["commands"] or [])
    stem = st.sampled_from(names or ["x"])
    incomplete = draw(st.one_of(
        st.sampled_from(["", "-", "--", "x", "=", ".", "s", "j", "--nosuch="]),
        st.tuples(stem, st.integers(0, 6)).map(lambda si: si[0][:si[1]]),
        st.tuples(stem, st.sampled_from(VALUES)).map(lambda sv: f"{sv[0]}={sv[1]}")))
    return words, incomplete


@settings(max_examples=600)
@given(_line(), st.sampled_from(SHELLS))
def test_the_fast_answer_is_typers(line: tuple[list[str], str],
                                   shell: tuple[str, str]) -> None:
    words, incomplete = line
    env = {**_env(*shell, words, incomplete), "COLUMNS": "80"}
    expected = _typer(env)
    if completion.session_scope(words, incomplete) is not None:
        # Answered from the state (empty here); typer offers no session there.
        out = io.StringIO()
        with _environ(env), redirect_stdout(out):
            try:
                code = completion.answer()
            except SystemExit as done:
                code = int(done.code or 0)
        assert (out.getvalue(), code) == expected
        return
    found = _fast(env)
    if shell[0] == "bash" or shell[1] == "is-args":
        assert found is not None  # no help text to render: never left to typer
    if found is not None:
        assert found == expected


@pytest.mark.parametrize("columns", ["20", "200"])
@pytest.mark.parametrize(("shell", "action"), [("zsh", ""), ("fish", "get-args")])
def test_help_texts_wrap_as_typers_or_are_left_to_typer(columns: str, shell: str,
                                                        action: str) -> None:
    env = {**_env(shell, action, ["spawn"], "--"), "COLUMNS": columns}
    found = _fast(env)
    assert (found is None) == (columns == "20")
    assert found is None or found == _typer(env)


def test_the_fast_path_loads_no_typer() -> None:
    code = ("import atexit, sys; atexit.register(lambda: print(sorted(m for m in "
            "('typer', 'click', 'pydantic', 'rich') if m in sys.modules), file=sys.stderr)); "
            "from orch.cli import main; main(sys.argv[1:])")  # through sys.exit: atexit runs
    for shell, action in SHELLS:
        for words, incomplete in ((["logs"], "-"), (["config"], ""), ([], "sp"),
                                  (["logs", "-o"], "")):
            env = {**os.environ, **_env(shell, action, words, incomplete),
                   "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
            done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, env=env, timeout=60, check=False)
            assert done.stderr.strip() == "[]", (shell, words, incomplete)
            assert (done.stdout, done.returncode) == _typer(env)
