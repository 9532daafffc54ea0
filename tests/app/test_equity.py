"""Equity snapshots: valuation in USDT, one row per account per minute, changed accounts valued in a batch after
the engine's commit (never inside it), old rows thinned to one per hour."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import select

from app.equity import MINUTE_ROWS_KEPT_MS, EquityRecorder, account_value
from app.events import UserEvent
from app.market.state import MarketState
from app.orders import OrderRequest
from app.services import Services
from storage.models import EquitySnapshot
from storage.repositories import equity as equity_repo
from tests.factories import trade

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z, a whole hour
MINUTE = 60_000
HOUR = 3_600_000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def snapshots(services: Services, account_id: str) -> list[tuple[int, Decimal]]:
    return services.db.run_sync(lambda s: equity_repo.points(s, account_id, 0))


def recorder(services: Services, clock: Clock, btc: str = "50000") -> EquityRecorder:
    market = MarketState(["BTCUSDT", "ETHUSDT"])
    market.apply_trade(trade("BTCUSDT", btc, "1"))  # type: ignore[arg-type]
    return EquityRecorder(services.db, market, clock=clock)


async def new_account(services: Services, email: str, **balances: str) -> tuple[str, str]:
    user = await services.auth.register(email, "correct horse battery")
    view = await services.accounts.add_paper_account(user.id, "Strategy", {k: Decimal(v) for k, v in balances.items()})
    return user.id, view.id


def test_value_counts_free_and_locked_at_last_prices() -> None:
    prices = {"BTC": Decimal("50000.5")}
    held = [("USDT", Decimal("100.25"), Decimal("10")), ("BTC", Decimal("0.1"), Decimal("0.01")), ("XYZ", 5, 0)]
    assert account_value(held, prices.get) == Decimal("110.25") + Decimal("0.11") * Decimal("50000.5")  # type: ignore[arg-type]
    assert account_value([("BTC", Decimal("1e-12"), Decimal(0))], prices.get) == Decimal("0.00000005")  # 8 places


async def test_one_row_per_account_per_minute_the_latest_value_wins(services: Services) -> None:
    clock = Clock(T0 + 5_000)
    _, account_id = await new_account(services, "equity-minute@example.com", USDT="1000", BTC="0.5")
    equity = recorder(services, clock)
    assert await equity.snapshot([account_id]) == 1
    equity.market.apply_trade(trade("BTCUSDT", "60000", "1"))  # type: ignore[arg-type]
    clock.now = T0 + 59_999
    await equity.snapshot([account_id])
    clock.now = T0 + MINUTE
    await equity.snapshot([account_id])
    assert snapshots(services, account_id) == [(T0, Decimal(31000)), (T0 + MINUTE, Decimal(31000))]


async def test_balance_changes_are_valued_later_in_one_batch(services: Services) -> None:
    clock = Clock(T0)
    _, a = await new_account(services, "equity-a@example.com", USDT="10")
    _, b = await new_account(services, "equity-b@example.com", USDT="20")
    _, untouched = await new_account(services, "equity-c@example.com", USDT="30")
    equity = recorder(services, clock)
    for account_id in (a, b, a):
        equity.on_event(UserEvent.create("u", "BALANCE_UPDATE", {"account_id": account_id, "balances": []}, 0))
    equity.on_event(UserEvent.create("u", "ORDER_UPDATE", {"account_id": untouched}, 0))
    assert snapshots(services, a) == []  # marking is all the event does
    assert await equity.flush_changed() == 2
    assert (snapshots(services, a), snapshots(services, b), snapshots(services, untouched)) == (
        [(T0, Decimal(10))],
        [(T0, Decimal(20))],
        [],
    )
    assert await equity.flush_changed() == 0
    assert await equity.snapshot_all() >= 3  # the periodic job values every account, changed or not
    assert snapshots(services, untouched) == [(T0, Decimal(30))]


async def test_old_minutes_are_thinned_to_the_last_of_each_hour(services: Services) -> None:
    _, account_id = await new_account(services, "equity-thin@example.com", USDT="1")
    old = [T0, T0 + MINUTE, T0 + 59 * MINUTE, T0 + HOUR, T0 + HOUR + 30 * MINUTE]
    recent = T0 + MINUTE_ROWS_KEPT_MS + 5 * HOUR
    recent_rows = [recent, recent + MINUTE]
    points = [(account_id, t, Decimal(n)) for n, t in enumerate([*old, *recent_rows])]
    services.db.run_sync(lambda s: equity_repo.upsert(s, points))
    equity = recorder(services, Clock(recent + 2 * MINUTE))
    assert await equity.thin() == 3
    kept = [t for t, _ in snapshots(services, account_id)]
    assert kept == [T0 + 59 * MINUTE, T0 + HOUR + 30 * MINUTE, *recent_rows]
    assert await equity.thin() == 0


async def test_a_fill_is_valued_after_the_engine_commit_not_inside_it(services: Services) -> None:
    """The engine's batch writes no snapshot: the fill only marks the account; the flush job values it."""
    await services.engine.start()
    try:
        user = await services.auth.register("equity-fill@example.com", "correct horse battery")
        account = await services.accounts.resolve(user.id, None)
        submitted = await services.orders.submit(
            user.id, OrderRequest(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
        )
        await services.engine.drain()
        assert submitted.order["id"]
        rows = services.db.run_sync(lambda s: list(s.exec(select(EquitySnapshot))))
        assert rows == []
        assert await services.equity.flush_changed() == 1
        [(_, value)] = snapshots(services, account.id)
        assert Decimal(9990) < value < Decimal(10000)  # 10,000 USDT less the taker fee and the spread
    finally:
        await services.engine.stop()


async def test_an_account_holding_an_unpriced_market_waits_for_its_price(services: Services) -> None:
    _, holds_eth = await new_account(services, "equity-eth@example.com", USDT="1", ETH="2")
    _, usdt_only = await new_account(services, "equity-usdt@example.com", USDT="3")
    equity = recorder(services, Clock(T0))  # ETHUSDT is traded here but has no price yet
    assert await equity.snapshot([holds_eth, usdt_only]) == 1
    assert (snapshots(services, holds_eth), snapshots(services, usdt_only)) == ([], [(T0, Decimal(3))])
    equity.market.apply_trade(trade("ETHUSDT", "3000.5", "1"))  # type: ignore[arg-type]
    await equity.snapshot([holds_eth])
    assert snapshots(services, holds_eth) == [(T0, Decimal("6002"))]
