"""Secret hygiene: ccxt's exception text (the signed request URL) never reaches an error message or a log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest

from app.errors import VenueError, VenueRejected, VenueThrottled, VenueUnavailable
from app.venues.base import OrderSpec, VenueBalance, VenueOrder
from app.venues.binance.errors import from_ccxt, safe_message, venue_error
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance
from tests.fakes.binance.app_venues import venue_on_fake

UNKNOWN_KEY = "Z" * 60 + "0009"
LEAKS = ("signature=", "timestamp=", DOC_API_KEY, DOC_SECRET, UNKNOWN_KEY)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        yield server


def order(cid: str, qty: str = "0.1") -> OrderSpec:
    return OrderSpec(cid, "BTCUSDT", "BUY", "LIMIT", Decimal(qty), price=Decimal("59000"))


def texts_of(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


async def test_signed_urls_and_keys_never_reach_errors_or_logs(
    fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every app logger; ccxt's own logger stays pinned at INFO (client.py)
    venue = venue_on_fake(fake, timeout_ms=300)
    bad_secret = venue_on_fake(fake, DOC_API_KEY, "x" * 64)
    unknown_key = venue_on_fake(fake, UNKNOWN_KEY, DOC_SECRET)
    faults: list[tuple[Callable[[], object], Callable[[], Awaitable[object]], type[VenueError]]] = [
        (lambda: None, lambda: venue.submit(order("leak-1", qty="5")), VenueRejected),  # -2010 insufficient
        (lambda: fake.server_error_next(), venue.balances, VenueUnavailable),  # 500 with Binance's JSON
        (lambda: fake.fail_next(503, text="Service Unavailable."), venue.open_orders, VenueUnavailable),
        (
            lambda: fake.timeout_after_accept(path="/api/v3/order"),
            lambda: venue.submit(order("leak-2")),
            VenueUnavailable,
        ),
        (lambda: fake.fail_next(400, code=-1100, msg="Illegal characters."), venue.balances, VenueRejected),
        (lambda: None, bad_secret.check_credentials, VenueRejected),  # -1022 signature not valid
        (lambda: None, unknown_key.check_credentials, VenueRejected),  # -2015
        (lambda: fake.rate_limit_next(retry_after=3), venue.open_orders, VenueThrottled),  # last: arms the guard
    ]
    errors: list[VenueError] = []
    try:
        for arm, call, expected in faults:
            arm()
            with pytest.raises(expected) as caught:
                await call()
            errors.append(caught.value)
        # The user-data stream: a drop is logged with our words only.
        watching = asyncio.create_task(venue_on_fake(fake).watch(nothing, nothing))
        await asyncio.sleep(0.3)
        await fake.drop_connections()
        await asyncio.sleep(0.3)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    finally:
        for adapter in (venue, bad_secret, unknown_key):
            await adapter.close()

    for exc in errors:
        assert exc.__cause__ is None and exc.__suppress_context__  # ccxt's exception is not chained
        for text in texts_of(exc):  # the traceback quotes our source lines, which may name an endpoint
            assert not [leak for leak in LEAKS if leak in text], text
        assert "/api/v3" not in str(exc) + repr(exc)
    assert any("dropped" in r.getMessage() for r in caplog.records)
    assert not [leak for leak in (*LEAKS, "/api/v3") if leak in caplog.text], caplog.text


async def nothing(_: list[VenueBalance] | VenueOrder) -> None:
    pass


def test_safe_message_of_a_ccxt_error_is_ours() -> None:
    import ccxt

    url = "http://127.0.0.1:1/api/v3/account?timestamp=1&signature=abcdef"
    raw = ccxt.ExchangeNotAvailable(f"binance GET {url} 503 Service Unavailable")
    assert "signature=" not in safe_message(raw)
    assert isinstance(venue_error(raw), VenueUnavailable)
    assert isinstance(venue_error(TimeoutError()), VenueUnavailable)
    rejected = VenueRejected("Unknown order sent.")
    assert venue_error(rejected) is rejected
    try:
        try:
            raise raw
        except ccxt.BaseError:
            raise KeyError("listener bug") from None  # context kept (suppressed in display only)
    except KeyError as chained:
        assert from_ccxt(chained) and from_ccxt(raw) and not from_ccxt(rejected)
