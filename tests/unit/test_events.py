"""The event log's rotation: the log stays bounded, a reader sees both files as one, and
a follower or a resumed position crosses a rotation without losing or repeating an
event, with writers appending all along."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from orch import events
from orch.events import Event, Position
from tests.waiting import wait_for


def _event(n: int, who: str = "s") -> Event:
    return Event(f"2026-12-06T12:00:00.{n:06d}+00:00", f"{who}{n:03d}", "job", "spawned",
                 "starting")


# Every event of these tests takes as many bytes as this one (ids of three digits).
LINE = len(json.dumps(_event(0).to_json(), separators=(",", ":")).encode()) + 1


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> int:
    """Files of ten events."""
    monkeypatch.setattr(events, "ROTATE_AT", 10 * LINE)
    return 10


def _ids(found: list[Event]) -> list[str]:
    return [e.session_id for e in found]


def test_a_full_file_is_rotated_and_the_one_before_dropped(tmp_path: Path, small: int) -> None:
    for n in range(small):
        events.append(tmp_path, _event(n))
    assert not (tmp_path / events.EVENTS_FILE).exists()  # the tenth filled it: rotated
    assert _ids(events.read(tmp_path)) == [f"s{n:03d}" for n in range(10)]
    for n in range(10, 25):
        events.append(tmp_path, _event(n))
    # Rotated again at 20: events 0-9 are gone, 10-19 rotated, 20-24 current.
    assert _ids(events.read(tmp_path)) == [f"s{n:03d}" for n in range(10, 25)]
    assert (tmp_path / events.ROTATED_FILE).stat().st_size == 10 * LINE
    assert (tmp_path / events.EVENTS_FILE).stat().st_mode & 0o777 == 0o600


def test_a_position_reads_back_as_itself_and_nothing_else_passes() -> None:
    assert Position.parse(str(Position(123, 456))) == Position(123, 456)
    assert [Position.parse(t) for t in ("", "12", "a-1", "1-", "-1", "1-2-3")] == [None] * 6


def _follow(tmp_path: Path, start: Position, count: int
            ) -> tuple[list[Event], list[Position]]:
    """What a follower from START hears until it has COUNT events."""
    seen: list[Event] = []
    where: list[Position] = []
    done = threading.Event()

    def emit(event: Event) -> None:
        seen.append(event)
        if len(seen) >= count:
            done.set()

    follower = threading.Thread(target=events.follow, args=(tmp_path, start, emit), daemon=True,
                                kwargs={"until": done.is_set, "every": 0.05,
                                        "offsets": where.append})
    follower.start()
    follower.join(timeout=30)
    assert not follower.is_alive(), "the follower did not hear them all"
    return seen, where


def test_a_follower_crosses_a_rotation_without_loss_or_repeat(tmp_path: Path,
                                                               small: int) -> None:
    for n in range(5):
        events.append(tmp_path, _event(n))
    _, start = events.read_to_end(tmp_path)
    assert start.offset == 5 * LINE

    def write() -> None:
        for n in range(5, 17):  # the file rotates after the tenth
            events.append(tmp_path, _event(n))

    writer = threading.Thread(target=write)
    writer.start()
    seen, where = _follow(tmp_path, start, 12)
    writer.join()
    assert _ids(seen) == [f"s{n:03d}" for n in range(5, 17)]
    # A position in the rotated file resumes there, then reads the current one.
    resumed, _ = _follow(tmp_path, where[2], 9)
    assert _ids(resumed) == [f"s{n:03d}" for n in range(8, 17)]


def test_a_position_rotated_away_resumes_at_the_oldest_event_kept(tmp_path: Path,
                                                                   small: int) -> None:
    events.append(tmp_path, _event(0))
    gone = events.end(tmp_path)
    for n in range(1, 25):
        events.append(tmp_path, _event(n))
    resumed, _ = _follow(tmp_path, gone, 15)
    assert _ids(resumed) == [f"s{n:03d}" for n in range(10, 25)]


def test_a_position_past_the_end_of_its_file_follows_on_from_the_end(tmp_path: Path) -> None:
    for n in range(3):
        events.append(tmp_path, _event(n))
    now = events.end(tmp_path)
    beyond = Position(now.file, now.offset + 10 * LINE)  # no event was ever there
    tail = events._Tail(tmp_path, beyond)  # as follow() starts
    try:
        for n in range(3, 5):
            events.append(tmp_path, _event(n))
        # Before, it heard nothing until the file grew past that offset.
        assert _ids([event for _, event in tail.events()]) == ["s003", "s004"]
    finally:
        tail.close()


def test_writers_and_a_follower_across_a_rotation_lose_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Four writers, one rotation among them (files of 300 events), one follower from
    # the start: each event is in the log once and is heard once.
    monkeypatch.setattr(events, "ROTATE_AT", 300 * LINE)
    per_writer = 100
    writers = [threading.Thread(target=lambda w=w: [
        events.append(tmp_path, _event(n, f"w{w}-")) for n in range(per_writer)])
        for w in range(4)]
    for writer in writers:
        writer.start()
    seen, _ = _follow(tmp_path, Position(0, 0), 4 * per_writer)
    for writer in writers:
        writer.join()
    expected = sorted(f"w{w}-{n:03d}" for w in range(4) for n in range(per_writer))
    assert (tmp_path / events.ROTATED_FILE).exists()
    assert sorted(_ids(events.read(tmp_path))) == expected
    assert sorted(_ids(seen)) == expected


def test_a_follower_from_an_empty_log_hears_a_file_rotated_before_it_began(
        tmp_path: Path, small: int) -> None:
    start = events.end(tmp_path)
    assert start == Position(0, 0)
    for n in range(15):  # rotated at ten, before anyone follows
        events.append(tmp_path, _event(n))
    seen, _ = _follow(tmp_path, start, 15)
    assert _ids(seen) == [f"s{n:03d}" for n in range(15)]


def test_a_follower_that_began_on_an_empty_log_hears_a_rotation_before_its_first_read(
        tmp_path: Path, small: int) -> None:
    # It began with no file to open; by its first read the log filled a file, rotated
    # it and began the next: it reads the rotated one first. (It read only the next.)
    tail = events._Tail(tmp_path, Position(0, 0))  # as follow() starts
    try:
        for n in range(15):
            events.append(tmp_path, _event(n))
        assert _ids([event for _, event in tail.events()]) == [f"s{n:03d}" for n in range(15)]
    finally:
        tail.close()


def test_a_rotation_between_the_looks_for_the_oldest_file_is_seen(
        tmp_path: Path, small: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The oldest file kept: no rotated one yet; before the current one is opened, it is
    # rotated and another begun. The follower reads the rotated one, then that one.
    for n in range(9):
        events.append(tmp_path, _event(n))
    opened = events._Tail._open

    def rotating_first(self: events._Tail, path: Path, identity: int | None) -> bool:
        if path == tmp_path / events.EVENTS_FILE and not (tmp_path / events.ROTATED_FILE).exists():
            for n in range(9, 12):
                events.append(tmp_path, _event(n))  # rotated at the tenth
        return opened(self, path, identity)

    monkeypatch.setattr(events._Tail, "_open", rotating_first)
    tail = events._Tail(tmp_path, Position(0, 0))
    try:
        assert _ids([event for _, event in tail.events()]) == [f"s{n:03d}" for n in range(12)]
    finally:
        tail.close()


def test_the_end_of_a_log_just_rotated_is_the_next_files_start(tmp_path: Path,
                                                               small: int) -> None:
    for n in range(10):
        events.append(tmp_path, _event(n))
    assert not (tmp_path / events.EVENTS_FILE).exists()
    start = events.end(tmp_path)
    assert start.offset == 10 * LINE and start == events.read_to_end(tmp_path)[1]
    for n in range(10, 13):
        events.append(tmp_path, _event(n))
    assert events.end(tmp_path) == events.read_to_end(tmp_path)[1]
    seen, _ = _follow(tmp_path, start, 3)
    assert _ids(seen) == [f"s{n:03d}" for n in range(10, 13)]


def test_a_follower_held_up_across_two_rotations_reads_every_file_in_turn(
        tmp_path: Path, small: int) -> None:
    # The follower has the first file open when it and the next are both rotated: it
    # reads its file to the end, then the rotated one (the next), then the current one.
    events.append(tmp_path, _event(0))
    start = events.end(tmp_path)
    seen: list[Event] = []
    release, done = threading.Event(), threading.Event()

    def emit(event: Event) -> None:
        seen.append(event)
        release.wait(30)
        if len(seen) == 24:
            done.set()

    follower = threading.Thread(target=events.follow, args=(tmp_path, start, emit),
                                kwargs={"until": done.is_set, "every": 0.05}, daemon=True)
    follower.start()
    events.append(tmp_path, _event(1))
    wait_for(lambda: len(seen) == 1, 30, "the follower to hold the first file")
    for n in range(2, 25):  # rotated at 10 and at 20: the file it holds is gone
        events.append(tmp_path, _event(n))
    assert _ids(events.read(tmp_path))[0] == "s010"  # the first file is gone
    release.set()
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert _ids(seen) == [f"s{n:03d}" for n in range(1, 25)]
