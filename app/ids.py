"""Identifiers: time-ordered ULIDs for rows, and the client order id a venue sees."""

from __future__ import annotations

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

# ULID's text form is Crockford base32, 5 bits a character: 10 bits are two characters, looked up in one step.
# python-ulid's ULID.from_bytes + str cost ~2.6 µs an id (two per market order); this ~0.7 µs, same text
# (tests/app/test_ids.py compares them). The timestamp's 10 characters change once a millisecond: kept.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(high + low for high in _CROCKFORD for low in _CROCKFORD)
_RANDOMNESS_LIMIT = 1 << 80
_prefix: tuple[int, str] = (-1, "")


def new_id() -> str:
    """A 26-character ULID, strictly increasing within the process (ULID's monotonic rule: same millisecond ->
    previous randomness + 1), so ids sort by creation time and newest-first paging by id is exact."""
    return new_timed_id()[0]


def new_timed_id() -> tuple[str, int]:
    """A new id (`new_id`) and the millisecond it carries. An order's created_at is that millisecond, so ordering
    orders by id is ordering them by (created_at, id): their indexes key on id alone (storage/models.py)."""
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, randomness = last_millis, last_random + 1
        else:
            randomness = _rng.getrandbits(80)
        if randomness >= _RANDOMNESS_LIMIT:  # 2^80 ids in one millisecond: the ULID spec says fail
            raise OverflowError("ULID randomness exhausted within one millisecond")
        _last = (millis, randomness)
    return _encode(millis, randomness), millis


def id_floor(millis: int) -> str:
    """The smallest id of that millisecond: every id made before it sorts below it."""
    return _encode(millis, 0)


def _encode(millis: int, randomness: int) -> str:
    """The 26-character ULID of a 48-bit millisecond and 80 random bits (Crockford base32, most significant first:
    10 characters of time, 16 of randomness)."""
    global _prefix
    prefix_millis, prefix = _prefix
    if prefix_millis != millis:
        pairs = _PAIRS
        prefix = f"{pairs[millis >> 40]}{pairs[(millis >> 30) & 1023]}{pairs[(millis >> 20) & 1023]}" + (
            f"{pairs[(millis >> 10) & 1023]}{pairs[millis & 1023]}"
        )
        _prefix = (millis, prefix)
    p, r = _PAIRS, randomness
    return (
        f"{prefix}{p[r >> 70]}{p[(r >> 60) & 1023]}{p[(r >> 50) & 1023]}{p[(r >> 40) & 1023]}"
        f"{p[(r >> 30) & 1023]}{p[(r >> 20) & 1023]}{p[(r >> 10) & 1023]}{p[r & 1023]}"
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
