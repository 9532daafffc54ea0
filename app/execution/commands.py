"""Typed commands of the execution core. Intake journals an order (its row, PENDING) before it sends a command;
a command that is lost in a crash is rebuilt from that journal at start-up (or by the PENDING sweeper)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from app.domain import Venue
from app.execution.records import OrderRecord
from app.immutable import immutable
from app.market.models import Trade


@immutable
class SubmitOrder:
    """Execute a stored PENDING order. `record` is the stored row as intake built it (saves reading it back);
    None means "read it from the database" (recovery, the sweeper)."""

    order_id: str
    account_id: str
    venue: Venue
    record: OrderRecord | None = None
    delivery: str | None = None  # CLUSTER mode: the stream entry it came in, acknowledged once executed


@dataclass(frozen=True, slots=True)
class SubmitOrderList:
    """Execute a stored order list (a stand-alone OCO) as one venue call; built by the paper executor from the
    SubmitOrder of any of its legs (the legs are read from the journal: an order list is never taken from memory)."""

    account_id: str
    records: tuple[OrderRecord, ...]


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel an order whose cancel request is stored (`cancel_requested_at`)."""

    order_id: str
    account_id: str
    venue: Venue
    delivery: str | None = None  # CLUSTER mode: the stream entry it came in, acknowledged once executed


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """A public trade printed: resting paper orders may fill, stops may fire."""

    trade: Trade


@dataclass(frozen=True, slots=True)
class ResetAccount:
    """Paper reset: cancel open orders, set balances, positions from zero. `done` resolves once committed."""

    account_id: str
    user_id: str
    balances: Mapping[str, Decimal]
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class ForwardedReset:
    """CLUSTER mode: a paper reset asked on a replica that does not hold the account, for its owner."""

    account_id: str
    user_id: str
    balances: Mapping[str, Decimal]
    delivery: str | None = None


@dataclass(frozen=True, slots=True)
class Rescope:
    """CLUSTER mode: the partitions held changed; reload memory between two batches. `done` resolves after."""

    done: asyncio.Future[None]


PaperCommand = SubmitOrder | SubmitOrderList | CancelOrder | MarketTrade | ResetAccount
