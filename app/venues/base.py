"""The protocol every external venue implements (Binance Spot Testnet today; a new exchange is one new file).

The paper venue runs inside the execution engine's transactions instead (app/venues/paper.py); both are held to
the same behaviour by the shared venue test suite: same order types, same state transitions, same events.

Errors a venue raises (app/errors.py): VenueRejected — a definite refusal, the order becomes REJECTED;
VenueUnavailable — timeout / 5xx / dropped connection *after* the request may have been sent, the outcome is unknown
and the engine resolves it by `fetch_order(client_order_id)`; VenueThrottled — 429/418, stop sending for
`retry_after` seconds. Time-sync errors (-1021) are retried inside the adapter with the same client order id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from app.domain import OrderStatus, SymbolRules


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What to place. `client_order_id` is deterministic from our order id (Binance newClientOrderId)."""

    client_order_id: str
    symbol: str
    side: str  # BUY | SELL
    type: str  # our OrderType value: MARKET, LIMIT, STOP_MARKET, STOP_LIMIT, TAKE_PROFIT_MARKET, TAKE_PROFIT_LIMIT
    quantity: Decimal | None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None
    trailing_delta_bps: int | None = None  # TRAILING_STOP_MARKET


@dataclass(frozen=True, slots=True)
class OcoSpec:
    """A bracket's exit pair, one-cancels-the-other: a take-profit limit and a stop-loss (market when triggered),
    same side and quantity. Client order ids are deterministic from our ids, like OrderSpec's."""

    list_client_order_id: str
    symbol: str
    side: str  # the exits' side: SELL after a BUY entry, BUY after a SELL entry
    quantity: Decimal
    take_profit_client_order_id: str
    take_profit_price: Decimal
    stop_loss_client_order_id: str
    stop_price: Decimal
    stop_limit_price: Decimal | None = None  # a stop-limit leg (stand-alone OCO); None: the stop-loss is market


@dataclass(frozen=True, slots=True)
class ReplaceSpec:
    """Modify/replace: cancel the order `cancel_client_order_id` and place `new` in one venue request. The cancel
    itself carries `cancel_request_id` (deterministic from the replacement's id), echoed on the canceled order's
    reports."""

    cancel_client_order_id: str
    cancel_request_id: str
    new: OrderSpec


@dataclass(frozen=True, slots=True)
class VenueFill:
    trade_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str  # MAKER | TAKER
    ts: int


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """The venue's view of one order. `fills` holds the fills the venue reported with this view (possibly only
    the newest ones, e.g. one executionReport); the engine de-duplicates them by trade id."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    status: OrderStatus
    filled_quantity: Decimal
    fills: tuple[VenueFill, ...] = ()
    reason: str | None = None
    # Set for orders the venue knows but we did not place (imported as external at reconciliation).
    side: str | None = None
    type: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ReplaceOutcome:
    """A definite answer to a replace: each half is the order's report, or the venue's refusal (`*_error`);
    `new` is None with no `new_error` when the placement was not attempted (the cancel failed first)."""

    canceled: VenueOrder | None
    cancel_error: str | None
    new: VenueOrder | None
    new_error: str | None


@dataclass(frozen=True, slots=True)
class VenueBalance:
    asset: str
    free: Decimal
    locked: Decimal


OrderListener = Callable[[VenueOrder], Awaitable[None]]
BalanceListener = Callable[[list[VenueBalance]], Awaitable[None]]


class ExternalVenue(Protocol):
    """One instance per trading account (its own credentials and client); closed on shutdown."""

    async def load_rules(self) -> Mapping[str, SymbolRules]:
        """Symbol filters from the venue (exchangeInfo): tick, step, min qty, min notional."""
        ...

    async def check_credentials(self) -> None:
        """A signed account call; raises VenueRejected with the venue's words if the key is refused."""
        ...

    async def submit(self, spec: OrderSpec) -> VenueOrder: ...

    async def submit_oco(self, spec: OcoSpec) -> list[VenueOrder]:
        """Place both exits as one order list (both or neither); same error contract as `submit`."""
        ...

    async def replace(self, spec: ReplaceSpec) -> ReplaceOutcome:
        """Cancel one order and place its replacement in one request; the placement is attempted only if the cancel
        succeeded. Same error contract as `submit` for the request as a whole (VenueUnavailable: unknown outcome)."""
        ...

    async def cancel(self, symbol: str, client_order_id: str) -> VenueOrder:
        """Cancel one order; the report is that order's (cancelling an OCO leg cancels its sibling too)."""
        ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> VenueOrder | None:
        """The venue's current view, with every fill of the order; None if the venue never received it."""
        ...

    async def open_orders(self) -> list[VenueOrder]: ...

    async def balances(self) -> list[VenueBalance]: ...

    async def watch(self, on_order: OrderListener, on_balances: BalanceListener) -> None:
        """Run the user-data stream until cancelled, reconnecting with backoff; call the listeners per update."""
        ...

    async def close(self) -> None: ...
