"""Hostile input through the real CLI and the library: names, tags, descriptions,
environment keys and values, argv with newlines, control characters, a NUL byte, a 1 MB
argument, bytes that are not UTF-8, unicode. Each is accepted and arrives verbatim, or
is refused with one line; never a traceback, an invalid or colliding unit name, or a
shell."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import ORCH, PYTHON, Orch

# What the session runs: it writes its argv and the environment it was given as JSON.
DUMP = ("import json, os, sys; json.dump({'argv': sys.argv[2:], 'env': dict(os.environ)}, "
        "open(sys.argv[1], 'w'))")
# systemd's unit-name grammar (unit_name_is_valid): these characters, at most 255 of them.
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]{1,247}\.service")
# execve cannot carry a NUL in argv, nor can a str with a lone surrogate become bytes
# (bytes that are not UTF-8 are tried below, as bytes).
NO_NUL = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
TEXT = st.text(NO_NUL, max_size=40) | st.sampled_from(
    ["", "\n", "a\nb", "\t\r\x1b[31m", "$(touch /tmp/pwned)", "`id`; rm -rf ~", "'\"", "*",
     "-", "--", "../..", "é✓🚀", "\u202e\u200b", "%s%n", "$HOME", "${PATH}", "\\x2d"])
# (No "=" in a key: --env KEY=VALUE splits at the first one, so none could be asked for.)
ENV_KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True) | st.sampled_from(
    ["", "1X", "A B", "A-B", "A\n", "ORCH_UNIT", "ORCH_SESSION_ID", "é"])
NAME = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=40) | TEXT
TAG = st.text(st.characters(exclude_categories=["Cc", "Cs"], exclude_characters=","),
              min_size=1, max_size=20) | TEXT


def _one_line_refusal(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("orch: "), done.stderr


def test_hostile_spawn_arguments_arrive_verbatim_or_are_refused(user_orch: Orch) -> None:
    units: set[str] = set()
    refused: list[str] = []
    out_dir = user_orch.state_dir.parent

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(name=NAME, tags=st.lists(TAG, max_size=3), description=TEXT,
           env=st.dictionaries(ENV_KEY, TEXT, max_size=2), args=st.lists(TEXT, max_size=4))
    def spawn_one(name: str, tags: list[str], description: str, env: dict[str, str],
                  args: list[str]) -> None:
        out = str(out_dir / f"dump-{uuid.uuid4().hex}")
        options = ["--name", name, "--description", description]
        options += [a for tag in tags for a in ("--tag", tag)]
        options += [a for item in env.items() for a in ("--env", "=".join(item))]
        done = user_orch("spawn", *options, "--", PYTHON, "-c", DUMP, out, *args)
        if done.returncode != 0:
            assert done.returncode == 2, done.stderr
            _one_line_refusal(done)
            refused.append(done.stderr)
            return
        assert done.stderr == ""
        sid = done.stdout.strip()
        assert user_orch("wait", sid).returncode == 0
        shown = user_orch.show(sid)
        assert UNIT_NAME.fullmatch(shown["unit"]), shown["unit"]
        assert shown["unit"] not in units
        units.add(shown["unit"])
        assert (shown["name"], shown["tags"], shown["description"]) == \
            (name, tags, description)
        dumped = json.loads(Path(out).read_text())
        assert dumped["argv"] == args
        assert {k: dumped["env"].get(k) for k in env} == env

    spawn_one()
    print(f"hostile spawns: {len(units)} accepted verbatim, {len(refused)} refused in one line")
    assert len(units) >= 5  # the strategies reach past the refusals


LIBRARY = """
import json, sys
import orch
from orch.errors import OrchError
case = json.load(sys.stdin)
try:
    session = orch.spawn(**case)
except OrchError as err:
    print(json.dumps({"refused": str(err)}))
else:
    print(json.dumps({"accepted": session.id}))
"""


def test_what_no_command_line_can_carry_is_refused_through_the_library(
        user_orch: Orch) -> None:
    cases = {
        "a NUL in an argument": {"argv": ["/bin/echo", "a\x00b"]},
        "a NUL in a name": {"argv": ["/bin/true"], "name": "a\x00b"},
        "a NUL in a tag": {"argv": ["/bin/true"], "tags": ["a\x00"]},
        "a NUL in a description": {"argv": ["/bin/true"], "description": "a\x00b"},
        "a NUL in an env value": {"argv": ["/bin/true"], "env": {"A": "a\x00b"}},
        "a NUL in an env key": {"argv": ["/bin/true"], "env": {"A\x00": "b"}},
        "a 1 MB argument": {"argv": ["/bin/echo", "x" * (1 << 20)]},
        "a 1 MB env value": {"argv": ["/bin/true"], "env": {"PROMPT": "x" * (1 << 20)}},
    }
    for what, case in cases.items():
        done = user_orch.machine.run([PYTHON, "-c", LIBRARY], user=user_orch.user,
                                     env=user_orch.env, input=json.dumps(case))
        assert done.returncode == 0 and "Traceback" not in done.stderr, (what, done.stderr)
        answer = json.loads(done.stdout)
        assert "refused" in answer, (what, answer)
        assert "\n" not in answer["refused"], what
    assert user_orch.records() == []


def test_arguments_that_are_not_utf8_are_refused_in_one_line(user_orch: Orch) -> None:
    command = [*user_orch.machine.prefix, "runuser", "-u", str(user_orch.user), "--", "env",
               *[f"{k}={v}" for k, v in user_orch.env.items()]]
    for bad in ([ORCH, "spawn", "--", "/bin/echo", b"\xff\xfe"],
                [ORCH, "spawn", "--name", b"caf\xe9", "--", "/bin/true"],
                [ORCH, "spawn", "--env", b"A=\xff", "--", "/bin/true"]):
        argv = [a if isinstance(a, bytes) else a.encode() for a in [*command, *bad]]
        done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        stderr = done.stderr.decode("utf-8", "replace")
        assert done.returncode == 2, stderr
        assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert user_orch.records() == []
