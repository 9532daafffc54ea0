"""kill -9 between send and acknowledgement, for real: the app (a child process) sends an order to the fake Binance,
the fake executes it and holds the answer, the app is SIGKILLed while it waits, then restarted. Afterwards exactly one
order exists at the exchange and ours shows its real status, found by client order id, never re-sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from storage.db import create_db_engine
from storage.models import Order
from tests.e2e.app_process import AppProcess
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance

pytestmark = pytest.mark.slow

ORDER_PATH = "/api/v3/order"


async def status_of(client: httpx.AsyncClient, headers: dict[str, str], order_id: str, *wanted: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            order = (await client.get(f"/api/trading/orders/{order_id}", headers=headers)).json()
            if order["status"] in wanted:
                return order  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)


def stored(database: Path, order_id: str) -> Order:
    engine = create_db_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as session:
            order = session.exec(select(Order).where(Order.id == order_id)).one()
            session.expunge(order)
            return order
    finally:
        engine.dispose()


@pytest.mark.timeout(180)
async def test_sigkill_between_send_and_ack_then_restart_finds_the_one_order(tmp_path: Path) -> None:
    async with FakeBinance.start() as fake:
        urls = {
            "BINANCE_TESTNET_URL": fake.rest_url,
            "BINANCE_TESTNET_STREAM_URL": fake.stream_url,
            "BINANCE_TESTNET_WS_API_URL": fake.ws_api_url,
        }
        app = AppProcess(tmp_path, **urls)
        # The app talks to the fake served by this test's event loop: never block the loop while it starts.
        await asyncio.to_thread(app.start)
        try:
            async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
                registered = await client.post(
                    "/auth/register", json={"email": "crash@example.com", "password": "correct horse battery"}
                )
                headers = {"Authorization": f"Bearer {registered.json()['token']}"}
                body = {"venue": "binance-testnet", "api_key": DOC_API_KEY, "api_secret": DOC_SECRET}
                account = (await client.post("/api/accounts", json=body, headers=headers)).json()

                # Execute, then hold the answer; the user-data stream stays silent too, so nothing acknowledges it.
                fake.timeout_after_accept(path=ORDER_PATH, delay=120)
                fake.mute_user_stream(DOC_API_KEY)
                order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "59000", "quantity": "0.01"}
                placed = await client.post(
                    "/api/trading/orders", json={**order, "account_id": account["id"]}, headers=headers
                )
                assert placed.status_code == 202, placed.text
                order_id = placed.json()["id"]
                async with asyncio.timeout(30):
                    while not fake.orders(DOC_API_KEY):  # the exchange has it; the app is waiting for the answer
                        await asyncio.sleep(0.05)
            await asyncio.to_thread(app.kill)

            fake.mute_user_stream(DOC_API_KEY, muted=False)
            before = stored(tmp_path / "tradewind.db", order_id)
            assert before.status == "PENDING" and before.sent_at is not None  # in flight when it died
            await asyncio.to_thread(app.start)
            async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
                recovered = await status_of(client, headers, order_id, "OPEN", "FILLED", "REJECTED", "CANCELED")
                assert recovered["status"] == "OPEN"  # its real status at the exchange
                fake.trade("BTCUSDT", "59000", "1")  # and it keeps following the exchange after the restart
                filled = await status_of(client, headers, order_id, "FILLED")
                assert filled["filled_quantity"] == "0.01" and len(filled["fills"]) == 1
        finally:
            await asyncio.to_thread(app.stop)

        [at_exchange] = fake.orders(DOC_API_KEY)
        assert at_exchange.client_order_id == f"tw{order_id}"
        assert len([r for r in fake.requests if r.method == "POST" and r.path == ORDER_PATH]) == 1
        lookups = [r.params for r in fake.requests if r.method == "GET" and r.path == ORDER_PATH]
        assert any(p.get("origClientOrderId") == f"tw{order_id}" for p in lookups)
