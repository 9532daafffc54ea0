"""Replica fan-out through Redis pub/sub (REDIS_URL; docs/scaling.md): what one replica commits, every other
replica's local subscribers hear.

The kinds of message travel on one channel (`<REDIS_CHANNEL_PREFIX>fanout`), each stamped with the sending
replica's `origin` id so a replica never delivers its own publications back to itself:

- `event`: a committed user event (EventBus.relay) -> `EventBus.deliver_remote` (sockets and pages, not webhooks:
  those are sent once, by the replica that committed the event);
- `version`: a token-version change (log out everywhere, password change) -> `TokenVersions.changed(remote=True)`;
- `revoke`: an API key revocation -> `ApiKeyCache.revoked(remote=True)`;
- `webhook`: a webhook created or deleted -> `WebhookService.index_changed` (each replica sends the webhooks of the
  events it commits, so each must know every webhook).

Why pub/sub and not Streams: the durable copy of every user event is already the database's event log, which
/ws RESUME (and a socket that sees a seq gap) re-reads; the fan-out only has to be fast. A replica that lost its
subscription may have missed token-version changes and revocations, so on every (re)subscription it re-reads its
cached versions and keys from the database (listeners hear what changed meanwhile); a replica whose outbox
overflowed announces `resync`, and every other replica does the same.

Publishing never waits for Redis: messages go to a bounded outbox drained by one task (in order, pipelined), so a
slow or lost Redis never slows or breaks the local path. Both the drain and the subscription reconnect through
`app.retry.reconnect_forever`; redis-py's own retries are off so that there is one backoff loop, not two.
A message whose batch failed is sent again after the reconnect; receivers drop a user event they have already
delivered (by user id and seq), so each event reaches a replica's subscribers exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as redis

from app.api_key_cache import ApiKeyCache
from app.events import EventBus, UserEvent
from app.ids import new_id
from app.redis_link import next_batch, redis_client
from app.retry import RECONNECT, RetryPolicy, reconnect_forever
from app.tasks import cancel_and_wait
from app.token_versions import TokenVersions
from app.webhooks.service import WebhookService

log = logging.getLogger(__name__)

OUTBOX_SIZE = 10_000  # messages waiting while Redis is slow or away; beyond it they are dropped (then `resync`)
BATCH = 500  # messages per pipelined round trip
REMEMBERED_EVENTS = 50_000  # (user id, seq) of recently delivered remote events, to drop a re-sent one


class RedisFanout:
    """One replica's link to the others: `attach` it to the local bus and caches, `start` it, `stop` it."""

    def __init__(
        self,
        url: str,
        *,
        channel_prefix: str = "tradewind:",
        origin: str | None = None,
        policy: RetryPolicy = RECONNECT,
        outbox_size: int = OUTBOX_SIZE,
    ) -> None:
        self.url = url
        self.channel = f"{channel_prefix}fanout"
        self.origin = origin or new_id()
        self.policy = policy
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=outbox_size)
        self._unsent: list[bytes] = []  # a batch whose send failed: first in line after the reconnect
        self._overflowed = False
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._bus: EventBus | None = None
        self._versions: TokenVersions | None = None
        self._keys: ApiKeyCache | None = None
        self._webhooks: WebhookService | None = None
        self._client: redis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._resync: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()  # set while the subscription is live (tests wait for it)
        self.dropped = 0  # messages lost to a full outbox
        self.delivered = 0  # remote messages applied here
        self.resyncs = 0  # completed re-reads of versions, keys and webhooks (tests wait for them)

    # ---- wiring ---------------------------------------------------------------------------------------------

    def attach(
        self, bus: EventBus, versions: TokenVersions, keys: ApiKeyCache, webhooks: WebhookService | None = None
    ) -> None:
        """Relay this replica's changes and deliver the others' to these local objects."""
        self._bus, self._versions, self._keys, self._webhooks = bus, versions, keys, webhooks
        bus.relay = self.event_committed
        versions.relay = self.version_changed
        keys.relay = self.key_revoked
        if webhooks is not None:
            webhooks.relay = self.webhook_changed

    async def start(self) -> None:
        """Start the subscription and the outbox drain in the background: start-up never waits for Redis."""
        self._client = redis_client(self.url, f"tradewind-{self.origin}")
        log.info("Redis fan-out: replica %s connecting to %s", self.origin, _safe_location(self.url))
        self._tasks = [
            asyncio.create_task(self._run(self._subscribe, "subscription"), name="fanout-subscribe"),
            asyncio.create_task(self._run(self._drain, "publishing"), name="fanout-publish"),
        ]

    async def stop(self) -> None:
        if self._resync is not None:
            self._tasks.append(self._resync)
            self._resync = None
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        self.subscribed.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- outgoing (synchronous, on the publishing path: only queue) ------------------------------------------

    def event_committed(self, event: UserEvent) -> None:
        payload = event.payload or orjson.dumps(event.data).decode()
        self._send({"k": "event", "u": event.user_id, "s": event.seq, "t": event.type, "p": payload, "ts": event.ts})

    def version_changed(self, user_id: str, version: int) -> None:
        self._send({"k": "version", "u": user_id, "v": version})

    def key_revoked(self, key_id: str) -> None:
        self._send({"k": "revoke", "id": key_id})

    def webhook_changed(self, user_id: str, webhook_id: str, kinds: tuple[str, ...] | None) -> None:
        self._send({"k": "webhook", "u": user_id, "id": webhook_id, "kinds": kinds})

    def _send(self, message: dict[str, Any]) -> None:
        message["o"] = self.origin
        try:
            self._outbox.put_nowait(orjson.dumps(message))
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._overflowed:
                log.warning("Redis fan-out outbox full (%d): dropping messages until Redis keeps up", OUTBOX_SIZE)
            self._overflowed = True

    # ---- the two connections ----------------------------------------------------------------------------------

    async def _run(self, session: Callable[[Callable[[], None]], Any], what: str) -> None:
        def failed(error: Exception | None, delay: float) -> None:
            reason = type(error).__name__ if error is not None else "connection closed"
            log.warning(
                "Redis fan-out %s lost or unreachable (%s): this replica serves its own events only; retry in %.1fs",
                what,
                reason,
                delay,
            )

        await reconnect_forever(session, policy=self.policy, on_failure=failed)

    async def _subscribe(self, connected: Callable[[], None]) -> None:
        assert self._client is not None
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            async for message in pubsub.listen():
                if message["type"] == "subscribe":
                    connected()
                    self._resync_local()  # whatever was announced while we were not listening is lost
                    self.subscribed.set()
                    log.info("Redis fan-out subscribed to %s as replica %s", self.channel, self.origin)
                elif message["type"] == "message":
                    self._receive(message["data"])
        finally:
            self.subscribed.clear()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _drain(self, connected: Callable[[], None]) -> None:
        assert self._client is not None
        await self._client.ping()
        connected()
        if self._overflowed:  # messages were dropped: everyone re-checks against the database
            self._overflowed = False
            self._unsent.insert(0, orjson.dumps({"k": "resync", "o": self.origin}))
        while True:
            self._unsent = await next_batch(self._outbox, self._unsent, BATCH)
            async with self._client.pipeline(transaction=False) as pipe:
                for message in self._unsent:
                    pipe.publish(self.channel, message)
                await pipe.execute()
            self._unsent = []

    # ---- incoming ----------------------------------------------------------------------------------------------

    def _receive(self, raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
            if message.get("o") == self.origin:
                return  # our own publication, already delivered locally
            self._apply(message)
        except Exception:  # a malformed message must not end the subscription
            log.exception("Redis fan-out: could not apply a message")

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message["k"]
        if kind == "event" and self._bus is not None:
            key = (message["u"], message["s"])
            if key in self._seen:
                return  # re-sent after a failed batch: delivered once already
            self._seen[key] = None
            while len(self._seen) > REMEMBERED_EVENTS:
                self._seen.popitem(last=False)
            payload = message["p"]
            event = UserEvent(message["u"], message["s"], message["t"], orjson.loads(payload), payload, message["ts"])
            self._bus.deliver_remote(event)
        elif kind == "version" and self._versions is not None:
            self._versions.changed(message["u"], int(message["v"]), remote=True)
        elif kind == "revoke" and self._keys is not None:
            self._keys.revoked(message["id"], remote=True)
        elif kind == "webhook" and self._webhooks is not None:
            kinds = message["kinds"]
            self._webhooks.index_changed(message["u"], message["id"], None if kinds is None else tuple(kinds))
        elif kind == "resync":
            self._resync_local()
        else:
            return
        self.delivered += 1

    def _resync_local(self) -> None:
        """Re-read cached token versions and keys from the database (in the background): announcements may have
        been missed. Listeners hear what changed, as if the announcement had arrived."""
        if self._resync is not None and not self._resync.done():
            self._resync.cancel()  # a newer resync supersedes it
        self._resync = asyncio.get_running_loop().create_task(self._reload(), name="fanout-resync")

    async def _reload(self) -> None:
        try:
            if self._versions is not None:
                await self._versions.reload_all()
            if self._keys is not None:
                await self._keys.reload_all()
            if self._webhooks is not None:
                await self._webhooks.reload_index()
            self.resyncs += 1
        except Exception:  # the database is away too: the next request of each user or key reads it again
            log.exception("Redis fan-out: could not re-read token versions and API keys")


def _safe_location(url: str) -> str:
    """host:port/db of a Redis URL, without the password."""
    parts = urlsplit(url)
    return f"{parts.hostname or parts.path}:{parts.port or 6379}{parts.path if parts.hostname else ''}"
