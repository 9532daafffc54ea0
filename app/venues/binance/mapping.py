"""Binance Spot wire format <-> venue types: statuses, order types, order/trade/event parsing.

Pure functions on the raw JSON (order responses, myTrades rows, user-data events). Every amount is read from
Binance's decimal strings into Decimal; nothing passes through float. Filters and order requests: filters.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain import OrderStatus, OrderType
from app.errors import VenueUnavailable
from app.ids import is_replace_cancel_id
from app.venues.base import VenueBalance, VenueFill, VenueOrder

STATUSES: dict[str, OrderStatus] = {
    "NEW": OrderStatus.OPEN,
    "PENDING_NEW": OrderStatus.OPEN,  # order-list legs before they are working
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "PENDING_CANCEL": OrderStatus.OPEN,  # documented as unused; still open until CANCELED arrives
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # self-trade prevention
}

TO_BINANCE_TYPE: dict[str, str] = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.LIMIT_MAKER: "LIMIT_MAKER",
    OrderType.STOP_MARKET: "STOP_LOSS",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
    OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT_LIMIT",
    OrderType.TRAILING_STOP_MARKET: "STOP_LOSS",  # with trailingDelta and no stopPrice (trailing-stop-faq.md)
}
FROM_BINANCE_TYPE: dict[str, str] = {
    binance: str(ours) for ours, binance in TO_BINANCE_TYPE.items() if ours is not OrderType.TRAILING_STOP_MARKET
}
LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
TIME_IN_FORCE_TYPES = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
TRIGGERED_TYPES = frozenset(
    {OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT}
)
TIME_IN_FORCE = frozenset({"GTC", "IOC", "FOK"})


def dec(raw: object) -> Decimal:
    """A Binance decimal string (or int) as an exact Decimal."""
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise VenueUnavailable(f"Binance sent a malformed number: {raw!r}") from None


def to_decimal(value: object) -> Decimal:
    """A number from ccxt as an exact Decimal: strings as sent, floats (ccxt's parsed values) through their shortest
    repr, so 0.1 is Decimal("0.1") and not 0.1000000000000000055... Raises ValueError for anything else."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, str | int) and not isinstance(value, bool):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        raise ValueError(f"not a number: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def opt_dec(raw: object) -> Decimal | None:
    """Decimal, or None for absent / zero (Binance renders 'no price' as 0.00000000)."""
    if raw in (None, ""):
        return None
    value = dec(raw)
    return value if value != 0 else None


# ---------------------------------------------------------------------------------------------- responses


def status_of(raw: object) -> OrderStatus:
    """Binance order status -> ours. An unknown status is not guessed at: the outcome is 'unknown'."""
    status = STATUSES.get(str(raw))
    if status is None:
        raise VenueUnavailable(f"Binance reported an unknown order status {raw!r}")
    return status


def ended_status(raw_status: object, cancel_id: object) -> OrderStatus:
    """Binance's status, except that a cancel made by a modify/replace (its cancel id is ours: `replace_cancel_id`)
    ends the order REPLACED rather than CANCELED."""
    status = status_of(raw_status)
    if status is OrderStatus.CANCELED and is_replace_cancel_id(str(cancel_id or "")):
        return OrderStatus.REPLACED
    return status


def parse_order(raw: Mapping[str, Any], fills: Iterable[VenueFill] = ()) -> VenueOrder:
    """An order object (POST/GET/DELETE /api/v3/order, openOrders). A cancel answer carries the cancel's own id in
    clientOrderId and the order's in origClientOrderId."""
    binance_type = str(raw.get("type", ""))
    cancel_id = raw.get("clientOrderId") if raw.get("origClientOrderId") else None
    return VenueOrder(
        client_order_id=str(raw.get("origClientOrderId") or raw.get("clientOrderId", "")),
        venue_order_id=str(raw.get("orderId", "")),
        symbol=str(raw.get("symbol", "")),
        status=ended_status(raw.get("status"), cancel_id),
        filled_quantity=dec(raw.get("executedQty", "0")),
        fills=tuple(fills),
        side=str(raw["side"]) if raw.get("side") else None,
        type=FROM_BINANCE_TYPE.get(binance_type, binance_type or None),
        quantity=opt_dec(raw.get("origQty")),
        price=opt_dec(raw.get("price")),
        stop_price=opt_dec(raw.get("stopPrice")),
    )


def placement_fills(raw: Mapping[str, Any]) -> list[VenueFill]:
    """`fills` of a FULL new-order response: executions at placement, so the order was the taker."""
    ts = int(raw.get("transactTime") or raw.get("workingTime") or 0)
    return [
        VenueFill(
            trade_id=str(fill["tradeId"]),
            price=dec(fill["price"]),
            quantity=dec(fill["qty"]),
            fee=dec(fill.get("commission", "0")),
            fee_asset=str(fill.get("commissionAsset") or ""),
            liquidity="TAKER",
            ts=ts,
        )
        for fill in raw.get("fills") or []
    ]


def trade_fill(row: Mapping[str, Any]) -> VenueFill:
    """One GET /api/v3/myTrades row."""
    return VenueFill(
        trade_id=str(row["id"]),
        price=dec(row["price"]),
        quantity=dec(row["qty"]),
        fee=dec(row.get("commission", "0")),
        fee_asset=str(row.get("commissionAsset") or ""),
        liquidity="MAKER" if row.get("isMaker") else "TAKER",
        ts=int(row.get("time") or 0),
    )


def account_balances(raw: Mapping[str, Any]) -> list[VenueBalance]:
    """GET /api/v3/account balances, without the all-zero rows (testnet lists hundreds of assets)."""
    out = []
    for row in raw.get("balances") or []:
        free, locked = dec(row.get("free", "0")), dec(row.get("locked", "0"))
        if free or locked:
            out.append(VenueBalance(str(row["asset"]), free, locked))
    return out


# ---------------------------------------------------------------------------------------------- user-data events


def execution_report(event: Mapping[str, Any]) -> VenueOrder:
    """An executionReport as the order's new state plus the one execution it reports (x == TRADE)."""
    fills: tuple[VenueFill, ...] = ()
    if event.get("x") == "TRADE":
        fills = (
            VenueFill(
                trade_id=str(event["t"]),
                price=dec(event["L"]),
                quantity=dec(event["l"]),
                fee=dec(event.get("n") or "0"),
                fee_asset=str(event.get("N") or ""),
                liquidity="MAKER" if event.get("m") else "TAKER",
                ts=int(event.get("T") or event.get("E") or 0),
            ),
        )
    reason = str(event.get("r") or "NONE")
    binance_type = str(event.get("o", ""))
    return VenueOrder(
        # On a cancel, `c` is the cancel request's id and `C` the order's own.
        client_order_id=str(event.get("C") or event.get("c") or ""),
        venue_order_id=str(event.get("i", "")),
        symbol=str(event.get("s", "")),
        status=ended_status(event.get("X"), event.get("c") if event.get("C") else None),
        filled_quantity=dec(event.get("z", "0")),
        fills=fills,
        reason=None if reason == "NONE" else reason,
        side=str(event["S"]) if event.get("S") else None,
        type=FROM_BINANCE_TYPE.get(binance_type, binance_type or None),
        quantity=opt_dec(event.get("q")),
        price=opt_dec(event.get("p")),
        stop_price=opt_dec(event.get("P")),
    )


def account_position(event: Mapping[str, Any]) -> list[VenueBalance]:
    """An outboundAccountPosition: the assets the triggering operation may have changed."""
    return [VenueBalance(str(row["a"]), dec(row.get("f", "0")), dec(row.get("l", "0"))) for row in event.get("B") or []]
