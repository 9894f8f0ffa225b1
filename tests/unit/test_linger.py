"""The lingering warning of a user-scope spawn: one line when logind says no, nothing
when it says yes or cannot be asked (tests/integration/test_linger.py asks a real one)."""

from __future__ import annotations

import os
import pwd

import pytest

from orch import commands, systemd


def test_no_answer_where_there_is_no_system_bus(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: os.PathLike[str]) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    assert systemd.lingering(os.geteuid()) is None


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

    monkeypatch.setattr(systemd, "lingering", lingering)
    commands._warn_without_lingering(persistent)
    user = pwd.getpwuid(os.geteuid()).pw_name
    out, err = capsys.readouterr()
    assert asked == [os.geteuid()] and out == ""
    if said is None:
        assert err == ""
    else:
        assert err == f"orch: warning: lingering is off for {user}: " + said.format(u=user)
