"""`--json` output: a list is one item a line, each item as json.dumps writes it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from orch import commands
from orch.session import Status

ITEMS = [
    {"id": "a", "status": Status.RUNNING, "argv": ["é✓🚀", "tab\tnew\nline", "\u202e"],
     "n": 3, "f": 0.1, "big": 10**20, "neg": -1.5e-7, "none": None, "t": True,
     "nested": [{"x": [1, {"y": "z"}]}, {}], "empty": [], "quote": '"\\'},
    {"id": "b", "status": Status.EXITED, "inf": math.inf},
    {},
    {"ascii": "a literal \\u00e9 and \\\\u", "control": "\x01\x1f\x7f"},
    {"only": "é"},
]


def test_a_list_is_one_item_a_line_as_json_writes_each(
        capsys: pytest.CaptureFixture[str]) -> None:
    commands.emit_json(ITEMS)
    out = capsys.readouterr().out
    lines = out.split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""]
    assert lines[1:-2] == ["  " + json.dumps(item, ensure_ascii=False)
                           + ("," if i < len(ITEMS) - 1 else "")
                           for i, item in enumerate(ITEMS)]
    assert json.loads(out) == json.loads(json.dumps(ITEMS))


def test_an_empty_list_and_an_object(capsys: pytest.CaptureFixture[str]) -> None:
    commands.emit_json([])
    commands.emit_json({"a": [1], "b": "é"})
    assert capsys.readouterr().out == '[]\n{\n  "a": [\n    1\n  ],\n  "b": "é"\n}\n'


def test_what_json_cannot_encode_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        commands.emit_json([{"a": {1}}])


def test_a_long_list_is_written_a_batch_at_a_time_as_the_same_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A thousand sessions are a megabyte: written whole, it was made three times over.
    items = [{"n": i, "s": "é" * (i % 7)} for i in range(50)] + ITEMS
    writes: list[str] = []

    class Recorder:
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(commands.sys, "stdout", Recorder())
    monkeypatch.setattr(commands, "_BATCH_CHARS", 64)
    commands.emit_json(items)
    assert len(writes) > 10 and max(map(len, writes)) < 64 + 200
    assert "".join(writes) == "[\n" + ",\n".join(
        "  " + json.dumps(item, ensure_ascii=False) for item in items) + "\n]\n"


def test_the_items_of_an_iterator_are_written_as_those_of_a_list(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # `ps --json` writes sessions as they are made, never holding them all.
    items = [{"n": i, "s": "é" * (i % 7)} for i in range(50)] + ITEMS
    monkeypatch.setattr(commands, "_BATCH_CHARS", 64)  # some batches written already
    commands.emit_json(items)
    as_list = capsys.readouterr().out
    made: list[int] = []

    def one_at_a_time() -> Iterator[dict[str, Any]]:
        for item in items:
            made.append(len(made))
            yield item
    commands.emit_json(one_at_a_time())
    assert capsys.readouterr().out == as_list and len(made) == len(items)
    commands.emit_json(iter([]))
    commands.emit_json(iter([{}]))
    assert capsys.readouterr().out == "[]\n[\n  {}\n]\n"


def test_an_iterator_that_fails_midway_writes_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Before, `ps --json` whose listing failed after 32K of it left half a list on stdout.
    monkeypatch.setattr(commands, "_BATCH_CHARS", 64)

    def failing() -> Iterator[dict[str, Any]]:
        for n in range(50):
            yield {"n": n, "s": "x" * 40}
        raise RuntimeError("the manager went away")
    with pytest.raises(RuntimeError, match="went away"):
        commands.emit_json(failing())
    assert capsys.readouterr().out == ""
