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


def test_ambiguous_prefix() -> None:
    with pytest.raises(Ambiguous) as caught:
        resolve("bbbb", POOL)
    assert B.id[:8] in caught.value.message and C.id[:8] in caught.value.message
    assert caught.value.exit_code == 2


def test_exact_name_wins_over_id_prefix_of_another() -> None:
    named_like_a_prefix = _record("dddd5555-0000-4000-8000-000000000005", "aaaa")
    assert resolve("aaaa", [A, named_like_a_prefix]) is named_like_a_prefix


def test_full_id_wins_over_a_name_equal_to_it() -> None:
    impostor = _record("eeee6666-0000-4000-8000-000000000006", A.id)
    assert resolve(A.id, [impostor, A]) is A
