"""Shell completion: the scripts, and `orch` answering them through real shells, without
running a command, forwarding into a box, or loading pystemd."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orch import api, cli, completion, completion_click, hostcli, schedules, state
from orch.commandline import Argument, commands
from orch.scope import Scope
from orch.session import Record

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
    for name in ("list_sessions", "current_scope", "spawn_requested"):
        monkeypatch.setattr(api, name, never)
    monkeypatch.setenv("_ORCH_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "orch ps --")
    monkeypatch.setenv("COMP_CWORD", "2")
    with pytest.raises(SystemExit) as done:
        cli.main(["ps"])  # argv is what a user gave; the request wins
    assert done.value.code == 0
    assert set(capsys.readouterr().out.split()) == {"--running", "--tag", "--user",
                                                    "--system", "--json", "--all-hosts",
                                                    "--full", "--help"}


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


def _bash_complete(orch_dir: Path, tmp_path: Path, words: list[str],
                   env: dict[str, str] | None = None) -> list[str]:
    """COMPREPLY after bash, with the script sourced, completes the last of WORDS (ENV
    added to the shell's environment)."""
    script = tmp_path / "orch.bash"
    script.write_text(completion.script("bash"))
    quoted = " ".join(f"'{w}'" for w in words)
    program = (f"source {script}; complete -p orch >/dev/null || exit 9; "
               f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
               f"_orch_completion orch '{words[-1]}' '{words[-2]}'; "
               "printf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                          capture_output=True, text=True,
                          env={**_shell_env(orch_dir, tmp_path), **(env or {})},
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
        "short", "json", "cat", "transcript"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.skipif(not (BIN / "orch").exists(), reason="no installed orch beside pytest")
def test_bash_completes_through_the_installed_orch(tmp_path: Path) -> None:
    # The venv's orch is a copy: `pip install --no-deps --force-reinstall .` refreshes it.
    assert _bash_complete(BIN, tmp_path, ["orch", "sp"]) == ["spawn"]


def test_a_request_loads_no_pystemd(orch_bin: Path, tmp_path: Path) -> None:
    # main() given its argv returns through sys.exit (as the entry point it ends the
    # process at once, past atexit).
    code = ("import atexit, sys; atexit.register(lambda: print('pystemd loaded' if 'pystemd' "
            "in sys.modules else 'clean', file=sys.stderr)); "
            "from orch.cli import main; main(sys.argv[1:])")
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


# --- session references ---------------------------------------------------------------

REF_COMMANDS = {"show", "logs", "wait", "stop", "kill", "result", "resume", "send", "attach",
                "events"}


def _record(session_id: str, name: str, day: int) -> Record:
    return Record(id=session_id, name=name, unit=f"orch-{name}-{session_id[:8]}.service",
                  scope="user", argv=["true"], cwd="/",
                  created_at=f"2026-01-{day:02d}T00:00:00+00:00")


RECORDS = [_record("1a2b3c4d-0000-4000-8000-000000000001", "review", 1),
           _record("1a2b3c4d-0000-4000-8000-000000000002", "build", 2),
           _record("99998888-0000-4000-8000-000000000003", "build", 3),
           _record("77776666-0000-4000-8000-000000000004", "solo", 4)]


def _write_state(directory: Path, records: list[Record]) -> None:
    state.StateStore(directory).update(lambda s: s.update((r.id, r) for r in records))


def test_the_commands_that_take_a_session_are_those_completed_with_sessions() -> None:
    taking = {" ".join(path) for path, command in commands()
              if any(isinstance(p, Argument) and p.dest in completion.REF_PARAMETERS
                     for p in command.params)}
    assert taking == REF_COMMANDS
    assert completion.HOST_ENV == hostcli.HOST_ENV


def test_ids_as_ps_shows_them_and_names_only_one_session_has() -> None:
    assert completion.candidates(RECORDS, "") == [
        ("77776666", "solo"), ("solo", "77776666"), ("99998888", "build"),
        ("1a2b3c4d-0000-4000-8000-000000000002", "build"),
        ("1a2b3c4d-0000-4000-8000-000000000001", "review"), ("review", "1a2b3c4d")]


def test_only_the_references_that_start_with_what_was_typed() -> None:
    assert completion.candidates(RECORDS, "s") == [("solo", "77776666")]
    assert completion.candidates(RECORDS, "9999") == [("99998888", "build")]
    assert completion.candidates(RECORDS, "build") == []  # two share it: ambiguous
    # Typed beyond the 8 characters shown: the whole id.
    assert completion.candidates(RECORDS, "99998888-") == [
        ("99998888-0000-4000-8000-000000000003", "build")]


@pytest.mark.parametrize(("line", "scope"), [
    ("orch show", (False, False)), ("orch --debug show", (False, False)),
    ("orch show --user", (True, False)), ("orch --system stop", None),
    ("orch stop --system", (False, True)), ("orch kill", (False, False)),
    ("orch result --json", (False, False)), ("orch resume", (False, False)),
    ("orch logs -n 5 -f", (False, False)), ("orch logs --lines=5", (False, False)),
    ("orch wait 1a2b3c4d --any 77776666", (False, False)),
    ("orch kill 1a2b3c4d", None),  # its second argument is the result text
    ("orch resume 1a2b3c4d", None), ("orch logs -n", None), ("orch logs -o", None),
    ("orch ps", None), ("orch spawn", None), ("orch", None), ("orch config get", None),
    ("orch box exec", None), ("orch show 1a2b3c4d", None), ("orch nosuch", None),
    ("orch --host h1 show", None), ("orch show --host h1", None),
    ("orch --label gpu show", None),
    # --after's value is a session too (before, Tab offered nothing there).
    ("orch spawn --after", (False, False)), ("orch spawn --user --after", (True, False)),
    ("orch spawn --after 1a2b3c4d", None),
])
def test_where_a_session_reference_is_being_typed(line: str,
                                                  scope: tuple[bool, bool] | None) -> None:
    assert completion.session_scope(line.split()[1:], "") == scope


def test_an_option_or_a_command_on_another_host_is_not_a_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert completion.session_scope(["show"], "--j") is None
    monkeypatch.setenv("ORCH_HOST", "h1")
    assert completion.session_scope(["show"], "") is None
    monkeypatch.setenv("ORCH_HOST", "local")
    assert completion.session_scope(["show"], "") == (False, False)


def test_records_of_the_scope_chosen_read_without_making_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    user_dir = tmp_path / "orch"
    assert completion.read_records(user=True, system=False) == []
    assert not user_dir.exists()  # the lock and the directory are the writers' to make
    _write_state(user_dir, RECORDS)
    (user_dir / state.LOCK_FILE).unlink()
    before = sorted(p.name for p in user_dir.iterdir())
    assert {r.id for r in completion.read_records(user=True, system=False)} == \
        {r.id for r in RECORDS}
    assert sorted(p.name for p in user_dir.iterdir()) == before
    assert completion.read_records(user=True, system=True) == []  # a usage error: nothing


@pytest.mark.parametrize("inside", [None, "user", "system", "bogus"])
@pytest.mark.parametrize(("user", "system"), [(False, False), (True, False), (False, True)])
def test_the_scope_is_the_one_the_command_would_use(monkeypatch: pytest.MonkeyPatch,
                                                    inside: str | None, user: bool,
                                                    system: bool) -> None:
    """Flags first, then the session's own scope from inside one, then the default; and
    completion reads the state of that scope (one definition: Scope.for_command)."""
    if inside is None:
        monkeypatch.delenv("ORCH_SCOPE", raising=False)
    else:
        monkeypatch.setenv("ORCH_SCOPE", inside)
    expected = (Scope.USER if user else Scope.SYSTEM if system
                else Scope(inside) if inside in ("user", "system") else Scope.default())
    assert Scope.for_command(user, system) is expected
    assert api.current_scope(user, system) is expected


def test_an_unreadable_state_completes_nothing_and_says_nothing(
        isolated_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    isolated_env.mkdir()
    (isolated_env / state.STATE_FILE).write_text("{not json")
    assert completion.read_records(user=False, system=False) == []
    assert capsys.readouterr() == ("", "")


def _complete(orch_bin: Path, tmp_path: Path, env: dict[str, str], code: str = "") -> \
        subprocess.CompletedProcess[str]:
    program = code + "import sys; from orch.cli import main; main(sys.argv[1:])"  # atexit runs
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env={**_shell_env(orch_bin, tmp_path), "PYTHONPATH": str(ROOT),
                               **env}, timeout=60, check=False)


def test_a_session_request_loads_neither_typer_nor_pystemd(
        orch_bin: Path, tmp_path: Path, isolated_env: Path) -> None:
    # typer's import alone costs more than a completion may take (50 ms).
    _write_state(isolated_env, RECORDS)
    code = ("import atexit, sys; atexit.register(lambda: print(sorted(m for m in "
            "('typer', 'click', 'pystemd') if m in sys.modules), file=sys.stderr)); ")
    done = _complete(orch_bin, tmp_path, {"ORCH_STATE_DIR": str(isolated_env),
                                          "_ORCH_COMPLETE": "complete_bash",
                                          "COMP_WORDS": "orch show so", "COMP_CWORD": "2"},
                     code)
    assert done.returncode == 0 and done.stdout.split() == ["solo"]
    assert done.stderr.strip() == "[]"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_session_ids_and_names(orch_bin: Path, tmp_path: Path,
                                              isolated_env: Path) -> None:
    _write_state(isolated_env, RECORDS)
    env = {"ORCH_STATE_DIR": str(isolated_env)}
    assert _bash_complete(orch_bin, tmp_path, ["orch", "show", ""], env) == [
        "77776666", "solo", "99998888", "1a2b3c4d-0000-4000-8000-000000000002",
        "1a2b3c4d-0000-4000-8000-000000000001", "review"]
    assert _bash_complete(orch_bin, tmp_path, ["orch", "kill", "--signal", "KILL", "r"],
                          env) == ["review"]
    assert _bash_complete(orch_bin, tmp_path, ["orch", "wait", "solo", "77"], env) == [
        "77776666"]
    assert _bash_complete(orch_bin, tmp_path, ["orch", "show", "--j"], env) == ["--json"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completes_session_names_with_their_ids(orch_bin: Path, tmp_path: Path,
                                                    isolated_env: Path) -> None:
    _write_state(isolated_env, RECORDS)
    script = tmp_path / "_orch"
    script.write_text(completion.script("zsh"))
    program = (f"compdef() {{ : }}; _arguments() {{ print -r -- \"$@\" }}; source {script}; "
               f"export ORCH_STATE_DIR={isolated_env}; words=(orch stop r); CURRENT=3; "
               "_orch_completion")
    assert _zsh(program, orch_bin, tmp_path).strip() == '*: :(("review":"1a2b3c4d"))'


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_session_names_with_their_ids(orch_bin: Path, tmp_path: Path,
                                                     isolated_env: Path) -> None:
    _write_state(isolated_env, RECORDS)
    script = tmp_path / "orch.fish"
    script.write_text(completion.script("fish"))
    env = {**_shell_env(orch_bin, tmp_path), "ORCH_STATE_DIR": str(isolated_env)}
    done = subprocess.run(["fish", "--no-config", "-c",
                           f"source {script}; complete -C 'orch logs -f s'"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["solo\t77776666"]


def test_words_and_values_the_command_line_names_are_offered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, Tab offered nothing for --restart, a config key or a schedule's name.
    def offered(words: list[str], incomplete: str) -> list[str]:
        request = completion.Request(completion.Shell.BASH, words, incomplete)
        replied = completion_click.fast_reply(request)
        assert replied is not None
        return replied[0].split("\n") if replied[0] else []

    assert offered(["spawn", "--restart"], "") == ["no", "on-failure", "always"]
    assert offered(["spawn", "--tasks-max"], "") == ["infinity"]
    assert offered(["config", "get"], "spawn.m") == ["spawn.max_turns", "spawn.memory_max",
                                                    "spawn.model"]
    config = tmp_path / "config.toml"
    config.write_text('[hosts.gpu1]\naddress = "root@192.0.2.7"\n')
    monkeypatch.setenv("ORCH_CONFIG", str(config))
    assert offered(["config", "unset"], "hosts") == ["hosts.gpu1.address"]  # the file's too
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    units = tmp_path / "xdg" / "systemd" / "user"
    units.mkdir(parents=True)
    for name in ("nightly", "weekly"):
        (units / f"orch-schedule-{name}.service").write_text("")
    monkeypatch.setattr(schedules, "unit_dir", lambda scope: units)
    assert offered(["schedule", "run"], "") == ["nightly", "weekly"]
    assert offered(["schedule", "remove"], "w") == ["weekly"]
    # What only a schedule's timer runs is no word to offer (nor in the help).
    assert offered(["schedule"], "") == ["add", "list", "remove", "run"]
