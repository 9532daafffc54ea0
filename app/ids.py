"""Identifiers: time-ordered ULIDs for rows, and the client order id a venue sees."""

from __future__ import annotations

import functools
import os
import random
import threading
import time

VENUE_CLIENT_ID_PREFIX = "tw"
# The client id of the cancel half of a modify/replace (Binance cancelNewClientOrderId): the venue echoes it on the
# canceled order's report, which is how a cancel that came from a replace is told apart from a user's cancel.
REPLACE_CANCEL_PREFIX = "tr"

# Ids must be unique and time-ordered, not secret (ownership checks protect every object), so the 80 random bits
# come from a PRNG seeded once by the OS: os.urandom costs milliseconds per call on some VMs.
_rng = random.Random(os.urandom(32))
_lock = threading.Lock()
_last: tuple[int, int] = (0, 0)


def new_id() -> str:
    """A 26-character ULID, strictly increasing within the process (ULID's monotonic rule: same millisecond ->
    previous randomness + 1), so ids sort by creation time and newest-first paging by id is exact."""
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, randomness = last_millis, last_random + 1
        else:
            randomness = _rng.getrandbits(80)
        _last = (millis, randomness)
    return _encode_time(millis) + _encode_randomness(randomness)


# ULID's text form is Crockford base32, 5 bits a character: 10 characters of time, 16 of randomness. Encoded here
# ten bits at a time from a table of character pairs: two ids per order are on the order path, and python-ulid's
# encoder (the reference in tests/app/test_ids.py) costs ~3 µs an id against ~1 µs here.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


@functools.lru_cache(maxsize=4)
def _encode_time(millis: int) -> str:
    """48 bits in 10 characters (ids made in the same millisecond share it, hence the cache)."""
    pairs = _PAIRS
    return (
        pairs[millis >> 40]
        + pairs[millis >> 30 & 1023]
        + pairs[millis >> 20 & 1023]
        + pairs[millis >> 10 & 1023]
        + pairs[millis & 1023]
    )


def _encode_randomness(bits: int) -> str:
    """80 bits in 16 characters."""
    pairs = _PAIRS
    return "".join(
        (
            pairs[bits >> 70],
            pairs[bits >> 60 & 1023],
            pairs[bits >> 50 & 1023],
            pairs[bits >> 40 & 1023],
            pairs[bits >> 30 & 1023],
            pairs[bits >> 20 & 1023],
            pairs[bits >> 10 & 1023],
            pairs[bits & 1023],
        )
    )


def venue_client_order_id(order_id: str) -> str:
    """Deterministic from the order id, so a retry or a restart can never place a second order (28 chars)."""
    return f"{VENUE_CLIENT_ID_PREFIX}{order_id}"


def replace_cancel_id(replacement_id: str) -> str:
    """The cancel's client id when order `replacement_id` replaces another one (28 chars, deterministic)."""
    return f"{REPLACE_CANCEL_PREFIX}{replacement_id}"


def is_replace_cancel_id(value: str) -> bool:
    """Whether a venue-echoed cancel id is one of ours from `replace_cancel_id` (prefix and exact length: a cancel id
    the venue generated itself is 22 random characters and may start with anything)."""
    return value.startswith(REPLACE_CANCEL_PREFIX) and len(value) == len(REPLACE_CANCEL_PREFIX) + 26


def now_ms() -> int:
    """Milliseconds since the Unix epoch, UTC: the API's time unit."""
    return time.time_ns() // 1_000_000
