"""The journalctl command that shows a session's output."""

from __future__ import annotations

import os

import pytest

from orch.errors import UsageError
from orch.journal import LogFormat, logs_argv
from orch.session import Record


def _record(scope: str) -> Record:
    return Record(id="33333333-0000-4000-8000-000000000000", name="a b",
                  unit="orch-a\\x20b-33333333.service", scope=scope, argv=["prog"], cwd="/")


def test_matches_the_unit_stem_and_uid_for_user_sessions() -> None:
    argv = logs_argv(_record("user"))
    assert argv[0] == "journalctl"
    assert "SYSLOG_IDENTIFIER=orch-a\\x20b-33333333" in argv
    assert f"_UID={os.geteuid()}" in argv


def test_system_sessions_not_restricted_by_uid() -> None:
    argv = logs_argv(_record("system"))
    assert "SYSLOG_IDENTIFIER=orch-a\\x20b-33333333" in argv
    assert not any(arg.startswith("_UID=") for arg in argv)


def test_options_passed_through() -> None:
    argv = logs_argv(_record("user"), lines=25, follow=True, since="-1h",
                     output=LogFormat.JSON)
    assert argv[argv.index("--lines") + 1] == "25"
    assert argv[argv.index("--since") + 1] == "-1h"
    assert argv[argv.index("--output") + 1] == "json"
    assert "--follow" in argv


def test_defaults_no_lines_no_follow_short_output() -> None:
    argv = logs_argv(_record("user"))
    assert "--follow" not in argv and "--lines" not in argv and "--since" not in argv
    # short is rendered by orch from JSON, with a line where each invocation starts
    assert argv[argv.index("--output") + 1] == "json"


def test_zero_lines_allowed() -> None:
    argv = logs_argv(_record("user"), lines=0)
    assert argv[argv.index("--lines") + 1] == "0"


def test_negative_lines_refused() -> None:
    with pytest.raises(UsageError) as caught:
        logs_argv(_record("user"), lines=-1)
    assert caught.value.exit_code == 2
