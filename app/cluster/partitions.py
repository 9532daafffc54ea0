"""Accounts hash into a fixed number of partitions; each partition (and the market feed) is one named lease."""

from __future__ import annotations

import zlib

FEED_LEASE = "feed"


def partition_of(account_id: str, partitions: int) -> int:
    """The account's partition: crc32 of its id (stable across processes and Python versions, unlike hash())."""
    return zlib.crc32(account_id.encode()) % partitions


PARTITION_LEASE_PREFIX = "exec:"


def partition_lease_name(p: int) -> str:
    """The lease that makes a replica the owner of partition `p`."""
    return f"{PARTITION_LEASE_PREFIX}{p}"


def partition_of_lease(name: str) -> int | None:
    """The partition a lease name stands for (`partition_lease_name`'s inverse); None for another lease."""
    if not name.startswith(PARTITION_LEASE_PREFIX):
        return None
    return int(name.removeprefix(PARTITION_LEASE_PREFIX))
