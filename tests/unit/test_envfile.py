"""--env-file: read exactly as systemd's EnvironmentFile= reads it, refused in one line
where systemd would drop or guess, and written back for the manager without a change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch import secrets
from orch.errors import UsageError
from orch.scope import Scope
from orch.secrets import parse_env_file
from orch.spec import is_env_name
from tests.envfiles import CASES, ENV_FILES, REFUSED


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "keys.env"
    path.write_text(text, newline="")
    return str(path)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(t)[:40] for t, _ in CASES])
def test_env_file_reads_as_systemd_reads_it(tmp_path: Path, text: str,
                                            expected: dict[str, str]) -> None:
    assert parse_env_file(_file(tmp_path, text)) == expected


@pytest.mark.parametrize(("text", "line", "why"), REFUSED, ids=[repr(t)[:40] for t, *_ in REFUSED])
def test_what_systemd_would_skip_or_guess_is_refused_in_one_line(
        tmp_path: Path, text: str, line: int, why: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(UsageError) as err:
        parse_env_file(path)
    assert err.value.message.startswith(f"{path}:{line}: {why}")
    assert "\n" not in err.value.message and err.value.exit_code == 2


@given(ENV_FILES)
def test_any_file_is_read_or_refused_in_one_line(text: str) -> None:
    try:
        values = secrets.parse_env_text(text)
    except secrets._Refused as err:
        assert "\n" not in err.why and 1 <= err.line <= text.count("\n") + 1
    else:
        assert all(is_env_name(name) for name in values)


_VALUES = st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
                          st.text(st.characters(codec="utf-8", exclude_characters="\x00")),
                          max_size=6)


@given(_VALUES)
def test_the_file_orch_writes_for_the_manager_gives_back_every_value(
        tmp_path_factory: pytest.TempPathFactory, values: dict[str, str]) -> None:
    # Newlines, quotes, backslashes, $, `, #, leading and trailing spaces: all verbatim.
    runtime = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(runtime))
        path = secrets.write(Scope.USER, "s1", values)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert parse_env_file(str(path)) == values


@pytest.mark.parametrize("value", ['x\\"y', "a\nb", " lead", "trail ", "#x", "$HOME", "a\\",
                                   "'q'", "\r", "\\\n", "`id`"])
def test_hard_values_survive_the_round_trip(tmp_path: Path, value: str) -> None:
    assert secrets.parse_env_text(f"EF={secrets._quoted(value)}\n") == {"EF": value}


def test_a_secret_variable_that_is_not_utf8_is_refused() -> None:
    undecodable = b"\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(UsageError, match=r"^secret variable TOKEN is not UTF-8 text$"):
        secrets.from_environment(["TOKEN"], {"TOKEN": undecodable})


def test_what_is_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    # systemd reads the file again at every start: a FIFO would have orch (and an API
    # request) wait for a writer, /dev/zero fill the memory.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, why in ((str(fifo), "not a regular file"), ("/dev/zero", "not a regular file"),
                      (str(tmp_path), "Is a directory")):
        with pytest.raises(UsageError) as err:
            parse_env_file(path)
        assert err.value.message == f"--env-file {path}: {why}"


def test_a_file_given_to_read_is_read_no_further_than_its_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from orch import spec

    monkeypatch.setattr(spec, "TEXT_FILE_MAX", 1 << 20)
    with pytest.raises(UsageError) as err:
        spec.read_text_arg("/dev/zero", "--file")  # endless: refused after 1 MiB
    assert err.value.message == "--file /dev/zero: larger than 1 MiB"


def test_a_file_given_to_read_keeps_its_newlines_as_open_would(tmp_path: Path) -> None:
    from orch import spec

    path = tmp_path / "message"
    path.write_bytes("one\r\ntwo\rthree\nfour €".encode())
    assert spec.read_text_arg(str(path), "--file") == "one\ntwo\nthree\nfour €"
    assert spec.read_text_arg(str(path), "--file", newline="") == "one\r\ntwo\rthree\nfour €"


@pytest.mark.parametrize("name", ["ORCH_SESSION_ID", "ORCH_UNIT", "ORCH_SCOPE"])
def test_an_env_file_may_not_set_what_orch_sets(tmp_path: Path, name: str) -> None:
    # The manager reads it after orch's own values: an env file dumped inside another
    # session made `orch kill self` kill that one. --env refuses them; so does a file.
    path = tmp_path / "dumped.env"
    path.write_text(f"OTHER=1\n{name}=c9350263-c3d5-415e-b281-a24d946c6c30\n")
    with pytest.raises(UsageError) as err:
        parse_env_file(str(path))
    assert err.value.message == f"--env-file {path}: {name}: orch sets this variable itself"
