"""Accounts hash into a fixed number of partitions; each partition (and the market feed) is one named lease."""

from __future__ import annotations

import zlib

FEED_LEASE = "feed"


def partition_of(account_id: str, partitions: int) -> int:
    """The account's partition: crc32 of its id (stable across processes and Python versions, unlike hash())."""
    return zlib.crc32(account_id.encode()) % partitions


def partition_lease_name(p: int) -> str:
    """The lease that makes a replica the owner of partition `p`."""
    return f"exec:{p}"
