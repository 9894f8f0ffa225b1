"""orch.jsontext reads and writes JSON as json.loads and json.dumps do, without loading
json (nor the regular expressions its import compiles)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch import jsontext
from orch.session import Status

ROOT = Path(__file__).resolve().parents[2]

VALUES: list[Any] = [
    {"id": "a", "argv": ["é✓🚀", "tab\tnew\nline", "\u202e", "\ud800"], "n": 3, "f": 0.1,
     "big": 10**40, "neg": -1.5e-7, "none": None, "t": True, "nested": [{"x": [1, {}]}],
     "quote": '"\\/', "control": "\x00\x1f\x7f"},
    {"status": Status.RUNNING, "inf": math.inf, "ninf": -math.inf, 1: "int key",
     2.5: "float key", None: "null key", False: "bool key"},
    [], {}, "just text", "é", 0, -0.0, 1e300, True, None, [[[[]]]],
]

TEXTS = ['{"a": [1, 2.5e3, -0, true, false, null, "x\\u00e9\\ud83d\\ude80"]}',
         '  \n\t [1,2] \r\n', '"\\ud800"', "NaN", "[Infinity, -Infinity]", "12345678901234567890",
         "1.5E-3", '{"a":{"b":{"c":[]}}}', '""', "[]", "{}"]
BAD = ["", "   ", "{", "[1,]", '{"a" 1}', "[1] x", "nul", '"\\x"', '"a\nb"', "01", "\ufeff[]",
       "[1]\n[2]", '{"a": 1,}', "'a'", "[1, 2", "tru", '"\\ud83d\\u"']

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@pytest.mark.parametrize("value", VALUES)
def test_dumps_writes_what_json_dumps_writes(value: Any) -> None:
    assert jsontext.dumps(value) == json.dumps(value)
    assert jsontext.dumps(value, ascii=False) == json.dumps(value, ensure_ascii=False)
    compact = jsontext.encoder(ascii=False, compact=True)
    assert compact(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_value_reads_back_and_writes_as_json_does(value: Any) -> None:
    text = jsontext.dumps(value, ascii=False)
    assert text == json.dumps(value, ensure_ascii=False)
    assert jsontext.loads(text) == json.loads(text) == value
    assert jsontext.loads(text.encode()) == value


@pytest.mark.parametrize("text", TEXTS)
def test_loads_reads_what_json_loads_reads(text: str) -> None:
    expected = json.loads(text)
    for given_text in (text, text.encode(), bytearray(text.encode())):
        found = jsontext.loads(given_text)
        assert repr(found) == repr(expected)  # NaN is not equal to itself; its repr is


def test_loads_reads_utf16_and_a_bom_in_bytes_as_json_does() -> None:
    for raw in ('{"a": "é"}'.encode("utf-16"), b'\xef\xbb\xbf{"a": 1}'):
        assert jsontext.loads(raw) == json.loads(raw)


FRESH_PROBE = """
import sys
from orch import jsontext
found = []
for text in BAD:
    try:
        jsontext.loads(text)
    except ValueError as err:
        found.append(repr(err))
try:
    jsontext.raw_decode('{"a', 0)
except ValueError as err:
    found.append(repr(err))
import json
expected = []
for text in BAD:
    try:
        json.loads(text)
    except ValueError as err:
        expected.append(repr(err))
try:
    json.JSONDecoder().raw_decode('{"a', 0)
except ValueError as err:
    expected.append(repr(err))
print(len(found), found == expected)
"""


def test_bad_text_is_refused_in_json_own_words_before_json_is_loaded() -> None:
    # The C scanner words its errors with json.decoder's class, which it only finds once
    # json is loaded: before, a SystemError ("returned NULL without setting an
    # exception") came out of `orch ps` on a truncated state file.
    bad = ['{"a', *BAD]  # first: an error the scanner words itself
    probe = f"BAD = {bad!r}\n" + FRESH_PROBE
    done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=True)
    assert done.stdout.split() == [str(len(bad) + 1), "True"], done.stderr


def test_raw_decode_words_an_error_as_json_does_before_json_is_loaded() -> None:
    probe = ("from orch import jsontext\ntry:\n    jsontext.raw_decode('[{\"a', 1)\n"
             "except ValueError as err:\n    print(repr(err))\n")
    done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=True)
    with pytest.raises(ValueError) as expected:
        json.JSONDecoder().raw_decode('[{"a', 1)
    assert done.stdout == repr(expected.value) + "\n", done.stderr


@pytest.mark.parametrize(("value", "error"), [
    *((text, ValueError) for text in BAD), (b'{"a": "\xff"}', ValueError),  # bytes, no text
    (None, TypeError), (3, TypeError), (["[]"], TypeError), (memoryview(b"[]"), TypeError)])
def test_what_is_no_json_is_refused_in_json_own_words(value: Any,
                                                      error: type[Exception]) -> None:
    with pytest.raises(error) as expected:
        json.loads(value)
    with pytest.raises(error) as found:
        jsontext.loads(value)
    assert (type(found.value), str(found.value)) == (type(expected.value), str(expected.value))


def test_raw_decode_reads_one_value_where_it_starts() -> None:
    text = 'noise {"a": [1]} {"b": 2}\ntail'
    assert jsontext.raw_decode(text, 6) == json.JSONDecoder().raw_decode(text, 6)
    assert jsontext.raw_decode(text, 17) == ({"b": 2}, 25)
    with pytest.raises(ValueError) as expected:
        json.JSONDecoder().raw_decode("[1,]", 0)
    with pytest.raises(ValueError) as found:
        jsontext.raw_decode("[1,]", 0)
    assert str(found.value) == str(expected.value) == "Expecting value: line 1 column 4 (char 3)"
    with pytest.raises(ValueError, match="Unterminated string"):
        jsontext.raw_decode('{"a', 0)


def test_what_json_cannot_encode_is_refused_as_json_refuses_it() -> None:
    for value in ({"a": {1}}, [object()], {(1, 2): 3}):
        with pytest.raises(TypeError) as expected:
            json.dumps(value)
        with pytest.raises(TypeError) as found:
            jsontext.dumps(value)
        assert str(found.value) == str(expected.value)


def test_pretty_indents_by_two_keeping_text() -> None:
    assert jsontext.pretty({"a": [1], "b": "é"}) == '{\n  "a": [\n    1\n  ],\n  "b": "é"\n}'


def test_a_listing_item_keeps_text_and_escapes_only_what_json_escapes() -> None:
    encode = jsontext.item
    for value in VALUES:
        assert encode(value) == json.dumps(value, ensure_ascii=False)
    assert encode({"a": "a literal \\u00e9"}) == '{"a": "a literal \\\\u00e9"}'


def test_reading_and_writing_loads_no_module_but_the_accelerator() -> None:
    # The point of the module: json's import compiles regular expressions (and loads
    # re), some 5 ms of every command. Without site (-S), whose modules hide others.
    probe = ("import sys\nbefore = set(sys.modules)\nfrom orch import jsontext\n"
             "assert jsontext.loads(b'{\"a\": [1, \"\\\\u00e9\"]}') == {'a': [1, 'é']}\n"
             "assert jsontext.dumps({'a': 'é'}) == '{\"a\": \"\\\\u00e9\"}'\n"
             "print(sorted(set(sys.modules) - before))\n")
    done = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=True)
    loaded = done.stdout.splitlines()
    assert loaded == ["['__future__', '_json', 'orch', 'orch.jsontext']"], done.stderr
