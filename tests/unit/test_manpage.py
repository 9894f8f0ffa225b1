"""The orch(1) man page: every command, option and help text of the CLI is in it, the
lists of exit codes, variables and files match the code, and roff finds nothing wrong."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer import _click as click
from typer.core import TyperGroup

import orch
from orch import box, commands, config, manpage, secrets, spec, state, unitfiles
from orch.errors import OrchError
from orch.scope import Scope

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2024, 5, 6)


def _plain(roff: str) -> str:
    """What a reader sees of ROFF text: font changes and escapes gone, blanks collapsed."""
    text = re.sub(r"\\f[BIRP]", "", roff)
    for escaped, char in (("\\%", ""), ("\\&", ""), ("\\-", "-"), ("\\(dq", '"'),
                          ("\\e", "\\")):
        text = text.replace(escaped, char)
    return " ".join(text.split())


def _sections(roff: str) -> dict[str, str]:
    """The page's .SH and .SS sections by title, as plain text."""
    sections: dict[str, list[str]] = {}
    body: list[str] = []
    for line in roff.splitlines():
        match = re.match(r'\.S[HS] "?(.*?)"?$', line)
        if match:
            body = sections.setdefault(_plain(match[1]), [])
        else:
            body.append(line)
    return {title: _plain("\n".join(lines)) for title, lines in sections.items()}


def _tree(command: click.Command, path: str) -> list[tuple[str, click.Command]]:
    """Every visible command under COMMAND with its path, walked without orch.manpage."""
    found = [(path, command)]
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            if not sub.hidden:
                found += _tree(sub, f"{path} {name}")
    return found


@pytest.fixture(scope="module")
def page() -> str:
    return manpage.render(DAY)


def test_every_command_has_a_section_with_its_usage_help_and_flags(page: str) -> None:
    sections = _sections(page)
    root = manpage.root_context()
    commands = _tree(root.command, "orch")[1:]
    paths = [path for path, _ in commands]
    assert {"orch spawn", "orch box up", "orch config get", "orch units install"} <= set(paths)
    for (path, command), ctx in zip(commands, manpage.commands(root), strict=True):
        assert ctx.command_path == path
        text = sections[path]
        usage = " ".join([path, *command.collect_usage_pieces(ctx)])
        assert text.startswith(usage), (path, usage)
        first_line = inspect.cleandoc(command.help or "").splitlines()[0]
        assert " ".join(first_line.split()) in text, path
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            if param.param_type_name == "option":
                for flag in [*param.opts, *param.secondary_opts]:
                    assert re.search(rf"(^|[\s,/]){re.escape(flag)}([\s,]|$)", text), (path, flag)
            else:
                record = param.get_help_record(ctx)
                assert record is not None and record[0] in text, (path, param.name)


def test_arguments_read_as_their_value_names(page: str) -> None:
    # typer's own way read "orch wait [OPTIONS] {ID...}..." and "ID... <list[str]>".
    root = manpage.root_context()
    commands = dict(zip([path for path, _ in _tree(root.command, "orch")[1:]],
                        manpage.commands(root), strict=True))
    usages = {path: " ".join(ctx.command.collect_usage_pieces(ctx))
              for path, ctx in commands.items()}
    assert usages["orch wait"] == "[OPTIONS] ID..."
    assert usages["orch spawn"] == "[OPTIONS] -- CMD [ARG...] | PROMPT"
    assert usages["orch config set"] == "[OPTIONS] KEY VALUE"
    # One that may be left out is in brackets (they showed as if required).
    assert usages["orch kill"] == "[OPTIONS] ID [RESULT]"
    assert usages["orch resume"] == "[OPTIONS] ID [PROMPT]"
    assert usages["orch send"] == "[OPTIONS] ID [MESSAGE]"
    assert usages["orch events"] == "[OPTIONS] [ID...]"
    assert not re.search(r"<(str|int|float|path|list\[)", page)  # nor an option's (--host)
    for path, ctx in commands.items():
        assert not re.search(r"[{}<>]", usages[path]), path
        for param in ctx.command.params:
            if param.param_type_name == "argument":
                record = param.get_help_record(ctx)
                assert record is not None and record[0] == param.metavar, (path, record)


def test_root_options_are_under_options(page: str) -> None:
    root = manpage.root_context()
    text = _sections(page)["OPTIONS"]
    flags = [flag for param in root.command.get_params(root) for flag in param.opts]
    assert {"--debug", "--version", "--help"} <= set(flags)
    for flag in flags:
        assert flag in text


def test_header_name_and_see_also(page: str) -> None:
    lines = page.splitlines()
    assert f'.TH ORCH 1 2024-05-06 "orch {orch.__version__}" "User Commands"' in lines
    name = _sections(page)["NAME"]
    assert name == ("orch - run AI coding agents and other long-running commands as "
                    "systemd services")
    see_also = _sections(page)["SEE ALSO"]
    for ref in ("systemd.exec(5)", "systemd.resource-control(5)", "journalctl(1)",
                "systemctl(1)"):
        assert ref in see_also


def test_the_date_is_source_date_epoch_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14 UTC
    assert ".TH ORCH 1 2023-11-14 " in manpage.render()


def _exit_codes() -> set[int]:
    """Every exit code orch has: its errors' (all modules loaded) and the literal ones of
    cli.py and commands.py."""
    for module in pkgutil.iter_modules(orch.__path__):
        if module.name != "__main__":
            importlib.import_module(f"orch.{module.name}")
    codes = set()
    pending: list[type[OrchError]] = [OrchError]
    while pending:
        error = pending.pop()
        codes.add(error.exit_code)
        pending += error.__subclasses__()
    for name in ("cli.py", "commands.py"):
        source = (ROOT / "orch" / name).read_text()
        codes |= {int(code) for code in re.findall(r"(?:_fail\(.*?|return )(\d+)\)?$", source,
                                                    re.M)}
    return codes | {0, commands.WAIT_FAILED, commands.WAIT_UNKNOWN, commands.WAIT_TIMEOUT}


def test_exit_status_describes_every_code_orch_exits_with(page: str) -> None:
    codes = _exit_codes()
    assert {1, 2, 3, 4, 5, 70, 124, 130} <= codes
    listed = [code for code, _ in manpage.EXIT_STATUS]
    assert codes <= set(listed), codes - set(listed)
    text = _sections(page)["EXIT STATUS"]
    for code, meaning in manpage.EXIT_STATUS:
        assert f"{code} {_plain(manpage.escape(meaning))}" in text


def test_environment_lists_every_variable_orch_reads(page: str) -> None:
    read = set()
    for path in (ROOT / "orch").glob("*.py"):
        if path.name == "manpage.py":  # SOURCE_DATE_EPOCH is the package build's
            continue
        read |= set(re.findall(r'(?:environ\.get\(|environ\[|getenv\()"(\w+)"', path.read_text()))
    read.discard("PATH")  # handed on to sessions, not a setting of orch's
    assert {"ORCH_STATE_DIR", "ORCH_CONFIG", "ORCH_CALL_TIMEOUT", "ORCH_DEBUG",
            "ORCH_BOX_DIR"} <= read
    listed = [name for name, _ in manpage.ENVIRONMENT]
    assert read <= set(listed), read - set(listed)
    text = _sections(page)["ENVIRONMENT"]
    for name in listed:
        assert re.search(rf"(^| ){name} ", text), name


def test_files_names_the_default_paths(page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORCH_STATE_DIR", "ORCH_CONFIG", "ORCH_BOX_DIR", "XDG_STATE_HOME",
                 "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    text = _sections(page)["FILES"]

    def shown(path: Path) -> str:
        return str(path).replace("/home/someone", "~").replace(f"/{os.geteuid()}/", "/UID/")

    for scope in Scope:
        assert shown(scope.state_dir()) + "/" in text
        assert shown(config.config_path(scope)) in text
        assert shown(unitfiles.unit_dir(scope)) + "/" in text
        assert shown(secrets.secrets_dir(scope).parent) + "/" in text
    for name in (state.STATE_FILE, state.LOG_FILE, state.LOCK_FILE, "worktrees/",
                 secrets.secrets_dir(Scope.USER).name + "/",
                 spec.after_dir(Scope.USER).name + "/",
                 unitfiles.RECOVER, unitfiles.REAP, unitfiles.REAP_TIMER):
        assert name in text, name
    assert shown(box.box_dir()) + "/" in text


@pytest.mark.parametrize(("text", "roff"), [
    ("--user and -n", "\\%\\-\\-user and \\%\\-n"),
    ("Nice level, -20 to 19.", "Nice level, \\%\\-20 to 19."),
    ("long-running work", "\\%long-running work"),
    ("a \\ backslash", "a \\e backslash"),
    (".starts with a dot", "\\&.starts with a dot"),
    ("'starts with a quote", "\\&'starts with a quote"),
    ("one\n.two\n'three", "one\n\\&.two\n\\&'three"),
    ("mid.dle is fine", "\\%mid.dle is fine"),
    ("caf\u00e9 \u2026", "caf\\[u00E9] \\[u2026]"),
])
def test_escape(text: str, roff: str) -> None:
    assert manpage.escape(text) == roff


def test_escape_literal_makes_every_hyphen_a_minus() -> None:
    assert manpage.escape("--add-dir", literal=True) == "\\%\\-\\-add\\-dir"
    assert manpage.escape("orch box up", literal=True) == "\\%orch \\%box \\%up"
    assert manpage.escape(".x", literal=True) == "\\%.x"  # \% already keeps it a text line


def _odd_app() -> typer.Typer:
    """A CLI whose help texts are hard on roff, with hidden parts."""
    odd = typer.Typer(help=".Leading dot and a \\ backslash.", add_completion=False,
                      rich_markup_mode=None)

    @odd.command(help="'Quote first.\n\n\b\n  kept  as is\n.dot\n\nLast\fhidden tail")
    def shown(
        flag: Annotated[bool, typer.Option("--flag/--no-flag", help="-1 or \\n.")] = False,
        secret: Annotated[str, typer.Option("--secret-opt", hidden=True)] = "",
    ) -> None:
        pass

    @odd.command(hidden=True)
    def invisible() -> None:
        pass

    return odd


def test_hidden_parts_are_left_out_and_odd_help_is_escaped() -> None:
    page = manpage.render(DAY, cli=_odd_app())
    sections = _sections(page)
    assert "orch shown" in sections
    assert "orch invisible" not in sections
    assert "--secret-opt" not in _plain(page)
    assert "\\fB\\%\\-\\-flag\\fR / \\fB\\%\\-\\-no\\-flag\\fR" in page
    assert "\\&.Leading dot and a \\e backslash." in page.splitlines()
    assert ".nf\n  kept  as is\n\\&.dot\n.fi" in page
    assert "hidden tail" not in page
    assert "\\%\\-1 or \\en." in page


def _groff_warnings(page: str, tmp_path: Path) -> str:
    path = tmp_path / "orch.1"
    path.write_text(page, encoding="ascii")
    done = subprocess.run(["groff", "-man", "-ww", "-z", str(path)],
                          capture_output=True, text=True, check=False)
    return f"exit {done.returncode}: {done.stderr}" if done.returncode or done.stderr else ""


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_groff_has_no_warnings(page: str, tmp_path: Path) -> None:
    assert _groff_warnings(page, tmp_path) == ""
    assert _groff_warnings(manpage.render(DAY, cli=_odd_app()), tmp_path) == ""


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_man_renders_it_without_warnings_as_lintian_checks(page: str, tmp_path: Path) -> None:
    path = tmp_path / "orch.1"
    path.write_text(page, encoding="ascii")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "MANROFFSEQ": "", "MANWIDTH": "80"}
    done = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(path)],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    shown = subprocess.run(["man", "-l", str(path)], capture_output=True, text=True,
                           env={**env, "MANPAGER": "cat"}, check=True).stdout
    # Flags copied from the rendered page must be plain ASCII hyphens.
    assert "--memory-max" in shown and "orch box up" in shown


def test_main_writes_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "orch.1"
    assert manpage.main([str(out)]) == 0
    assert out.read_text(encoding="ascii") == manpage.render()


def test_it_runs_without_systemd(tmp_path: Path) -> None:
    # pystemd (the only way to a manager) must not even be loaded.
    code = ("import sys; from orch import manpage; manpage.main([sys.argv[1]]); "
            "assert 'pystemd' not in sys.modules, 'pystemd loaded'")
    out = tmp_path / "orch.1"
    done = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith('.\\" Generated')
