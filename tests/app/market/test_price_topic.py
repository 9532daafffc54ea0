"""The in-process price topic: MarketState changes -> PricePublisher -> EventBus, coalesced per symbol."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from app.events import EventBus, PriceUpdate
from app.market.models import Depth, Trade
from app.market.simulated import SimulatedMarket
from app.market.state import MarketState
from app.market.symbols import simulated_rules
from app.services import PricePublisher

SYMBOLS = ("BTCUSDT", "ETHUSDT")
TS = 1_795_600_000_000


def wire() -> tuple[MarketState, EventBus, list[PriceUpdate]]:
    state = MarketState(SYMBOLS, clock=lambda: 0)
    bus = EventBus()
    state.subscribe(PricePublisher(state, bus).on_change)
    seen: list[PriceUpdate] = []
    bus.subscribe_prices(seen.append)
    return state, bus, seen


async def test_one_update_per_changed_symbol_per_loop_turn_carrying_the_newest_price() -> None:
    state, bus, seen = wire()
    for i in range(50):  # a burst within one event-loop turn
        state.apply_trade(Trade("BTCUSDT", Decimal(70_000 + i), Decimal("0.1"), "BUY", TS + i))
    state.apply_depth(Depth("BTCUSDT", ((Decimal("70048.5"), Decimal(1)),), ((Decimal("70049.5"), Decimal(1)),), TS))
    assert seen == []  # nothing is published synchronously from inside the feed's update path
    await asyncio.sleep(0)
    assert [u.symbol for u in seen] == ["BTCUSDT"]
    message = json.loads(seen[0].message)
    assert message == {
        "type": "PRICE_UPDATE",
        "data": {
            "symbol": "BTCUSDT",
            "price": "70049",
            "bid": "70048.5",
            "ask": "70049.5",
            "change_24h_pct": "0.07",
            "ts": TS + 49,
        },
    }
    assert set(bus.latest_prices) == {"BTCUSDT"} and bus.latest_prices["BTCUSDT"] is seen[0]

    state.apply_trade(Trade("ETHUSDT", Decimal(3_000), Decimal(1), "SELL", TS))
    state.apply_trade(Trade("BTCUSDT", Decimal(69_000), Decimal(1), "SELL", TS + 60))
    await asyncio.sleep(0)
    assert [u.symbol for u in seen[1:]] == ["BTCUSDT", "ETHUSDT"]
    assert seen[1].ticker.price == Decimal(69_000)
    assert len(bus.latest_prices) == 2  # the topic keeps one value per symbol, however long it runs


async def test_a_simulated_step_publishes_each_symbol_once() -> None:
    state, _, seen = wire()
    market = SimulatedMarket(state, simulated_rules(SYMBOLS), clock=lambda: TS)
    market.backfill()
    await asyncio.sleep(0)
    seen.clear()
    for _ in range(3):
        market.step()
        await asyncio.sleep(0)
    assert [u.symbol for u in seen] == ["BTCUSDT", "ETHUSDT"] * 3
