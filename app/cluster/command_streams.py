"""Commands for accounts another replica executes, through one Redis Stream per partition (CLUSTER mode;
docs/scaling.md, measured against a PostgreSQL queue in docs/command-routing.md).

Intake has already committed the order (or the cancel request) on whichever replica took the request; a command
for a partition held elsewhere is appended here (`XADD <prefix>commands:<partition>`, after that commit) and the
partition's owner reads it through the consumer group `owners` (`XREADGROUP`), hands it to its executor and
acknowledges it (`XACK`) once the executor's batch committed. A replica that takes a partition over claims what
the previous owner read but never acknowledged (`XAUTOCLAIM`).

The stream only makes commands fast; the database stays the truth: a new owner re-reads the partition's PENDING
orders and stored cancel requests anyway, and the PENDING sweeper re-queues what any lost message left behind, so
a message lost with Redis delays an order, never loses it, and a message seen twice executes once (the executor
skips an order that is no longer PENDING). Appending never waits for Redis: an outbox drained by one task, as in
app/fanout.py; both connections reconnect through `app.retry.reconnect_forever`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from app.cluster.scope import PartitionScope
from app.domain import Venue
from app.execution.commands import CancelOrder, ForwardedReset, SubmitOrder
from app.redis_link import next_batch, redis_client
from app.retry import RECONNECT, RetryPolicy, reconnect_forever
from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Command = SubmitOrder | CancelOrder | ForwardedReset
GROUP = "owners"
STREAM_MAXLEN = 100_000  # approximate trim: acknowledged history is not needed, the database is the journal
OUTBOX_SIZE = 100_000
BATCH = 500
READ_BLOCK_MS = 200  # how long one read waits; also how soon a newly held partition's stream is read


class CommandStreams:
    def __init__(
        self,
        url: str,
        scope: PartitionScope,
        deliver: Callable[[Command], None],
        *,
        prefix: str = "tradewind:",
        consumer: str,
        policy: RetryPolicy = RECONNECT,
    ) -> None:
        self.url = url
        self.scope = scope
        self.deliver = deliver
        self.prefix = prefix
        self.consumer = consumer
        self.policy = policy
        self.watched: set[int] = set()  # partitions whose stream this replica reads
        self._ready: set[int] = set()  # ... whose group exists and whose left-overs were claimed
        self._outbox: asyncio.Queue[tuple[int, dict[str, str]]] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self._unsent: list[tuple[int, dict[str, str]]] = []
        self._acks: dict[int, list[str]] = {}
        self._client: redis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.forwarded = 0

    def stream(self, partition: int) -> str:
        return f"{self.prefix}commands:{partition}"

    # ---- this replica as the sender ------------------------------------------------------------------------

    def forward(self, command: Command) -> None:
        """Send a committed command to its partition's owner (never waits; a full outbox drops it: the owner's
        sweeper finds the order PENDING and runs it anyway)."""
        try:
            self._outbox.put_nowait((self.scope.partition(command.account_id), encode(command)))
            self.forwarded += 1
        except asyncio.QueueFull:
            log.warning("command outbox full: %s left to the owner's PENDING sweeper", command)

    # ---- this replica as an owner ----------------------------------------------------------------------------

    def watch(self, partition: int) -> None:
        self.watched.add(partition)

    def unwatch(self, partition: int) -> None:
        self.watched.discard(partition)
        self._ready.discard(partition)

    def acknowledge(self, deliveries: list[str]) -> None:
        """Entries ("<partition>:<entry id>") whose commands were executed (or dropped as done): XACK soon."""
        for delivery in deliveries:
            partition, _, entry = delivery.partition(":")
            self._acks.setdefault(int(partition), []).append(entry)

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = redis_client(self.url, f"tradewind-commands-{self.consumer}", health_check=False)
        self._tasks = [
            asyncio.create_task(self._run(self._send, "sending"), name="commands-send"),
            asyncio.create_task(self._run(self._read, "reading"), name="commands-read"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._flush_acks()
            await self._client.aclose()
            self._client = None

    async def _run(self, session: Callable[[Callable[[], None]], Any], what: str) -> None:
        def failed(error: Exception | None, delay: float) -> None:
            reason = type(error).__name__ if error is not None else "connection closed"
            log.warning("Redis command streams %s lost (%s); retry in %.1fs", what, reason, delay)
            self._ready.clear()  # re-check groups and claim left-overs after the reconnect

        await reconnect_forever(session, policy=self.policy, on_failure=failed)

    async def _send(self, connected: Callable[[], None]) -> None:
        assert self._client is not None
        await self._client.ping()
        connected()
        while True:
            self._unsent = await next_batch(self._outbox, self._unsent, BATCH)
            async with self._client.pipeline(transaction=False) as pipe:
                for partition, fields in self._unsent:
                    pipe.xadd(self.stream(partition), fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
                await pipe.execute()
            self._unsent = []

    async def _read(self, connected: Callable[[], None]) -> None:
        assert self._client is not None
        await self._client.ping()
        connected()
        while True:
            for partition in sorted(self.watched - self._ready):
                await self._take_over(partition)
            await self._flush_acks()
            streams = {self.stream(p): ">" for p in sorted(self._ready & self.watched)}
            if not streams:
                await asyncio.sleep(READ_BLOCK_MS / 1000)
                continue
            answer: Any = await self._client.xreadgroup(
                GROUP,
                self.consumer,
                streams,  # type: ignore[arg-type]
                count=BATCH,
                block=READ_BLOCK_MS,
            )
            for stream, entries in answer or ():
                self._hand_over(_partition_of_stream(stream), entries)

    async def _take_over(self, partition: int) -> None:
        """Create the partition's group if it is new, then claim what an earlier owner read and never acked."""
        assert self._client is not None
        stream = self.stream(partition)
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await self._client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        start = "0-0"
        while True:
            answer: Any = await self._client.xautoclaim(stream, GROUP, self.consumer, min_idle_time=0, start_id=start)
            start, entries = answer[0], answer[1]
            self._hand_over(partition, entries)
            if start in (b"0-0", "0-0") or not entries:
                break
        self._ready.add(partition)

    def _hand_over(self, partition: int, entries: list[Any]) -> None:
        for entry_id, fields in entries:
            entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            if partition not in self.watched or not fields:  # given up meanwhile: its new owner claims it
                continue
            try:
                command = decode(fields, f"{partition}:{entry}")
            except (KeyError, ValueError):
                log.error("unreadable command entry %s in partition %d: acknowledged and skipped", entry, partition)
                self.acknowledge([f"{partition}:{entry}"])
                continue
            self.deliver(command)

    async def _flush_acks(self) -> None:
        if not self._acks or self._client is None:
            return
        acks, self._acks = self._acks, {}
        async with self._client.pipeline(transaction=False) as pipe:
            for partition, entries in acks.items():
                pipe.xack(self.stream(partition), GROUP, *entries)
            await pipe.execute()


def encode(command: Command) -> dict[str, str]:
    if isinstance(command, ForwardedReset):
        balances = ",".join(f"{asset}={amount}" for asset, amount in command.balances.items())
        return {"k": "reset", "a": command.account_id, "u": command.user_id, "b": balances}
    kind = "submit" if isinstance(command, SubmitOrder) else "cancel"
    return {"k": kind, "o": command.order_id, "a": command.account_id, "v": command.venue.value}


def decode(fields: dict[Any, Any], delivery: str) -> Command:
    text = {_text(k): _text(v) for k, v in fields.items()}
    if text["k"] == "reset":
        pairs = (item.split("=", 1) for item in text["b"].split(",") if item)
        balances = {asset: Decimal(amount) for asset, amount in pairs}
        return ForwardedReset(text["a"], text["u"], balances, delivery)
    venue = Venue(text["v"])
    if text["k"] == "submit":
        return SubmitOrder(text["o"], text["a"], venue, delivery=delivery)
    if text["k"] == "cancel":
        return CancelOrder(text["o"], text["a"], venue, delivery=delivery)
    raise ValueError(f"unknown command kind {text['k']!r}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _partition_of_stream(stream: Any) -> int:
    return int(_text(stream).rsplit(":", 1)[1])
