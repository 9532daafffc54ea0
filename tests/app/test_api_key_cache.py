"""The in-memory cache of verified API keys: one read per key, revocations win over reads in flight, listeners hear
revocations, memory is bounded, allowed networks are checked."""

from __future__ import annotations

import asyncio
import ipaddress

from app.api_key_cache import ApiKeyCache, VerifiedKey


def key(key_id: str, *networks: str) -> VerifiedKey:
    return VerifiedKey(
        key_id, "user", "u@example.com", frozenset({"read"}), tuple(ipaddress.ip_network(n) for n in networks)
    )


async def test_concurrent_requests_share_one_read_and_later_ones_read_nothing() -> None:
    reads: list[str] = []

    async def load(key_hash: str) -> VerifiedKey | None:
        reads.append(key_hash)
        await asyncio.sleep(0)
        return key("k1")

    cache = ApiKeyCache(load)
    results = await asyncio.gather(*(cache.get("h1") for _ in range(10)))
    assert {r.key_id for r in results if r} == {"k1"} and reads == ["h1"]
    assert (await cache.get("h1")) is not None and reads == ["h1"]


async def test_a_revocation_during_a_read_in_flight_wins() -> None:
    release = asyncio.Event()

    async def load(_key_hash: str) -> VerifiedKey | None:
        await release.wait()
        return key("k1")  # the row as it was before the revoke committed

    cache = ApiKeyCache(load)
    pending = asyncio.ensure_future(cache.get("h1"))
    await asyncio.sleep(0)
    cache.revoked("k1")
    release.set()
    assert await pending is None
    assert cache.cached("h1") is None and cache.is_revoked("k1")


async def test_revoking_evicts_the_key_and_tells_its_listeners_only() -> None:
    async def load(key_hash: str) -> VerifiedKey | None:
        return key("k1" if key_hash == "h1" else "k2")

    cache = ApiKeyCache(load)
    await cache.get("h1")
    await cache.get("h2")
    heard: list[str] = []
    cache.subscribe("k1", lambda: heard.append("k1"))
    unsubscribed = cache.subscribe("k1", lambda: heard.append("gone"))
    cache.subscribe("k2", lambda: heard.append("k2"))
    unsubscribed()
    cache.revoked("k1")
    assert heard == ["k1"]
    assert cache.cached("h1") is None and cache.cached("h2") is not None


async def test_the_cache_is_bounded() -> None:
    async def load(key_hash: str) -> VerifiedKey | None:
        return key(f"id-{key_hash}")

    cache = ApiKeyCache(load, capacity=3)
    for n in range(5):
        await cache.get(f"h{n}")
    assert len(cache) == 3 and cache.cached("h0") is None and cache.cached("h4") is not None


def test_allowed_networks() -> None:
    assert key("k").allows("203.0.113.9")  # no networks: anywhere
    limited = key("k", "192.0.2.0/24", "2001:db8::/32")
    assert limited.allows("192.0.2.200") and limited.allows("2001:db8::1")
    assert not limited.allows("198.51.100.1") and not limited.allows("unknown")
