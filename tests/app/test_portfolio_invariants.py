"""Property: whatever orders and trades happen, money is conserved exactly.

balance(asset) = start + Σ received − Σ paid − Σ fees        (free + locked, per asset)
locked(asset)  = Σ reservations of the account's open orders
free ≥ 0, locked ≥ 0
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.orders import OrderRequest
from app.services import Services
from storage.models import Order
from storage.repositories import orders as order_repo
from tests.factories import PASSWORD, trade, unique_email

action = st.one_of(
    st.tuples(st.just("market"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 30)),
    st.tuples(st.just("limit"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 30), st.integers(-300, 300)),
    st.tuples(st.just("stop"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 30), st.integers(20, 300)),
    st.tuples(st.just("trade"), st.integers(-400, 400), st.integers(1, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 10)),
)


@pytest.fixture
async def running(services: Services) -> AsyncIterator[Services]:
    await services.engine.start()
    yield services
    await services.engine.stop()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(action, min_size=1, max_size=12))
async def test_money_is_conserved_exactly(running: Services, actions: list[tuple[object, ...]]) -> None:
    user = (await running.auth.register(unique_email(), PASSWORD)).id
    mid = running.market.ticker("BTCUSDT").price  # type: ignore[union-attr]
    placed: list[str] = []
    for step in actions:
        kind = step[0]
        if kind in ("market", "limit", "stop"):
            side, lots = str(step[1]), int(step[2])  # type: ignore[call-overload]
            fields: dict[str, object] = {"quantity": str(Decimal("0.001") * lots)}
            if kind == "limit":
                fields.update(type="LIMIT", price=str(mid + int(step[3])))  # type: ignore[call-overload]
            elif kind == "stop":
                offset = int(step[3])  # type: ignore[call-overload]
                fields.update(type="STOP_MARKET", stop_price=str(mid + offset if side == "BUY" else mid - offset))
            request = OrderRequest(symbol="BTCUSDT", side=side, type=str(fields.pop("type", "MARKET")), **fields)  # type: ignore[arg-type]
            placed.append((await running.orders.submit(user, request)).order["id"])
        elif kind == "trade":
            running.market.apply_trade(trade("BTCUSDT", str(mid + int(step[1])), str(Decimal("0.001") * int(step[2]))))  # type: ignore[arg-type, call-overload]
        elif placed:
            order = await running.orders.get(user, placed[int(step[1]) % len(placed)])  # type: ignore[call-overload]
            if order["status"] in ("OPEN", "PARTIALLY_FILLED", "PENDING"):
                await running.orders.cancel(user, order["id"])
        await running.engine.drain()
        await check_invariants(running, user)


async def check_invariants(services: Services, user_id: str) -> None:
    expected: dict[str, Decimal] = defaultdict(Decimal)
    expected["USDT"] = Decimal(10000)
    for fill in await services.orders.fills(user_id, limit=1000):
        price, qty, fee = Decimal(fill["price"]), Decimal(fill["quantity"]), Decimal(fill["fee"])
        if fill["side"] == "BUY":
            expected["USDT"] -= price * qty
            expected["BTC"] += qty - fee
        else:
            expected["BTC"] -= qty
            expected["USDT"] += price * qty - fee
    balances = {b.asset: b for b in await services.portfolio.balances(user_id, None)}
    account = await services.accounts.resolve(user_id, None)
    open_orders: list[Order] = services.db.run_sync(lambda s: order_repo.open_for_account(s, account.id))
    locked: dict[str, Decimal] = defaultdict(Decimal)
    for order in open_orders:  # computed here from first principles, not with the code under test
        left = (order.quantity or Decimal(0)) - order.filled_quantity
        if order.side == "SELL":
            locked["BTC"] += left
        else:
            locked["USDT"] += left * (order.price if order.type == "LIMIT" else order.stop_price)  # type: ignore[operator]
    for asset in {*expected, *balances}:
        row = balances.get(asset)
        free, held = (row.free, row.locked) if row else (Decimal(0), Decimal(0))
        assert free + held == expected[asset], asset
        assert held == locked[asset], asset
        assert free >= 0 and held >= 0, asset
