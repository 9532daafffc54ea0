"""What every Redis link of a replica shares (the fan-out, the command streams, the market-feed leader): a client
whose own retries are off (reconnecting is `app.retry.reconnect_forever`'s job: one backoff loop, not two) and
named so that `CLIENT LIST` shows which replica holds which connection, and the outbox drain's next batch."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 15  # a silent connection is pinged, so a dead one is noticed


def redis_client(url: str, name: str, *, health_check: bool = True) -> redis.Redis:
    return redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        health_check_interval=HEALTH_CHECK_SECONDS if health_check else 0,
        client_name=name,
    )


async def next_batch(outbox: asyncio.Queue[T], unsent: list[T], limit: int) -> list[T]:
    """`unsent` (a batch whose send failed goes first after a reconnect), else the next messages: waits for one,
    then takes what is already there, up to `limit`."""
    if unsent:
        return unsent
    batch = [await outbox.get()]
    while len(batch) < limit and not outbox.empty():
        batch.append(outbox.get_nowait())
    return batch
