"""The Redis fan-out between replicas (app/fanout.py) on this machine's real Redis, with two replicas' worth of
local objects (bus, token versions, API key cache) in one process and dictionaries standing in for the database."""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest
import redis.asyncio as redis

from app.api_key_cache import ApiKeyCache, VerifiedKey
from app.events import EventBus, UserEvent
from app.fanout import RedisFanout
from app.retry import RetryPolicy
from app.token_versions import TokenVersions, UserVersion
from tests.factories import wait_for

_markers = itertools.count(1)
FAST = RetryPolicy(initial=0.05, maximum=0.2)  # reconnect quickly: tests wait for conditions, never for time


@dataclass
class Database:
    """What the replicas would read from the shared database."""

    versions: dict[str, UserVersion] = field(default_factory=dict)
    keys: dict[str, VerifiedKey] = field(default_factory=dict)  # hash -> live key

    async def load_version(self, user_id: str) -> UserVersion | None:
        return self.versions.get(user_id)

    async def load_key(self, key_hash: str) -> VerifiedKey | None:
        return self.keys.get(key_hash)


@dataclass
class Replica:
    bus: EventBus
    versions: TokenVersions
    keys: ApiKeyCache
    fanout: RedisFanout


def make_replica(db: Database, redis_url: str, prefix: str, *, outbox_size: int = 10_000) -> Replica:
    bus, versions, keys = EventBus(), TokenVersions(db.load_version), ApiKeyCache(db.load_key)
    fanout = RedisFanout(redis_url, channel_prefix=prefix, policy=FAST, outbox_size=outbox_size)
    fanout.attach(bus, versions, keys)
    return Replica(bus, versions, keys, fanout)


@pytest.fixture
def db() -> Database:
    return Database(versions={"alice": UserVersion("alice@example.com", 1), "bob": UserVersion("bob@example.com", 1)})


@pytest.fixture
async def pair(db: Database, redis_url: str, channel_prefix: str) -> AsyncIterator[tuple[Replica, Replica]]:
    a, b = make_replica(db, redis_url, channel_prefix), make_replica(db, redis_url, channel_prefix)
    for replica in (a, b):
        await replica.fanout.start()
    await wait_for(lambda: a.fanout.subscribed.is_set() and b.fanout.subscribed.is_set(), what="both subscribed")
    yield a, b
    for replica in (a, b):
        await replica.fanout.stop()


def event(user_id: str, seq: int, type_: str = "ORDER_UPDATE") -> UserEvent:
    created = UserEvent.create(user_id, type_, {"order_id": f"o{seq}", "status": "FILLED", "price": "1.10"}, ts=seq)
    created.numbered(seq)
    return created


async def barrier(sender: Replica, receiver: Replica) -> None:
    """Wait until `receiver` has handled everything on the channel up to now: pub/sub keeps publish order per
    subscriber, so once a marker that `sender` publishes now arrives, every earlier message has been handled."""
    got: list[UserEvent] = []
    unsubscribe = receiver.bus.subscribe_user("marker", got.append)
    sender.bus.publish_user(event("marker", next(_markers)))  # a new seq each time: not a duplicate
    await wait_for(lambda: got, what="the marker event")
    unsubscribe()


async def test_an_event_reaches_the_other_replica_once_and_never_echoes(pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    on_a: list[UserEvent] = []
    on_b: list[UserEvent] = []
    bobs_on_b: list[UserEvent] = []
    a.bus.subscribe_user("alice", on_a.append)
    b.bus.subscribe_user("alice", on_b.append)
    b.bus.subscribe_user("bob", bobs_on_b.append)

    a.bus.publish_user(event("alice", 1))
    await wait_for(lambda: on_b, what="alice's event on replica B")
    await barrier(b, a)  # B's marker reaches A after A's own publication came back to A

    assert [e.seq for e in on_a] == [1] and on_a[0] is not on_b[0]  # A delivered it once, locally
    assert [(e.seq, e.type, e.data) for e in on_b] == [(1, "ORDER_UPDATE", on_a[0].data)]
    assert on_b[0].message() == on_a[0].message()  # the same WebSocket message on both replicas
    assert bobs_on_b == []  # nobody hears another user's events


async def test_a_message_sent_twice_is_delivered_once(pair: tuple[Replica, Replica], redis_admin: redis.Redis) -> None:
    """A batch whose send failed is sent again after the reconnect: the receiver drops what it already delivered."""
    a, b = pair
    on_b: list[UserEvent] = []
    b.bus.subscribe_user("alice", on_b.append)
    raw = orjson.dumps({"k": "event", "u": "alice", "s": 7, "t": "FILL", "p": '{"qty":"1"}', "ts": 1, "o": "gone"})
    await redis_admin.publish(b.fanout.channel, raw)
    await redis_admin.publish(b.fanout.channel, raw)
    await barrier(a, b)
    assert [(e.seq, e.type, e.data) for e in on_b] == [(7, "FILL", {"qty": "1"})]


async def test_origin_only_subscribers_hear_only_this_replicas_events(pair: tuple[Replica, Replica]) -> None:
    """Webhooks subscribe with remote=False: each event is sent once, by the replica that committed it."""
    a, b = pair
    hooks_a: list[UserEvent] = []
    hooks_b: list[UserEvent] = []
    a.bus.subscribe_user("alice", hooks_a.append, remote=False)
    b.bus.subscribe_user("alice", hooks_b.append, remote=False)
    a.bus.publish_user(event("alice", 1, "FILL"))
    await barrier(a, b)
    assert [e.seq for e in hooks_a] == [1]
    assert hooks_b == []


async def test_a_token_version_change_reaches_the_other_replica(db: Database, pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    assert (await b.versions.get("alice")) == UserVersion("alice@example.com", 1)  # cached on B
    heard_a: list[tuple[str, int | None]] = []
    heard_b: list[tuple[str, int | None]] = []
    a.versions.subscribe("alice", lambda user, version: heard_a.append((user, version)))
    b.versions.subscribe("alice", lambda user, version: heard_b.append((user, version)))

    db.versions["alice"] = UserVersion("alice@example.com", 2)
    a.versions.changed("alice", 2)  # log out everywhere on A
    await wait_for(lambda: heard_b, what="the version change on B")
    await barrier(b, a)

    assert heard_b == [("alice", 2)]
    assert (await b.versions.get("alice")) == UserVersion("alice@example.com", 2)  # no database read needed
    assert heard_a == [("alice", 2)]  # not announced back to A


async def test_a_revocation_reaches_the_other_replica(db: Database, pair: tuple[Replica, Replica]) -> None:
    a, b = pair
    key = VerifiedKey("k1", "alice", "alice@example.com", frozenset({"read"}), ())
    db.keys["hash1"] = key
    assert await b.keys.get("hash1") == key  # cached on B
    closed: list[str] = []
    b.keys.subscribe("k1", lambda: closed.append("k1"))

    del db.keys["hash1"]
    a.keys.revoked("k1")
    await wait_for(lambda: closed, what="the revocation on B")
    assert b.keys.is_revoked("k1") and b.keys.cached("hash1") is None


async def test_a_lost_subscription_rereads_what_it_may_have_missed(
    db: Database, pair: tuple[Replica, Replica], redis_admin: redis.Redis
) -> None:
    """Changes announced while B was not listening are lost to pub/sub: B re-reads its cached versions and keys when
    it subscribes again, and its listeners hear what changed meanwhile."""
    _, b = pair
    key = VerifiedKey("k1", "alice", "alice@example.com", frozenset({"read"}), ())
    db.keys["hash1"] = key
    await b.versions.get("alice")
    await b.keys.get("hash1")
    heard: list[tuple[str, int | None]] = []
    closed: list[str] = []
    b.versions.subscribe("alice", lambda user, version: heard.append((user, version)))
    b.keys.subscribe("k1", lambda: closed.append("k1"))

    # Changed elsewhere while B is away: nothing is published.
    db.versions["alice"] = UserVersion("alice@example.com", 4)
    del db.keys["hash1"]
    for client in await redis_admin.client_list(_type="pubsub"):
        if client["name"] == f"tradewind-{b.fanout.origin}":
            await redis_admin.client_kill_filter(_id=client["id"])

    await wait_for(lambda: heard and closed, what="B to re-read after subscribing again")
    assert heard == [("alice", 4)] and b.keys.is_revoked("k1")
    assert b.fanout.subscribed.is_set()


async def test_an_overflowing_outbox_makes_every_replica_reread(
    db: Database, redis_url: str, channel_prefix: str, pair: tuple[Replica, Replica]
) -> None:
    _, b = pair
    await b.versions.get("alice")
    heard: list[tuple[str, int | None]] = []
    b.versions.subscribe("alice", lambda user, version: heard.append((user, version)))
    late = make_replica(db, redis_url, channel_prefix, outbox_size=1)
    late.bus.publish_user(event("bob", 1))
    late.bus.publish_user(event("bob", 2))  # the outbox holds one: this one is dropped
    assert late.fanout.dropped == 1
    db.versions["alice"] = UserVersion("alice@example.com", 9)  # the kind of change a dropped message carried

    await late.fanout.start()
    try:
        await wait_for(lambda: heard, what="B to re-read after the resync announcement")
        assert heard == [("alice", 9)]
    finally:
        await late.fanout.stop()


async def test_without_redis_the_local_path_works_and_says_so(
    db: Database, channel_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alone = make_replica(db, f"redis://127.0.0.1:{port}/0", channel_prefix)
    got: list[UserEvent] = []
    alone.bus.subscribe_user("alice", got.append)
    with caplog.at_level(logging.WARNING, logger="app.fanout"):
        await alone.fanout.start()
        alone.bus.publish_user(event("alice", 1))
        alone.versions.changed("alice", 2)
        assert [e.seq for e in got] == [1]  # delivered locally at once, whatever Redis does
        await wait_for(lambda: "unreachable" in caplog.text, what="the warning")
    await alone.fanout.stop()
    assert "this replica serves its own events only" in caplog.text
    assert not alone.fanout.subscribed.is_set()


async def test_a_killed_publishing_connection_loses_nothing_and_duplicates_nothing(
    pair: tuple[Replica, Replica], redis_admin: redis.Redis
) -> None:
    a, b = pair
    on_b: list[UserEvent] = []
    b.bus.subscribe_user("alice", on_b.append)
    a.bus.publish_user(event("alice", 1))
    await wait_for(lambda: len(on_b) == 1, what="the first event on B")
    publishing = [
        c for c in await redis_admin.client_list(_type="normal") if c["name"] == f"tradewind-{a.fanout.origin}"
    ]
    assert publishing  # A's pooled publishing connection
    for client in publishing:
        await redis_admin.client_kill_filter(_id=client["id"])

    for seq in range(2, 6):
        a.bus.publish_user(event("alice", seq))
    await wait_for(lambda: len(on_b) >= 5, what="the events sent after the reconnect")
    await barrier(a, b)
    assert [e.seq for e in on_b] == [1, 2, 3, 4, 5]
