"""The pre-trade checks made with a symbol's exchangeInfo filters (rules.py) before an order is sent.

The checks follow Binance's own rules (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL) on exact Decimals, so an
order the exchange would refuse with -1013 is refused here with a clear message and no request.
"""

from __future__ import annotations

from decimal import Decimal

from app.domain import OrderType, fmt
from app.errors import VenueRejected
from app.venues.base import OcoSpec, OrderSpec, ReplaceSpec
from app.venues.binance.mapping import (
    LIMIT_TYPES,
    TIME_IN_FORCE,
    TIME_IN_FORCE_TYPES,
    TO_BINANCE_TYPE,
    TRIGGERED_TYPES,
)
from app.venues.binance.rules import SymbolFilters

__all__ = ["SymbolFilters", "oco_params", "order_params", "replace_params"]


def _on_grid(value: Decimal, start: Decimal, step: Decimal) -> bool:
    # Binance's rule: (value - minimum) % step == 0 (a zero step disables the check).
    return step == 0 or (value - start) % step == 0


def _check_price(name: str, value: Decimal, f: SymbolFilters) -> None:
    if value <= 0:
        raise VenueRejected(f"{name} must be greater than 0")
    if value < f.min_price or (f.max_price > 0 and value > f.max_price):
        raise VenueRejected(
            f"{name} {fmt(value)} is outside {fmt(f.min_price)}..{fmt(f.max_price)} for {f.symbol} (PRICE_FILTER)"
        )
    if not _on_grid(value, f.min_price, f.tick_size):
        raise VenueRejected(
            f"{name} {fmt(value)} is not a multiple of the tick size {fmt(f.tick_size)} for {f.symbol} (PRICE_FILTER)"
        )


def _check_quantity(quantity: Decimal, f: SymbolFilters, market_like: bool) -> None:
    if quantity <= 0:
        raise VenueRejected("quantity must be greater than 0")
    if quantity < f.min_qty:
        raise VenueRejected(f"quantity {fmt(quantity)} is below the minimum {fmt(f.min_qty)} for {f.symbol} (LOT_SIZE)")
    if f.max_qty > 0 and quantity > f.max_qty:
        raise VenueRejected(f"quantity {fmt(quantity)} is above the maximum {fmt(f.max_qty)} for {f.symbol} (LOT_SIZE)")
    if not _on_grid(quantity, f.min_qty, f.step_size):
        raise VenueRejected(
            f"quantity {fmt(quantity)} is not a multiple of the step size {fmt(f.step_size)} for {f.symbol} (LOT_SIZE)"
        )
    if market_like and f.market_max_qty > 0 and quantity > f.market_max_qty:
        raise VenueRejected(
            f"quantity {fmt(quantity)} is above the market-order maximum {fmt(f.market_max_qty)} for {f.symbol} "
            "(MARKET_LOT_SIZE)"
        )


def _check_notional(notional: Decimal, f: SymbolFilters, *, check_max: bool) -> None:
    if notional < f.min_notional:
        raise VenueRejected(
            f"order value {fmt(notional)} {f.quote} is below the minimum {fmt(f.min_notional)} {f.quote} "
            f"for {f.symbol} (NOTIONAL)"
        )
    if check_max and f.max_notional > 0 and notional > f.max_notional:
        raise VenueRejected(
            f"order value {fmt(notional)} {f.quote} is above the maximum {fmt(f.max_notional)} {f.quote} "
            f"for {f.symbol} (NOTIONAL)"
        )


# ---------------------------------------------------------------------------------------------- order requests


def order_params(spec: OrderSpec, f: SymbolFilters) -> dict[str, str]:
    """POST /api/v3/order parameters for `spec`, after the pre-trade checks. Raises VenueRejected (nothing sent)
    when the spec is inconsistent or breaks an exchangeInfo filter."""
    if f.status != "TRADING":
        raise VenueRejected(f"{f.symbol} is not trading on Binance testnet (status {f.status})")
    binance_type = TO_BINANCE_TYPE.get(spec.type)
    if binance_type is None:
        raise VenueRejected(f"order type {spec.type} is not supported on Binance testnet")
    if spec.side not in ("BUY", "SELL"):
        raise VenueRejected(f"side must be BUY or SELL, not {spec.side}")
    is_limit = spec.type in LIMIT_TYPES
    is_triggered = spec.type in TRIGGERED_TYPES
    params = {
        "symbol": f.symbol,
        "side": spec.side,
        "type": binance_type,
        "newClientOrderId": spec.client_order_id,
        "newOrderRespType": "FULL",
    }
    if spec.type == OrderType.MARKET:
        if (spec.quantity is None) == (spec.quote_quantity is None):
            raise VenueRejected("a MARKET order needs exactly one of quantity and quote_quantity")
    elif spec.quantity is None:
        raise VenueRejected(f"a {spec.type} order needs a quantity")
    elif spec.quote_quantity is not None:
        raise VenueRejected("quote_quantity is only allowed for MARKET orders")
    if is_limit != (spec.price is not None):
        raise VenueRejected(f"a {spec.type} order {'needs' if is_limit else 'takes no'} price")
    if is_triggered != (spec.stop_price is not None):
        raise VenueRejected(f"a {spec.type} order {'needs' if is_triggered else 'takes no'} stop price")

    if spec.price is not None:
        _check_price("price", spec.price, f)
        params["price"] = fmt(spec.price) or "0"
    if spec.stop_price is not None:
        _check_price("stop price", spec.stop_price, f)
        params["stopPrice"] = fmt(spec.stop_price) or "0"
    if spec.quantity is not None:
        _check_quantity(spec.quantity, f, market_like=not is_limit)
        params["quantity"] = fmt(spec.quantity) or "0"
        # The reference price for MIN_NOTIONAL: the limit price, else the trigger. A MARKET order by quantity has
        # no price we know without a call; Binance checks it against its average price.
        reference = spec.price if spec.price is not None else spec.stop_price
        if reference is not None:
            _check_notional(spec.quantity * reference, f, check_max=is_limit)
    if spec.quote_quantity is not None:
        if spec.quote_quantity <= 0:
            raise VenueRejected("quote_quantity must be greater than 0")
        _check_notional(spec.quote_quantity, f, check_max=False)
        params["quoteOrderQty"] = fmt(spec.quote_quantity) or "0"
    if spec.type == OrderType.TRAILING_STOP_MARKET:
        params["trailingDelta"] = str(_trailing_delta(spec, f))
    elif spec.trailing_delta_bps is not None:
        raise VenueRejected(f"a {spec.type} order takes no trailing delta")
    if spec.type in TIME_IN_FORCE_TYPES:  # LIMIT_MAKER sends none: Binance answers -1106 to one
        tif = spec.time_in_force or "GTC"
        if tif not in TIME_IN_FORCE:
            raise VenueRejected(f"time in force must be GTC, IOC or FOK, not {tif}")
        params["timeInForce"] = tif
    return params


def _trailing_delta(spec: OrderSpec, f: SymbolFilters) -> int:
    """A trailing stop-loss SELL's delta, inside the symbol's TRAILING_DELTA filter ("below" deltas)."""
    delta = spec.trailing_delta_bps
    if delta is None:
        raise VenueRejected(f"a {spec.type} order needs a trailing delta")
    if spec.side != "SELL":
        raise VenueRejected(f"{spec.type} orders are SELL only")
    if f.max_trailing_below and not f.min_trailing_below <= delta <= f.max_trailing_below:
        raise VenueRejected(
            f"trailing delta {delta} is outside {f.min_trailing_below}..{f.max_trailing_below} BIPS for {f.symbol} "
            "(TRAILING_DELTA)"
        )
    return delta


def replace_params(spec: ReplaceSpec, f: SymbolFilters) -> dict[str, str]:
    """POST /api/v3/order/cancelReplace parameters: the new order's (same checks as `order_params`), the order to
    cancel by its client id, the cancel's own id, and STOP_ON_FAILURE (no new order unless the cancel succeeded)."""
    params = order_params(spec.new, f)
    params["cancelReplaceMode"] = "STOP_ON_FAILURE"
    params["cancelOrigClientOrderId"] = spec.cancel_client_order_id
    params["cancelNewClientOrderId"] = spec.cancel_request_id
    return params


def oco_params(spec: OcoSpec, f: SymbolFilters) -> dict[str, str]:
    """POST /api/v3/orderList/oco parameters for a bracket's exits, after the pre-trade checks (VenueRejected,
    nothing sent). The take-profit leg is a LIMIT_MAKER (it rests, never takes), the stop-loss a STOP_LOSS (market
    once triggered). On a SELL list the take-profit is the above leg; on a BUY list it is the below leg."""
    if f.status != "TRADING":
        raise VenueRejected(f"{f.symbol} is not trading on Binance testnet (status {f.status})")
    if spec.side not in ("BUY", "SELL"):
        raise VenueRejected(f"side must be BUY or SELL, not {spec.side}")
    _check_price("take-profit price", spec.take_profit_price, f)
    _check_price("stop-loss price", spec.stop_price, f)
    _check_quantity(spec.quantity, f, market_like=True)  # the stop-loss leg executes as a market order
    for price in (spec.take_profit_price, spec.stop_price):
        _check_notional(spec.quantity * price, f, check_max=False)
    take_profit = {"Type": "LIMIT_MAKER", "Price": fmt(spec.take_profit_price) or "0"}
    take_profit["ClientOrderId"] = spec.take_profit_client_order_id
    stop_loss = {"Type": "STOP_LOSS", "StopPrice": fmt(spec.stop_price) or "0"}
    if spec.stop_limit_price is not None:
        _check_price("stop-limit price", spec.stop_limit_price, f)
        stop_loss.update({"Type": "STOP_LOSS_LIMIT", "Price": fmt(spec.stop_limit_price) or "0", "TimeInForce": "GTC"})
    stop_loss["ClientOrderId"] = spec.stop_loss_client_order_id
    above, below = (take_profit, stop_loss) if spec.side == "SELL" else (stop_loss, take_profit)
    params = {
        "symbol": f.symbol,
        "side": spec.side,
        "quantity": fmt(spec.quantity) or "0",
        "listClientOrderId": spec.list_client_order_id,
        "newOrderRespType": "FULL",
    }
    params.update({f"above{name}": value for name, value in above.items()})
    params.update({f"below{name}": value for name, value in below.items()})
    return params
