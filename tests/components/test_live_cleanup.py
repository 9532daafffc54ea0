"""Opening and closing trade pages leaves nothing behind: no subscriber on the event bus, the alert service or the
live feed, and no client. 1,000 complete trade screens (chart, book, ticket, alerts, blotter, subscriptions) are
built in fresh clients and deleted, as NiceGUI does when a tab closes; a few also go through HTTP page loads."""

from __future__ import annotations

import gc

import pytest
from nicegui import Client, app
from nicegui.page import page
from nicegui.testing import User

from components.trade_screen import TradeScreen
from tests.components.helpers import register_in_browser, services, user_id_of

PAGE_LOADS = 20  # through the HTTP route, like a browser tab
SCREEN_CYCLES = 1000  # the trade screen the route builds, in a fresh client each time


def _counts(earlier_clients: frozenset[str] = frozenset()) -> tuple[object, ...]:
    """Subscribers everywhere, and clients created since `earlier_clients` (those may be pruned by NiceGUI's own
    timer at any moment: a slow machine must not turn that into a "leak")."""
    return (
        services().bus.subscriber_counts(),
        services().alerts.subscriber_count(),
        app.state.live.counts(),
        len(set(Client.instances) - earlier_clients),
    )


@pytest.mark.slow  # ~30 s, and about subscriptions, not the database: run once, on the default database
async def test_no_leak_after_1000_trade_page_open_close_cycles(user: User) -> None:
    await register_in_browser(user)
    assert user.client is not None
    user_id = user_id_of(user)
    account_id = (await services().accounts.list_for_user(user_id))[0].id
    user.client.delete()
    earlier = frozenset(Client.instances)
    baseline = _counts(earlier)
    assert app.state.live.counts() == (0, 0)
    request = None
    for _ in range(PAGE_LOADS):
        client = await user.open("/trade/BTCUSDT")
        request = client.request
        assert app.state.live.counts() == (1, 1)  # subscribed while open
        client.delete()
        assert _counts(earlier) == baseline
    for cycle in range(SCREEN_CYCLES):
        client = Client(page("/leak-probe"), request=request)  # a tab's request: NiceGUI's storage pruning reads it
        with client:
            symbol = "ETHUSDT" if cycle % 2 else "BTCUSDT"
            await TradeScreen(services(), app.state.live, user_id, account_id, symbol).build()
        assert app.state.live.counts() == (1, 1)
        client.delete()
        assert _counts(earlier) == baseline, f"leak after {cycle + 1} cycles"
    gc.collect()
    assert _counts(earlier) == baseline
