"""Shell completion: the scripts, and `orch` answering them through real shells, without
running a command, forwarding into a box, or loading pystemd."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orch import api, cli, completion

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHELLS = ("bash", "zsh", "fish")


@pytest.mark.parametrize("shell", SHELLS)
def test_each_script_asks_orch_through_the_complete_variable(shell: str) -> None:
    text = completion.script(shell)
    assert "_ORCH_COMPLETE=complete_" + shell in text
    assert text.endswith("\n")


def test_zsh_script_starts_with_compdef_for_fpath_autoloading() -> None:
    assert completion.script("zsh").startswith("#compdef orch\n")


@pytest.mark.parametrize("shell", ["tcsh", "powershell", ""])
def test_other_shells_are_refused(shell: str) -> None:
    with pytest.raises(ValueError, match="no completion for"):
        completion.script(shell)


def test_module_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert completion.main(["bash"]) == 0
    assert capsys.readouterr().out == completion.script("bash")


def test_a_request_is_answered_before_anything_runs(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a completion request ran orch")

    monkeypatch.setattr(cli, "_forward_into_box", never)
    for name in ("list_sessions", "current_scope", "spawn_from_settings"):
        monkeypatch.setattr(api, name, never)
    monkeypatch.setenv("_ORCH_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "orch ps --")
    monkeypatch.setenv("COMP_CWORD", "2")
    with pytest.raises(SystemExit) as done:
        cli.main(["ps"])  # argv is what a user gave; the request wins
    assert done.value.code == 0
    assert set(capsys.readouterr().out.split()) == {"--running", "--tag", "--user",
                                                    "--system", "--json", "--all-hosts",
                                                    "--help"}


@pytest.fixture
def orch_bin(tmp_path: Path) -> Path:
    """A directory whose `orch` runs this tree's orch.cli:main, as the entry point does."""
    directory = tmp_path / "bin"
    directory.mkdir()
    orch = directory / "orch"
    orch.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -c "
                    "'from orch.cli import main; main()' \"$@\"\n")
    orch.chmod(0o755)
    return directory


def _shell_env(orch_dir: Path, home: Path) -> dict[str, str]:
    return {"PATH": f"{orch_dir}:/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8"}


def _bash_complete(orch_dir: Path, tmp_path: Path, words: list[str]) -> list[str]:
    """COMPREPLY after bash, with the script sourced, completes the last of WORDS."""
    script = tmp_path / "orch.bash"
    script.write_text(completion.script("bash"))
    quoted = " ".join(f"'{w}'" for w in words)
    program = (f"source {script}; complete -p orch >/dev/null || exit 9; "
               f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
               f"_orch_completion orch '{words[-1]}' '{words[-2]}'; "
               "printf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                          capture_output=True, text=True, env=_shell_env(orch_dir, tmp_path),
                          timeout=60, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_and_options(orch_bin: Path, tmp_path: Path) -> None:
    assert _bash_complete(orch_bin, tmp_path, ["orch", "sp"]) == ["spawn"]
    assert _bash_complete(orch_bin, tmp_path, ["orch", "box", ""]) == [
        "up", "down", "status", "exec", "shell"]
    assert _bash_complete(orch_bin, tmp_path, ["orch", "spawn", "--mem"]) == ["--memory-max"]
    assert _bash_complete(orch_bin, tmp_path, ["orch", "logs", "-o", ""]) == [
        "short", "json", "cat"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.skipif(not (BIN / "orch").exists(), reason="no installed orch beside pytest")
def test_bash_completes_through_the_installed_orch(tmp_path: Path) -> None:
    # The venv's orch is a copy: `pip install --no-deps --force-reinstall .` refreshes it.
    assert _bash_complete(BIN, tmp_path, ["orch", "sp"]) == ["spawn"]


def test_a_request_loads_no_pystemd(orch_bin: Path, tmp_path: Path) -> None:
    code = ("import atexit, sys; atexit.register(lambda: print('pystemd loaded' if 'pystemd' "
            "in sys.modules else 'clean', file=sys.stderr)); "
            "from orch.cli import main; main()")
    env = {**_shell_env(orch_bin, tmp_path), "PYTHONPATH": str(ROOT),
           "_ORCH_COMPLETE": "complete_bash", "COMP_WORDS": "orch logs x --", "COMP_CWORD": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0
    assert "--follow" in done.stdout.split()
    assert done.stderr.strip() == "clean"


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_commands(orch_bin: Path, tmp_path: Path) -> None:
    script = tmp_path / "_orch"
    script.write_text(completion.script("zsh"))
    # Outside a real Tab: compdef only registers, and _arguments shows what it was given.
    program = (f"compdef() {{ : }}; _arguments() {{ print -r -- \"$@\" }}; source {script}; "
               "words=(orch sp); CURRENT=2; _orch_completion")
    assert '"spawn"' in _zsh(program, orch_bin, tmp_path)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_on_the_first_tab_when_autoloaded(orch_bin: Path, tmp_path: Path) -> None:
    # As installed in vendor-completions: zsh autoloads the file as the body of `_orch`.
    (tmp_path / "_orch").write_text(completion.script("zsh"))
    program = (f"fpath=({tmp_path} $fpath); autoload -Uz _orch; compdef() {{ : }}; "
               "_arguments() { print -r -- \"$@\" }; words=(orch sp); CURRENT=2; _orch")
    assert '"spawn"' in _zsh(program, orch_bin, tmp_path)


def _zsh(program: str, orch_bin: Path, tmp_path: Path) -> str:
    """What PROGRAM prints in a bare zsh (-f) that finds this orch; it must succeed."""
    done = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True,
                          env=_shell_env(orch_bin, tmp_path), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_commands(orch_bin: Path, tmp_path: Path) -> None:
    script = tmp_path / "orch.fish"
    script.write_text(completion.script("fish"))
    done = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C 'orch sp'"],
                          capture_output=True, text=True, env=_shell_env(orch_bin, tmp_path),
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["spawn"]


def test_an_empty_variable_is_no_completion_request(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from orch import cli

    monkeypatch.setenv("_ORCH_COMPLETE", "")
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"orch {cli.__version__}\n"
