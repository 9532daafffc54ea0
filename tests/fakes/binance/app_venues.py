"""Tradewind's Binance adapter pointed at a running FakeBinance: the one recipe every test uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.venues.binance_testnet import BinanceTestnetVenue

from .signing import DOC_API_KEY, DOC_SECRET

if TYPE_CHECKING:
    from app.services import Services

    from .server import FakeBinance


def venue_on_fake(
    fake: FakeBinance, api_key: str = DOC_API_KEY, api_secret: str = DOC_SECRET, **options: Any
) -> BinanceTestnetVenue:
    """A venue on `fake` (no rate limiter: the fake does not need one); `options` go to BinanceTestnetVenue."""
    return BinanceTestnetVenue(
        api_key,
        api_secret,
        rest_url=fake.rest_url,
        stream_url=fake.stream_url,
        ws_api_url=fake.ws_api_url,
        enable_rate_limit=False,
        **options,
    )


def point_services_at(
    services: Services, fake: FakeBinance, **options: Any
) -> Callable[[str, str], BinanceTestnetVenue]:
    """Make every Binance venue `services` builds (the key check and the account workers) a venue on `fake`."""

    def make(api_key: str, api_secret: str) -> BinanceTestnetVenue:
        return venue_on_fake(fake, api_key, api_secret, **options)

    services.accounts.make_venue = make
    services.venues.make_binance = make
    return make
