"""Identifiers: time-ordered ULIDs for rows, and the client order id a venue sees."""

from __future__ import annotations

import time

from ulid import ULID

VENUE_CLIENT_ID_PREFIX = "tw"


def new_id() -> str:
    """A 26-character ULID: unique, opaque, and sortable by creation time (newest-first paging uses it)."""
    return str(ULID())


def venue_client_order_id(order_id: str) -> str:
    """Deterministic from the order id, so a retry or a restart can never place a second order (28 chars)."""
    return f"{VENUE_CLIENT_ID_PREFIX}{order_id}"


def now_ms() -> int:
    """Milliseconds since the Unix epoch, UTC: the API's time unit."""
    return time.time_ns() // 1_000_000
