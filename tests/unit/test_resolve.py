"""Which session a reference names."""

from __future__ import annotations

import pytest

from orch.errors import Ambiguous, NotFound
from orch.resolve import resolve
from orch.session import Record


def _record(sid: str, name: str, created_at: str = "2025-01-01T00:00:00+00:00") -> Record:
    return Record(id=sid, name=name, unit=f"orch-{name}-{sid[:8]}.service", scope="user",
                  argv=["prog"], cwd="/", created_at=created_at)


A = _record("aaaa1111-0000-4000-8000-000000000001", "alpha")
B = _record("bbbb2222-0000-4000-8000-000000000002", "beta")
C = _record("bbbb3333-0000-4000-8000-000000000003", "gamma")
POOL = [A, B, C]


@pytest.mark.parametrize(("ref", "expected"), [
    (A.id, A),
    (B.unit, B),
    ("gamma", C),
    ("aaaa", A),
    ("bbbb3", C),
    ("AAAA11", A),
])
def test_resolves(ref: str, expected: Record) -> None:
    assert resolve(ref, POOL) is expected


def test_short_prefix_is_not_found_and_mentions_the_minimum() -> None:
    with pytest.raises(NotFound) as caught:
        resolve("aaa", POOL)
    assert "4" in caught.value.message
    assert caught.value.exit_code == 2


def test_unknown_is_not_found_exit_2() -> None:
    with pytest.raises(NotFound) as caught:
        resolve("ffff", POOL)
    assert caught.value.exit_code == 2


def test_empty_pool_is_not_found() -> None:
    with pytest.raises(NotFound):
        resolve(A.id, [])


def test_shared_name_is_ambiguous_and_lists_both_short_ids() -> None:
    twin = _record("cccc4444-0000-4000-8000-000000000004", "alpha")
    with pytest.raises(Ambiguous) as caught:
        resolve("alpha", [A, B, twin])
    assert A.id[:8] in caught.value.message
    assert twin.id[:8] in caught.value.message
    assert caught.value.exit_code == 2


def test_an_ambiguous_names_sessions_are_listed_in_local_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        twin = _record("cccc4444-0000-4000-8000-000000000004", "alpha")
        with pytest.raises(Ambiguous) as caught:
            resolve("alpha", [A, twin])
        # Before, a bare UTC stamp (2025-01-01T00:00:00), where every other time is local.
        assert "(alpha, Wed 2025-01-01 09:00:00 JST)" in caught.value.message
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_ambiguous_prefix() -> None:
    with pytest.raises(Ambiguous) as caught:
        resolve("bbbb", POOL)
    assert B.id[:8] in caught.value.message and C.id[:8] in caught.value.message
    assert caught.value.exit_code == 2


def test_a_name_that_is_another_sessions_id_prefix_is_ambiguous() -> None:
    # `ps` shows ids by their first 8 characters: a user who copies one must not stop
    # the session that happens to be named so (before, the name won).
    named_like_a_prefix = _record("dddd5555-0000-4000-8000-000000000005", A.id[:8])
    with pytest.raises(Ambiguous) as caught:
        resolve(A.id[:8], [A, named_like_a_prefix])
    from datetime import UTC, datetime

    from orch.render import format_timestamp

    made = format_timestamp(datetime(2025, 1, 1, tzinfo=UTC))  # in local time
    assert caught.value.message == (
        f"{A.id[:8]!r} names session dddd5555 and is an id prefix of 1 other(s): "
        f"dddd5555 ({A.id[:8]}, {made}), aaaa1111 (alpha, {made})")
    assert caught.value.exit_code == 2
    # Too short to be a prefix, or the prefix of no other: the name.
    assert resolve("aaa", [A, _record("dddd5555-0000-4000-8000-000000000005", "aaa")]).name \
        == "aaa"
    assert resolve("dddd", [B, _record("dddd5555-0000-4000-8000-000000000005", "dddd")]).name \
        == "dddd"


def test_a_unit_name_may_leave_out_its_service_suffix() -> None:
    assert resolve(B.unit.removesuffix(".service"), POOL) is B


def test_full_id_wins_over_a_name_equal_to_it() -> None:
    impostor = _record("eeee6666-0000-4000-8000-000000000006", A.id)
    assert resolve(A.id, [impostor, A]) is A


def test_a_listing_cut_at_five_says_how_many_more() -> None:
    runs = [_record(f"{n:04d}aaaa-0000-4000-8000-00000000000{n}", "nightly",
                    f"2025-01-0{n}T00:00:00+00:00") for n in range(1, 8)]
    with pytest.raises(Ambiguous) as caught:
        resolve("nightly", runs)
    # Before, "7 sessions are named" beside five, with no word of the other two.
    assert caught.value.message.startswith("7 sessions are named 'nightly': 0007aaaa")
    assert caught.value.message.endswith(", and 2 older")
