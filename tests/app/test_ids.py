"""Ids: ULIDs of now, strictly increasing, and the venue client ids derived from them."""

from __future__ import annotations

import threading
import time

from ulid import ULID

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


def test_venue_client_ids_are_derived_not_random() -> None:
    order_id = new_id()
    assert venue_client_order_id(order_id) == f"tw{order_id}"
    cancel_id = replace_cancel_id(order_id)
    assert is_replace_cancel_id(cancel_id)
    assert not is_replace_cancel_id(venue_client_order_id(order_id))
    assert not is_replace_cancel_id("tr" + "x" * 20)
