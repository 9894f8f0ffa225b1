"""The lingering warning of a user-scope spawn: one line when logind says no, nothing
when it says yes or cannot be asked (tests/integration/test_linger.py asks a real one).
logind's answer is its marker file of the user, read where logind keeps it."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from orch import linger as logind
from orch import spawn_warnings


def _logind(monkeypatch: pytest.MonkeyPatch, root: Path, *, running: bool = True,
            lingering: bool = False) -> Path:
    """A logind's directories under ROOT: its seats if RUNNING, and the caller's linger
    marker if LINGERING."""
    seats, linger = root / "run-systemd-seats", root / "linger"
    if running:
        seats.mkdir()
    if lingering:
        linger.mkdir()
        (linger / pwd.getpwuid(os.geteuid()).pw_name).touch()
    monkeypatch.setattr(logind, "LOGIND_SEATS_DIR", str(seats))
    monkeypatch.setattr(logind, "LINGER_DIR", str(linger))
    return linger


def test_lingering_is_loginds_marker_of_the_user(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    _logind(monkeypatch, tmp_path, lingering=True)
    assert logind.lingering(os.geteuid()) is True


def test_no_marker_is_no_lingering(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    linger = _logind(monkeypatch, tmp_path)
    assert logind.lingering(os.geteuid()) is False  # no directory: nobody lingers
    linger.mkdir()
    (linger / "someone-else").touch()
    assert logind.lingering(os.geteuid()) is False


def test_no_answer_where_there_is_no_logind(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    _logind(monkeypatch, tmp_path, running=False, lingering=True)
    assert logind.lingering(os.geteuid()) is None


def test_no_answer_where_the_marker_cannot_be_looked_up(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    linger = _logind(monkeypatch, tmp_path)
    linger.write_text("")  # not a directory: ENOTDIR, neither yes nor no
    assert logind.lingering(os.geteuid()) is None


def test_no_answer_for_a_name_logind_would_escape(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    _logind(monkeypatch, tmp_path, lingering=True)
    entry = list(pwd.getpwuid(os.geteuid()))
    entry[0] = "a\\b"
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: pwd.struct_passwd(entry))
    assert logind.lingering(os.geteuid()) is None


def test_a_user_without_a_name_does_not_linger(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    _logind(monkeypatch, tmp_path)

    def unknown(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    assert logind.lingering(os.geteuid()) is False


@pytest.mark.parametrize(("answer", "persistent", "said"), [
    (False, False, "the session ends when {u}'s last login session ends; keep it running "
                   "with: loginctl enable-linger {u}\n"),
    (False, True, "the session ends when {u}'s last login session ends; after a reboot this "
                  "--persistent session comes back only when {u} logs in; keep it running "
                  "with: loginctl enable-linger {u}\n"),
    (True, True, None),
    (None, True, None),  # no logind to ask: no false alarm
])
def test_one_line_only_when_logind_says_no(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           answer: bool | None, persistent: bool,
                                           said: str | None) -> None:
    asked: list[int] = []

    def lingering(uid: int) -> bool | None:
        asked.append(uid)
        return answer

    monkeypatch.setattr(logind, "lingering", lingering)
    lines = spawn_warnings.without_lingering(persistent)
    user = pwd.getpwuid(os.geteuid()).pw_name
    out, err = capsys.readouterr()
    assert asked == [os.geteuid()] and out == err == ""  # said by its caller
    if said is None:
        assert lines == []
    else:
        assert lines == [f"orch: warning: lingering is off for {user}: "
                         + said.format(u=user).rstrip("\n")]
