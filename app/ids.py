"""Identifiers: time-ordered ULIDs for rows, and the client order id a venue sees."""

from __future__ import annotations

import os
import random
import threading
import time

from ulid import ULID

VENUE_CLIENT_ID_PREFIX = "tw"

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
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + randomness.to_bytes(10, "big")))


def venue_client_order_id(order_id: str) -> str:
    """Deterministic from the order id, so a retry or a restart can never place a second order (28 chars)."""
    return f"{VENUE_CLIENT_ID_PREFIX}{order_id}"


def now_ms() -> int:
    """Milliseconds since the Unix epoch, UTC: the API's time unit."""
    return time.time_ns() // 1_000_000
