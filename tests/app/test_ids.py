"""Ids: ULIDs of now, strictly increasing, and the venue client ids derived from them."""

from __future__ import annotations

import random
import threading
import time

import pytest
from ulid import ULID

from app import ids
from app.ids import is_replace_cancel_id, new_id, new_timed_id, replace_cancel_id, venue_client_order_id


def test_a_new_id_is_a_ulid_of_now() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    parsed = ULID.from_str(value)
    assert str(parsed) == value and len(value) == 26
    assert before <= parsed.milliseconds <= after


def test_a_timed_id_carries_its_millisecond_and_follows_the_ids_before_it() -> None:
    earlier = new_id()
    value, millis = new_timed_id()
    assert ULID.from_str(value).milliseconds == millis
    assert earlier < value < new_id()


def test_ids_increase_strictly_within_a_millisecond_and_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for one_thread in made:
        assert one_thread == sorted(one_thread)
    every = [value for one_thread in made for value in one_thread]
    assert len(set(every)) == len(every)
    # 20,000 ids take a few milliseconds at most: many share one, and still sort by when they were made.
    assert len({ULID.from_str(value).milliseconds for value in every}) < len(every)


@pytest.mark.parametrize("seed", range(4))
def test_the_text_is_python_ulids_for_any_time_and_randomness(seed: int) -> None:
    draw = random.Random(seed)
    edges = [(0, 0), (2**48 - 1, 2**80 - 1), (1, 1), (2**47, 2**79)]
    cases = edges + [(draw.getrandbits(48), draw.getrandbits(80)) for _ in range(5000)]
    for millis, randomness in cases:
        expected = str(ULID.from_bytes(millis.to_bytes(6, "big") + randomness.to_bytes(10, "big")))
        assert ids._encode(millis, randomness) == expected


def test_the_cached_time_prefix_follows_the_millisecond() -> None:
    first = ids._encode(1_700_000_000_000, 5)
    second = ids._encode(1_700_000_000_001, 5)
    assert first[:10] != second[:10] and first[10:] == second[10:]
    assert ids._encode(1_700_000_000_000, 5) == first


def test_randomness_exhausted_within_a_millisecond_fails_instead_of_wrapping(monkeypatch: pytest.MonkeyPatch) -> None:
    far_future = 2**47  # no real clock reaches it, so the next id stays in this millisecond
    monkeypatch.setattr(ids, "_last", (far_future, 2**80 - 1))
    with pytest.raises(OverflowError):
        new_timed_id()


def test_venue_client_ids_are_derived_not_random() -> None:
    order_id = new_id()
    assert venue_client_order_id(order_id) == f"tw{order_id}"
    cancel_id = replace_cancel_id(order_id)
    assert is_replace_cancel_id(cancel_id)
    assert not is_replace_cancel_id(venue_client_order_id(order_id))
    assert not is_replace_cancel_id("tr" + "x" * 20)
