"""Unit names: valid for systemd whatever the label, escaped by systemd's rules."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch.units import (
    MAX_UNIT_NAME,
    escape_label,
    is_orch_unit,
    label_of,
    object_path,
    syslog_identifier,
    unescape_label,
    unit_name,
)

VALID_UNIT = re.compile(r"^[A-Za-z0-9:_.\\-]+\.service$")
BROKEN_ESCAPE = re.compile(r"\\(?!x[0-9a-f]{2})")
SID = "1a2b3c4d-0000-4000-8000-00000000abcd"

# Labels as users and argv[0] produce them, plus the nasty ones: separators, escapes,
# control characters, multi-byte UTF-8 and strings far past the name limit.
nasty = st.sampled_from(["/", "@", " ", "\\", "\\x2f", ".", "-", "\x00", "\n", "\x7f",
                         "é", "日本", "😀", "a", "Z", "9", ":", "_"])
labels = st.one_of(
    st.text(max_size=40),
    st.lists(nasty, max_size=150).map("".join),
    st.text(min_size=240, max_size=700),
    st.text(alphabet="é😀\\/", min_size=50, max_size=300),
)
uuids = st.uuids().map(str)


@given(label=labels, session_id=uuids)
def test_unit_name_is_a_valid_service_name_for_any_label(label: str,
                                                         session_id: str) -> None:
    name = unit_name(label, session_id)
    assert VALID_UNIT.match(name), name
    assert len(name) <= MAX_UNIT_NAME
    assert name.startswith("orch-")
    assert name.endswith(f"-{uuid.UUID(session_id).hex[:8]}.service")
    assert not name.removeprefix("orch-").startswith(".")
    assert BROKEN_ESCAPE.search(name) is None, name
    assert is_orch_unit(name)


@given(label=labels, session_id=uuids)
def test_unit_name_label_is_a_prefix_of_the_full_escape(label: str,
                                                        session_id: str) -> None:
    stem = unit_name(label, session_id).removeprefix("orch-")
    escaped_part = stem[: -len("-12345678.service")]
    assert escape_label(label).startswith(escaped_part) or escaped_part == "session"


def test_unit_name_readable_label_kept_verbatim() -> None:
    assert unit_name("code-reviewer", SID) == "orch-code-reviewer-1a2b3c4d.service"


def test_unit_name_empty_label_falls_back_to_session() -> None:
    assert unit_name("", SID) == "orch-session-1a2b3c4d.service"


def test_unit_name_long_label_cut_to_exactly_the_limit() -> None:
    name = unit_name("a" * 1000, SID)
    assert len(name) == MAX_UNIT_NAME
    assert name.endswith("a-1a2b3c4d.service")


@pytest.mark.parametrize(("count", "kept_escape"), [
    (229, "\\x2f"),  # the room (233) ends exactly after a whole \x2f: kept
    (230, ""),  # the cut would keep "\x2": the partial escape is dropped
    (231, ""),  # ... "\x"
    (232, ""),  # ... "\"
])
def test_unit_name_never_ends_label_inside_an_escape(count: int, kept_escape: str) -> None:
    name = unit_name("a" * count + "/" * 20, SID)
    assert name == f"orch-{'a' * count}{kept_escape}-1a2b3c4d.service"


@pytest.mark.parametrize(("label", "escaped"), [
    ("Az09:_.-", "Az09:_.-"),
    ("a b", "a\\x20b"),
    ("a/b", "a\\x2fb"),
    ("a@b", "a\\x40b"),
    (".hidden", "\\x2ehidden"),
    ("a.b.", "a.b."),
    ("a\\b", "a\\x5cb"),
    ("é", "\\xc3\\xa9"),
    ("😀", "\\xf0\\x9f\\x98\\x80"),
    ("\n", "\\x0a"),
])
def test_escape_label(label: str, escaped: str) -> None:
    assert escape_label(label) == escaped


def test_object_path_matches_systemd() -> None:
    # Read from a real systemd (busctl tree org.freedesktop.systemd1).
    assert object_path("orch-exp.service") == (
        b"/org/freedesktop/systemd1/unit/orch_2dexp_2eservice")


def test_object_path_escapes_leading_digit_only() -> None:
    assert object_path("1a1.service") == b"/org/freedesktop/systemd1/unit/_31a1_2eservice"


def test_object_path_escapes_underscore_backslash_and_non_ascii() -> None:
    assert object_path("a_b\\é") == b"/org/freedesktop/systemd1/unit/a_5fb_5c_c3_a9"


@given(name=st.text(min_size=1, max_size=60))
def test_object_path_uses_only_bus_path_characters(name: str) -> None:
    path = object_path(name)
    assert re.fullmatch(rb"/org/freedesktop/systemd1/unit/[A-Za-z0-9_]+", path)


@pytest.mark.parametrize("name", [
    "sshd.service",
    "orch-x.service",
    "orch-x-1A2B3C4D.service",
    "orch-x-1a2b3c4d.scope",
    "xorch-x-1a2b3c4d.service",
    "orch-x-1a2b3c4.service",
])
def test_is_orch_unit_false_for_other_units(name: str) -> None:
    assert not is_orch_unit(name)


def test_syslog_identifier_is_the_stem() -> None:
    assert syslog_identifier("orch-a\\x20b-1a2b3c4d.service") == "orch-a\\x20b-1a2b3c4d"


@pytest.mark.parametrize(("unit", "label"), [
    ("orch-my\\x20agent-1a2b3c4d.service", "my agent"),
    ("orch-code-reviewer-1a2b3c4d.service", "code-reviewer"),
    ("orch-\\x2ehidden-1a2b3c4d.service", ".hidden"),
    ("orch-caf\\xc3\\xa9-1a2b3c4d.service", "café"),
    ("orch-back\\x5cx41slash-1a2b3c4d.service", "back\\x41slash"),
])
def test_label_is_the_unescaped_readable_part(unit: str, label: str) -> None:
    assert label_of(unit) == label


@given(st.text(st.characters(codec="utf-8"), min_size=1, max_size=14))
def test_label_undoes_unit_name(label: str) -> None:
    unit = unit_name(label, SID)
    assert label_of(unit) == label


@given(st.text(st.characters(codec="utf-8"), max_size=40))
def test_unescape_label_undoes_escape_label(label: str) -> None:
    assert unescape_label(escape_label(label)) == label

