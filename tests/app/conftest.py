"""Fixtures for tests that use this machine's Redis (127.0.0.1:6379; `./dev test` starts it if it is down).

Every test gets its own channel prefix (this process's id plus a counter), so parallel runs and earlier tests never
hear each other's messages on the shared server."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

REDIS_URL = os.environ.get("TW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_RUN = f"tw-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
_counter = itertools.count(1)


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def channel_prefix() -> str:
    """A channel prefix no other test or test run uses."""
    return f"{_RUN}-{next(_counter)}:"


@pytest.fixture
async def redis_admin(redis_url: str) -> AsyncIterator[redis.Redis]:
    """A plain client for what a test does to Redis itself (publish by hand, kill a replica's connection)."""
    client = redis.from_url(redis_url)
    await client.ping()  # no Redis is a failure, not a skip: `./dev test` starts it
    yield client
    await client.aclose()
