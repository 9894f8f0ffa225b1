"""What reaches a terminal of others' text: control characters shown, never run."""

from __future__ import annotations

from orch.visible import MULTILINE, visible


def test_control_characters_are_shown_escaped_and_nothing_else_changes() -> None:
    assert visible("plain é 漢字") == "plain é 漢字"
    assert visible("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert visible("csi \x9b31m") == "csi \\x9b31m"  # a C1 control, as one byte would be
    assert visible("tag \U000e0001 end") == "tag \\U000e0001 end"  # not \ue000 then "1"
    assert visible("one\ntwo\tthree") == "one\\ntwo\\tthree"
    assert visible("one\ntwo\tthree", MULTILINE) == "one\ntwo\tthree"


def test_a_transcripts_event_keys_are_shown_too() -> None:
    import json

    from orch.results import ResultFormat
    from orch.transcript import Transcript

    odd = {"type": "novel", "k\x9bey": "v\x1bal"}  # an event of no shape foreseen
    shown = Transcript(ResultFormat.CLAUDE_STREAM_JSON).feed(json.dumps(odd))
    assert not any(c in "".join(shown) for c in "\x9b\x1b")
