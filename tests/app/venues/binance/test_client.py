"""Bounded waits: a venue that does not answer surfaces as VenueUnavailable, never as a wait without end."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import pytest

from app.errors import VenueUnavailable
from app.retry import RECONNECT
from app.venues.base import VenueBalance, VenueOrder
from app.venues.binance.client import build_client, call_timeout
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.app_venues import venue_on_fake

LOCAL = "http://127.0.0.1:9"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance.start() as server:
        yield server


async def test_the_client_bounds_requests_connects_and_silent_sockets() -> None:
    client = build_client(rest_url=LOCAL, stream_url="ws://127.0.0.1:9", timeout_ms=2_500, keepalive_ms=15_000)
    try:
        assert client.timeout == 2_500  # each REST request
        assert client.streaming["connectionTimeout"] == 2_500  # each WebSocket connect
        assert client.streaming["keepAlive"] == 15_000  # no pong within two pings: the socket is dead
        assert client.options["adjustForTimeDifference"] is False  # no key, nothing signed: no clock offset
    finally:
        await client.close()
    short = build_client(rest_url=LOCAL, stream_url="ws://127.0.0.1:9", timeout_ms=300)
    try:
        assert short.streaming["connectionTimeout"] == 1_000  # ccxt rounds the connect timeout down to seconds
    finally:
        await short.close()
    assert call_timeout(300) == 0.6
    with pytest.raises(ValueError):
        build_client(rest_url=LOCAL, stream_url=LOCAL, timeout_ms=0)


async def test_clients_share_one_verifying_ssl_context() -> None:
    first = build_client(rest_url=LOCAL, stream_url="ws://127.0.0.1:9")
    second = build_client("key", "secret", rest_url=LOCAL, stream_url="ws://127.0.0.1:9")
    try:
        assert isinstance(first.ssl_context, ssl.SSLContext)  # not left for ccxt to build per client
        assert second.ssl_context is first.ssl_context
        assert first.ssl_context.verify_mode == ssl.CERT_REQUIRED and first.ssl_context.check_hostname
        assert first.ssl_context.cert_store_stats()["x509_ca"] > 0  # ccxt's CA bundle is loaded
    finally:
        await first.close()
        await second.close()


async def test_closing_waits_for_tls_shutdown_only_when_a_url_is_tls() -> None:
    plain = build_client(rest_url=LOCAL, stream_url="ws://127.0.0.1:9")
    tls = build_client(rest_url="https://testnet.example", stream_url="ws://127.0.0.1:9")
    assert plain.timeout_on_exit == 0
    assert tls.timeout_on_exit == 250  # ccxt's wait (ms), kept
    await plain.close()
    await tls.close()


@pytest.mark.parametrize("path", ["/api/v3/account", "/api/v3/exchangeInfo"])
async def test_a_rest_call_that_hangs_is_unavailable_after_the_timeout(fake: FakeBinance, path: str) -> None:
    venue = venue_on_fake(fake, timeout_ms=300)
    fake.timeout_after_accept(path=path, delay=30.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(VenueUnavailable, match="did not answer"):
            async with asyncio.timeout(5):  # the guard of this test, not the adapter's
                await (venue.balances() if path == "/api/v3/account" else venue.load_rules())
    finally:
        await venue.close()
    assert loop.time() - started < 2.0


async def test_a_ws_api_request_that_is_never_answered_reconnects_the_user_data_stream(fake: FakeBinance) -> None:
    slept: list[float] = []
    balances: list[list[VenueBalance]] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    async def on_order(order: VenueOrder) -> None:
        pass

    async def on_balances(update: list[VenueBalance]) -> None:
        balances.append(update)

    venue = venue_on_fake(fake, timeout_ms=300, sleep=sleep)
    fake.leave_ws_api_unanswered(1)  # the subscribe request of the first session hangs
    task = asyncio.create_task(venue.watch(on_order, on_balances))
    try:
        async with asyncio.timeout(10):
            while not balances:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await venue.close()
    methods = [r["method"] for r in fake.ws_requests]
    assert methods[0] == "<unanswered>" and "userDataStream.subscribe.signature" in methods
    assert slept == [RECONNECT.initial]
