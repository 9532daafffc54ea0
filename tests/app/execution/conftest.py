"""Fixtures of the execution tests: the core started; on a Binance Spot Testnet account, the fake exchange and a wired
testnet user."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.services import Services
from tests.factories import PASSWORD, add_testnet_account, unique_email
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.app_venues import point_services_at

API_KEY, SECRET = "k" * 64, "s" * 64


@pytest.fixture
async def running(services: Services) -> AsyncIterator[Services]:
    """Services with the execution core started (the paper executor's task running)."""
    await services.engine.start()
    yield services
    await services.engine.stop()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start(default_account=False) as exchange:
        exchange.add_account(API_KEY, SECRET, {"USDT": "10000", "BTC": "1"})
        yield exchange


@pytest.fixture
async def testnet(services: Services, fake: FakeBinance) -> AsyncIterator[tuple[Services, str, str]]:
    """Services whose venue factory points at the fake, a user, and their testnet account (keys sealed)."""
    point_services_at(services, fake, timeout_ms=1500)
    user_id = (await services.auth.register(unique_email(), PASSWORD)).id
    account_id = add_testnet_account(services, user_id, API_KEY, SECRET)
    await services.engine.start()
    yield services, user_id, account_id
    await services.engine.stop()
