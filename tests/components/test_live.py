"""The shared live feed: a burst of market updates reaches a page as one repaint per flush (<= 4 per second), with
the newest values, and nothing is pushed on the feed's own path; a change after a quiet spell goes out at once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nicegui import app
from nicegui.testing import User

from app.events import UserEvent
from app.ids import now_ms
from app.market.models import Trade
from components.live import SESSION_ENDED, TICK_SECONDS, LiveFeed, SymbolUpdate, Throttle, _Inbox
from tests.components.helpers import OutboxSpy, element, register_in_browser, services, wait_for


async def test_a_burst_of_updates_is_one_repaint_with_the_newest_price(user: User) -> None:
    await register_in_browser(user)
    assert TICK_SECONDS >= 0.25  # one shared flush at most every quarter second: <= 4 repaints a second per widget
    assert user.client is not None
    price_label = element(user, "last-price")
    spy = OutboxSpy(user)
    seen: list[dict[str, SymbolUpdate]] = []
    updates_by_tick_end: list[int] = []

    def after_the_page(update: dict[str, SymbolUpdate]) -> None:  # subscribed after the page: runs after it
        seen.append(update)
        updates_by_tick_end.append(len(spy.updated))

    with user.client:
        app.state.live.market.subscribe(after_the_page)
    market = services().market
    for i in range(200):  # one synchronous burst: the flush cannot run in between
        market.apply_trade(Trade("BTCUSDT", Decimal(90000 + i), Decimal("0.01"), "BUY", now_ms()))
    assert seen == [] and price_label.id not in spy.updated  # the feed path only marks the symbol dirty
    await wait_for(lambda: seen, "the next flush")
    await user.should_see("90,199.00")  # the newest value, not a backlog
    assert len(seen) == 1 and seen[0]["BTCUSDT"].ticker.price == Decimal(90199)  # type: ignore[union-attr]
    # Every change of the label happened inside that one tick (NiceGUI sends an element once per flush).
    assert price_label.id in spy.updated[: updates_by_tick_end[0]]
    assert price_label.id not in spy.updated[updates_by_tick_end[0] :]


async def test_other_symbols_updates_do_not_repaint_this_page(user: User) -> None:
    await register_in_browser(user)
    price_label = element(user, "last-price")
    book = element(user, "book-bids")
    spy = OutboxSpy(user)
    services().market.apply_trade(Trade("ETHUSDT", Decimal("3000"), Decimal("1"), "BUY", now_ms()))
    services().market.apply_trade(Trade("BTCUSDT", Decimal("90500"), Decimal("0.01"), "BUY", now_ms()))
    await user.should_see("90,500.00", retries=30)
    spy.updated.clear()
    services().market.apply_trade(Trade("ETHUSDT", Decimal("3001"), Decimal("1"), "BUY", now_ms()))
    seen: list[object] = []
    assert user.client is not None
    with user.client:
        app.state.live.market.subscribe(seen.append)
    await wait_for(lambda: seen, "the ETHUSDT tick")
    assert price_label.id not in spy.updated and book.id not in spy.updated


async def test_the_throttle_flushes_a_quiet_change_at_once_and_a_burst_once_per_interval() -> None:
    loop = asyncio.get_running_loop()
    flushes: list[float] = []
    throttle = Throttle(3600.0, lambda: flushes.append(loop.time()))
    throttle.poke()  # nothing flushed for an hour: the leading edge goes out on the loop's next turn
    await wait_for(lambda: flushes, "the leading-edge flush")
    throttle.poke()  # the one flush of slack (what lets a feed at the cap's rate catch up after a stall)
    await wait_for(lambda: len(flushes) == 2, "the slack flush")
    for _ in range(1000):  # a burst right after: all of it waits for one flush an interval later
        throttle.poke()
    await asyncio.sleep(0.05)
    assert len(flushes) == 2
    assert throttle._handle is not None and throttle._handle.when() - loop.time() > 3500
    throttle._handle.cancel()


def test_after_a_stall_a_feed_at_the_caps_rate_goes_out_on_arrival_again() -> None:
    """The bench's case: 4 changes/s against <= 4 flushes/s. One change handled late (a stalled loop) must not make
    every later flush late: the old limiter spaced each flush a full interval from the late one, for ever."""
    throttle = Throttle(1.0, lambda: None)
    assert [throttle.next_due(t) for t in (0.0, 1.0, 2.0)] == [0.0, 1.0, 2.0]
    assert throttle.next_due(3.4) == 3.4  # the change of t=3 reached the throttle 0.4 late
    assert [throttle.next_due(t) for t in (4.0, 5.0, 6.0)] == [4.0, 5.0, 6.0]  # on arrival again
    assert throttle.next_due(9.0) == 9.0 and throttle.next_due(10.0) == 10.0  # after a stall that skipped ticks


def test_the_backlog_of_a_faster_feed_does_not_grow() -> None:
    """Ten changes per interval for a hundred intervals: flushes stay one per interval (the backlog, due - arrival,
    stays under two intervals instead of growing) and the average is the cap."""
    throttle = Throttle(1.0, lambda: None)
    dues: list[float] = []
    for tick in range(1000):
        now = tick / 10
        if not dues or dues[-1] <= now:  # pokes while a flush is scheduled are absorbed by it (`poke`)
            dues.append(throttle.next_due(now))
            assert dues[-1] - now <= 1.0
    assert len(dues) <= 100 + 2  # one per interval plus the slack


async def test_after_a_stall_the_next_flush_carries_the_newest_price(user: User) -> None:
    await register_in_browser(user)
    assert user.client is not None
    seen: list[dict[str, SymbolUpdate]] = []
    with user.client:
        app.state.live.market.subscribe(seen.append)
    market = services().market
    market.apply_trade(Trade("BTCUSDT", Decimal(91000), Decimal("0.01"), "BUY", now_ms()))
    await wait_for(lambda: seen, "the first flush")
    for i in range(50):  # the loop is busy elsewhere meanwhile (no await): 50 changes pile up on the feed side
        market.apply_trade(Trade("BTCUSDT", Decimal(91001 + i), Decimal("0.01"), "BUY", now_ms()))
    await wait_for(lambda: len(seen) >= 2, "the flush after the stall")
    await user.should_see("91,050.00")
    assert seen[1]["BTCUSDT"].ticker.price == Decimal(91050)  # type: ignore[union-attr]
    assert len(seen) == 2  # one flush for the whole backlog


async def test_a_steady_feed_repaints_at_most_four_times_a_second(user: User) -> None:
    await register_in_browser(user)
    assert user.client is not None
    seen: list[dict[str, SymbolUpdate]] = []
    with user.client:
        app.state.live.market.subscribe(seen.append)
    market = services().market
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(100):  # 100 updates/s for a second
        market.apply_trade(Trade("BTCUSDT", Decimal(90000 + i), Decimal("0.01"), "BUY", now_ms()))
        await asyncio.sleep(0.01)
    elapsed = loop.time() - start  # a slow machine only stretches this (and the bound with it)
    # Flushes are due >= TICK_SECONDS apart; one may run late (a busy loop), hence one more than the plain bound.
    assert 1 <= len(seen) <= elapsed / TICK_SECONDS + 2


def test_a_flush_left_on_a_closed_loop_does_not_block_the_next_loop() -> None:
    flushes: list[int] = []
    throttle = Throttle(3600.0, lambda: flushes.append(1))

    async def poke_thrice() -> None:  # the first two flush at once (leading edge, slack); the third an hour later
        for _ in range(3):
            throttle.poke()
            await asyncio.sleep(0.05)

    asyncio.run(poke_thrice())  # the loop closes with that flush still scheduled
    asyncio.run(poke_thrice())  # the app started again on a new loop: its first change goes out at once
    assert flushes == [1, 1, 1, 1]


def test_a_version_change_ends_only_pages_whose_session_is_older() -> None:
    feed = LiveFeed.__new__(LiveFeed)  # only the inbox bookkeeping: no services, no throttles
    feed._inboxes = set()
    feed._inbox_flush = Throttle(TICK_SECONDS, lambda: None)
    got: dict[str, list[str]] = {"kept": [], "old": [], "logged-out": []}
    sessions = {"kept": {"user_id": "u1", "token_version": 3}, "old": {"user_id": "u1", "token_version": 2}}
    for name in got:
        inbox = _Inbox("u1", session=sessions.get(name, {}))
        inbox.unsubscribe.append(lambda: None)
        inbox.event.subscribe(lambda batch, name=name: got[name].extend(e.type for e in batch))
        feed._inboxes.add(inbox)
    feed.end_sessions("u1", 3)
    for inbox in feed._inboxes:  # an order update before the flush: only a surviving page may see it
        inbox.pending.append(UserEvent("u1", 9, "ORDER_UPDATE", {}))
    feed._emit_inboxes()
    assert got == {"kept": ["ORDER_UPDATE"], "old": [SESSION_ENDED], "logged-out": [SESSION_ENDED]}
    by_name = {name: i for name in got for i in feed._inboxes if i.session == sessions.get(name, {})}
    assert by_name["kept"].unsubscribe and not by_name["old"].unsubscribe
