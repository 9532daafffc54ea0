"""Commands forwarded to a partition's owner through Redis Streams (app/cluster/command_streams.py), on the real
Redis: delivered to the replica watching the partition only, acknowledged, and what an owner read but never
acknowledged is claimed by the next owner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import redis.asyncio as redis

from app.cluster.command_streams import GROUP, Command, CommandStreams, decode, encode
from app.cluster.leases import Lease
from app.cluster.partitions import partition_of
from app.cluster.scope import PartitionScope
from app.domain import Venue
from app.execution.commands import CancelOrder, ForwardedReset, SubmitOrder
from tests.factories import wait_for

PARTITIONS = 4


def test_commands_survive_the_wire() -> None:
    for command in (
        SubmitOrder("o1", "acc", Venue.PAPER),
        CancelOrder("o2", "acc", Venue.BINANCE_TESTNET),
        ForwardedReset("acc", "user", {"USDT": Decimal("10000.50"), "BTC": Decimal("0")}),
    ):
        back = decode({k.encode(): v.encode() for k, v in encode(command).items()}, "3:1-0")
        assert back.delivery == "3:1-0"
        assert back.account_id == command.account_id
        assert type(back) is type(command)
    reset = decode(encode(ForwardedReset("acc", "u", {"USDT": Decimal("1.10")})), "0:1-0")
    assert isinstance(reset, ForwardedReset) and reset.balances == {"USDT": Decimal("1.10")}


def account_in(partition: int) -> str:
    return next(f"acc-{i}" for i in range(10_000) if partition_of(f"acc-{i}", PARTITIONS) == partition)


class Replica:
    def __init__(self, redis_url: str, prefix: str, name: str) -> None:
        self.scope = PartitionScope(PARTITIONS)
        self.received: list[Command] = []
        self.streams = CommandStreams(redis_url, self.scope, self.received.append, prefix=prefix, consumer=name)

    def hold(self, partition: int) -> None:
        self.scope.add(partition, Lease(f"exec:{partition}", self.streams.consumer, 1))
        self.streams.watch(partition)


@pytest.fixture
async def pair(redis_url: str, channel_prefix: str) -> AsyncIterator[tuple[Replica, Replica]]:
    a, b = Replica(redis_url, channel_prefix, "a"), Replica(redis_url, channel_prefix, "b")
    await a.streams.start()
    await b.streams.start()
    yield a, b
    await a.streams.stop()
    await b.streams.stop()


async def test_a_command_reaches_the_owner_only_and_is_acknowledged(
    pair: tuple[Replica, Replica], redis_admin: redis.Redis
) -> None:
    a, b = pair
    b.hold(2)
    a.hold(1)
    mine, theirs = account_in(1), account_in(2)
    a.streams.forward(SubmitOrder("o-1", theirs, Venue.PAPER))
    a.streams.forward(CancelOrder("o-1", theirs, Venue.PAPER))
    await wait_for(lambda: len(b.received) == 2, what="both commands at the owner")
    assert [type(c) for c in b.received] == [SubmitOrder, CancelOrder]
    assert [c.order_id for c in b.received] == ["o-1", "o-1"]  # type: ignore[union-attr]
    assert a.received == []
    stream = b.streams.stream(2)
    assert (await redis_admin.xpending(stream, GROUP))["pending"] == 2  # read, not yet executed

    b.streams.acknowledge([c.delivery for c in b.received if c.delivery is not None])
    for _ in range(500):  # acks go out on the reader's next round
        if (await redis_admin.xpending(stream, GROUP))["pending"] == 0:
            break
        await asyncio.sleep(0.02)
    assert (await redis_admin.xpending(stream, GROUP))["pending"] == 0
    assert await redis_admin.xlen(a.streams.stream(1)) == 0  # nothing for a's own partition
    assert mine


async def test_what_an_owner_read_but_never_acknowledged_goes_to_the_next_owner(
    pair: tuple[Replica, Replica],
) -> None:
    a, b = pair
    a.hold(3)
    account = account_in(3)
    b.streams.forward(SubmitOrder("o-9", account, Venue.PAPER))
    await wait_for(lambda: len(a.received) == 1, what="the first owner read it")
    await a.streams.stop()  # dies before its batch committed: no XACK
    a.streams.unwatch(3)

    b.hold(3)  # takes the partition over
    await wait_for(lambda: len(b.received) == 1, what="the claim by the new owner")
    assert b.received[0].order_id == "o-9"  # type: ignore[union-attr]
    await a.streams.start()  # for the fixture's stop
