"""Session specs: what is refused, how the program is found, and the unit's properties."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from orch.errors import UsageError
from orch.scope import Scope
from orch.settings import SPAWN_SETTINGS
from orch.spec import (
    MAX_ARG_BYTES,
    Restart,
    SessionSpec,
    SpawnOptions,
    after_dir,
    description,
    parse_env,
    properties,
    validate,
)

SID = "5a5a5a5a-1111-4222-8333-444444444444"


def _executable(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_validate_accepts_an_ordinary_spec() -> None:
    validate(SessionSpec(argv=["prog", "a b", ""], name="x" * 128, description="d",
                         tags=["t" * 64, "night run"], env={"_A1": "x\ny", "b": ""}))


@pytest.mark.parametrize("spec", [
    SessionSpec(argv=[]),
    SessionSpec(argv=[""]),
    SessionSpec(argv=["prog", "a\x00b"]),
    SessionSpec(argv=["pr\x00og"]),
    SessionSpec(argv=["prog"], env={"A": "1\x002"}),
    SessionSpec(argv=["prog"], description="a\x00b"),
    # Before, accepted: `orch show` printed a forged "Status:" line under its own.
    SessionSpec(argv=["prog"], description="ok\n    Status: exited (exit code 0)"),
    SessionSpec(argv=["prog"], env={"1X": "1"}),
    SessionSpec(argv=["prog"], env={"A-B": "1"}),
    SessionSpec(argv=["prog"], env={"": "1"}),
    SessionSpec(argv=["prog"], env={"A B": "1"}),
    SessionSpec(argv=["prog"], env={"ORCH_SESSION_ID": "x"}),
    SessionSpec(argv=["prog"], env={"ORCH_UNIT": "x"}),
    SessionSpec(argv=["prog"], env={"ORCH_SCOPE": "x"}),
    SessionSpec(argv=["prog"], name=""),
    SessionSpec(argv=["prog"], name="a\tb"),
    SessionSpec(argv=["prog"], name="a\x7f"),
    SessionSpec(argv=["prog"], name="x" * 129),
    SessionSpec(argv=["prog"], name=" "),  # a blank NAME cell
    SessionSpec(argv=["prog"], name="self"),  # `orch show self` names the caller
    SessionSpec(argv=["prog"], tags=["a,b"]),
    SessionSpec(argv=["prog"], tags=[""]),
    SessionSpec(argv=["prog"], tags=["t" * 65]),
    SessionSpec(argv=["prog"], tags=["a\nb"]),
], ids=lambda spec: repr(spec)[:60])
def test_validate_refuses(spec: SessionSpec) -> None:
    with pytest.raises(UsageError) as caught:
        validate(spec)
    assert caught.value.exit_code == 2


def test_validate_refuses_env_name_with_trailing_newline() -> None:
    with pytest.raises(UsageError):
        validate(SessionSpec(argv=["prog"], env={"A\n": "1"}))


def test_validate_refuses_what_execve_cannot_pass_and_no_less() -> None:
    most = MAX_ARG_BYTES
    validate(SessionSpec(argv=["prog", "x" * most], env={"A": "x" * (most - 2)}))
    for spec in (SessionSpec(argv=["prog", "x" * (most + 1)]),
                 SessionSpec(argv=["prog", "é" * (most // 2 + 1)]),  # bytes, not characters
                 SessionSpec(argv=["prog"], env={"A": "x" * (most - 1)})):  # with "A="
        with pytest.raises(UsageError, match=f"at most {most} in one argument"):
            validate(spec)


def test_validate_refuses_text_that_is_not_utf8() -> None:
    with pytest.raises(UsageError):
        validate(SessionSpec(argv=["prog", "caf\udce9"]))


def test_parse_env() -> None:
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}


def test_parse_env_last_assignment_wins() -> None:
    assert parse_env(["A=1", "A=2"]) == {"A": "2"}


def test_parse_env_refuses_missing_equals() -> None:
    with pytest.raises(UsageError) as caught:
        parse_env(["A=1", "NOEQ"])
    assert "NOEQ" in caught.value.message


def test_label_prefers_name_then_program_basename() -> None:
    assert SessionSpec(argv=["/usr/bin/claude"], name="rev").label() == "rev"
    assert SessionSpec(argv=["/usr/bin/claude"]).label() == "claude"
    assert SessionSpec(argv=["/usr/bin/"]).label() == "session"


NASTY_ARGV = ["prog", "$(rm -rf /)", "`id`", "a; b", "'quoted'", '"dq"', "line1\nline2",
              "", " lead", "*", "\\x20"]


def _props(spec: SessionSpec, state_dir: Path) -> dict[str, tuple[str, Any]]:
    props = properties(spec, session_id=SID, unit="orch-prog-5a5a5a5a.service",
                       scope=Scope.USER, program="/usr/bin/prog", cwd="/srv",
                       path="/usr/bin:/bin", state_dir=state_dir)
    names = [name for name, _, _ in props]
    assert len(names) == len(set(names))
    return {name: (signature, value) for name, signature, value in props}


def test_properties_exec_start_is_argv_verbatim(tmp_path: Path) -> None:
    props = _props(SessionSpec(argv=list(NASTY_ARGV)), tmp_path)
    # systemd expands $VAR in ExecStart arguments; "$$" is its literal dollar
    literal = [arg.replace("$", "$$") for arg in NASTY_ARGV]
    assert props["ExecStart"] == ("a(sasb)", [("/usr/bin/prog", literal, False)])
    assert any("$" in arg for arg in NASTY_ARGV)
    assert props["Type"] == ("s", "exec")
    # Its end is recorded if it is removed meanwhile: the exit hook runs in it too.
    assert props["WorkingDirectory"] == ("s", "-/srv")


def test_properties_environment(tmp_path: Path, isolated_env: Path) -> None:
    spec = SessionSpec(argv=["prog"], env={"API": "a=b", "EMPTY": ""})
    signature, env = _props(spec, tmp_path)["Environment"]
    assert signature == "as"
    assert {"API=a=b", "EMPTY=", f"ORCH_SESSION_ID={SID}", "ORCH_UNIT=orch-prog-5a5a5a5a.service",
            "ORCH_SCOPE=user", "PATH=/usr/bin:/bin", f"ORCH_STATE_DIR={isolated_env}"} <= set(env)
    names = [item.partition("=")[0] for item in env]
    assert len(names) == len(set(names))


def test_properties_user_env_cannot_override_orch_variables(tmp_path: Path) -> None:
    # validate refuses these; properties must still not let them through if called directly.
    spec = SessionSpec(argv=["prog"], env={"ORCH_SESSION_ID": "forged"})
    _, env = _props(spec, tmp_path)["Environment"]
    assert f"ORCH_SESSION_ID={SID}" in env
    assert "ORCH_SESSION_ID=forged" not in env


def test_properties_identity_and_exit_hook(tmp_path: Path) -> None:
    props = _props(SessionSpec(argv=["prog"]), tmp_path / "state")
    assert props["SyslogIdentifier"] == ("s", "orch-prog-5a5a5a5a")
    assert str(SID) in props["Description"][1]
    signature, [(path, hook_argv, ignore_failure)] = props["ExecStopPost"]
    assert signature == "a(sasb)"
    # The hook records into the state dir and drops --after markers in the runtime dir.
    assert hook_argv[-2:] == [str(tmp_path / "state"), str(after_dir(Scope.USER))]
    assert path == hook_argv[0] == sys.executable
    assert hook_argv[2].endswith("orch/exithook.py")
    # systemd 252 rewrites ';' and '$' lossily on daemon-reload: the hook has neither
    assert not any(c in arg for arg in hook_argv for c in ";$")
    assert ignore_failure is True


def test_description_flattens_control_characters_and_is_bounded() -> None:
    text = description(SID, SessionSpec(argv=["prog", "a\nb" + "x" * 500]))
    assert text.startswith(f"orch session {SID}: ")
    assert "\n" not in text
    assert len(text) <= len(f"orch session {SID}: ") + 200


def test_description_prefers_the_given_description() -> None:
    assert description(SID, SessionSpec(argv=["prog"], description="nightly")) == (
        f"orch session {SID}: nightly")


def test_each_settings_unit_property_is_the_one_it_becomes() -> None:
    """The property a setting's help names is the one its option sets (over D-Bus, a time
    is in microseconds: RuntimeMaxSec= is RuntimeMaxUSec, CPUQuota= CPUQuotaPerSecUSec)."""
    options = SpawnOptions(timeout_sec=5.0, memory_max=1024, cpu_quota=50, tasks_max=9,
                           nice=4, restart=Restart.ALWAYS)
    fields = {"timeout": "timeout_sec"}
    names = [name for name, _, _ in options.properties(Scope.USER, "/")]
    for key, setting in SPAWN_SETTINGS.items():
        if setting.unit_property is None:
            continue
        stem = setting.unit_property.removesuffix("=").removesuffix("Sec")
        made = [n for n in names if n.startswith(stem)]
        assert made, key
        field = fields.get(key, key)
        unset = dataclasses.replace(options, **{field: getattr(SpawnOptions(), field)})
        assert not [p for p in unset.properties(Scope.USER, "/") if p[0] in made], key
