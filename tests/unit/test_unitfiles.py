"""The unit files orch ships: what they run, when, and that units/ matches the code."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from orch.scope import Scope
from orch.unitfiles import REAP, REAP_TIMER, RECOVER, WEB, WEB_SOCKET, render, write_tree

UNITS = Path(__file__).resolve().parents[2] / "units"
NAMES = {RECOVER, REAP, REAP_TIMER, WEB_SOCKET, WEB}


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _value(text: str, key: str) -> list[str]:
    """Every value of KEY= in TEXT."""
    return [line.split("=", 1)[1] for line in _lines(text) if line.startswith(f"{key}=")]


@pytest.mark.parametrize(("scope", "wanted_by"), [(Scope.SYSTEM, "multi-user.target"),
                                                  (Scope.USER, "default.target")])
def test_recover_unit_is_a_oneshot_enabled_for_boot(scope: Scope, wanted_by: str) -> None:
    text = render(scope, "/opt/orch/bin/orch")[RECOVER]
    assert _value(text, "Type") == ["oneshot"]
    assert _value(text, "ExecStart") == [f"/opt/orch/bin/orch recover --{scope}"]
    assert _value(text, "WantedBy") == [wanted_by]
    assert _lines(text).index("[Install]") > _lines(text).index("[Service]")


@pytest.mark.parametrize("scope", list(Scope))
def test_reap_service_reaps_its_scope(scope: Scope) -> None:
    text = render(scope, "/opt/orch/bin/orch")[REAP]
    assert _value(text, "Type") == ["oneshot"]
    assert _value(text, "ExecStart") == [f"/opt/orch/bin/orch reap --{scope}"]
    assert "[Install]" not in _lines(text)  # started by its timer, not enabled itself


@pytest.mark.parametrize("scope", list(Scope))
def test_reap_timer_fires_daily(scope: Scope) -> None:
    text = render(scope, "/opt/orch/bin/orch")[REAP_TIMER]
    assert _value(text, "OnCalendar") == ["daily"]
    assert _value(text, "Persistent") == ["true"]
    assert _value(text, "WantedBy") == ["timers.target"]


@pytest.mark.parametrize("scope", list(Scope))
def test_the_web_socket_is_its_users_alone_and_starts_serve(scope: Scope) -> None:
    units = render(scope, "/opt/orch/bin/orch")
    socket = units[WEB_SOCKET]
    # %t: /run for the system manager, the user's runtime directory for theirs.
    assert _value(socket, "ListenStream") == ["%t/orch/web.sock"]
    assert _value(socket, "SocketMode") == ["0600"]
    assert _value(socket, "DirectoryMode") == ["0700"]
    assert _value(socket, "RemoveOnStop") == ["yes"]
    assert _value(socket, "WantedBy") == ["sockets.target"]
    service = units[WEB]
    assert _value(service, "ExecStart") == [f"/opt/orch/bin/orch serve --{scope}"]
    assert _value(service, "Requires") == [WEB_SOCKET]
    assert "[Install]" not in _lines(service)  # started by its socket, not enabled


@pytest.mark.parametrize("scope", list(Scope))
def test_state_dir_baked_into_every_service(scope: Scope) -> None:
    units = render(scope, "/usr/bin/orch", "/srv/orch-state")
    for name in (RECOVER, REAP, WEB):
        assert _value(units[name], "Environment") == ["ORCH_STATE_DIR=/srv/orch-state"]
    assert _value(units[REAP_TIMER], "Environment") == []
    configured = render(scope, "/usr/bin/orch", "/srv/orch-state", "/etc/orch/night.toml")
    assert _value(configured[RECOVER], "Environment") == [
        "ORCH_STATE_DIR=/srv/orch-state", "ORCH_CONFIG=/etc/orch/night.toml"]


def test_state_dir_with_spaces_is_quoted_as_one_assignment() -> None:
    units = render(Scope.USER, "/usr/bin/orch", "/srv/orch state")
    [env] = _value(units[RECOVER], "Environment")
    assert env == '"ORCH_STATE_DIR=/srv/orch state"'
    assert shlex.split(env) == ["ORCH_STATE_DIR=/srv/orch state"]


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("state_dir", [None, ""])
def test_no_environment_line_without_a_state_dir(scope: Scope, state_dir: str | None) -> None:
    for text in render(scope, "/usr/bin/orch", state_dir).values():
        assert not any(line.startswith("Environment") for line in _lines(text))


def test_orch_path_with_a_space_stays_one_word() -> None:
    text = render(Scope.USER, "/home/u/My Tools/venv/bin/orch")[RECOVER]
    [command] = _value(text, "ExecStart")
    assert shlex.split(command) == ["/home/u/My Tools/venv/bin/orch", "recover", "--user"]


def test_percent_in_the_state_dir_survives_specifier_expansion() -> None:
    [env] = _value(render(Scope.SYSTEM, "/usr/bin/orch", "/srv/100%full")[RECOVER],
                   "Environment")
    [assignment] = shlex.split(env)
    assert "%" not in assignment.replace("%%", "")  # every % written as %%
    assert assignment.replace("%%", "%") == "ORCH_STATE_DIR=/srv/100%full"


@pytest.mark.parametrize(("scope", "directory"), [(Scope.SYSTEM, UNITS),
                                                  (Scope.USER, UNITS / "user")])
def test_checked_in_units_match_the_code(scope: Scope, directory: Path) -> None:
    rendered = render(scope, "/usr/bin/orch")
    assert set(rendered) == NAMES
    for name, text in rendered.items():
        assert (directory / name).read_text() == text, f"regenerate {directory / name}"


def test_write_tree_writes_exactly_the_shipped_files(tmp_path: Path) -> None:
    write_tree(str(tmp_path))
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written == NAMES | {f"user/{name}" for name in NAMES}
    for path in written:
        assert (tmp_path / path).read_text() == (UNITS / path).read_text()
        assert (tmp_path / path).stat().st_mode & 0o777 == 0o644  # whatever the umask


def test_units_install_refused_a_place_to_write_is_exit_4_and_a_relative_state_dir_1_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # As the README's exit codes say: it was 1, a plain failure. And a relative
    # ORCH_STATE_DIR was written into the units as given.
    from orch import files, unitfiles
    from orch.errors import PermissionDenied, UsageError

    def refused(path: Path, data: bytes, mode: int) -> None:
        raise files.WriteFailed(PermissionError(13, "Permission denied"), path)

    monkeypatch.setattr(unitfiles, "unit_dir", lambda scope: tmp_path)
    monkeypatch.setattr(files, "write_atomically", refused)
    monkeypatch.delenv("ORCH_STATE_DIR", raising=False)
    monkeypatch.delenv("ORCH_CONFIG", raising=False)
    with pytest.raises(PermissionDenied, match="cannot write units"):
        unitfiles.install(Scope.USER)
    monkeypatch.setenv("ORCH_STATE_DIR", "relstate")
    with pytest.raises(UsageError, match="ORCH_STATE_DIR=relstate: expected an absolute"):
        unitfiles.install(Scope.USER)
