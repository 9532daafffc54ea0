"""Crash safety, for real: a burst of orders from several users, SIGKILL at a random moment, restart, and then
every acknowledged order exists exactly once, reaches an open or terminal state, its events are gap-free, and
every balance satisfies the money invariant."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from app.domain import ALLOWED_TRANSITIONS, OrderStatus
from storage.db import create_db_engine
from storage.models import Account, Balance, Event, Fill, Order
from tests.e2e.app_process import AppProcess

pytestmark = pytest.mark.slow

USERS = 3
ORDERS_PER_ROUND = 520
CONCURRENCY = 16


async def burst(url: str, tokens: list[str], kill_after: int, on_kill: Any) -> dict[str, str]:
    """Fire mixed orders and cancels; kill the app after `kill_after` acknowledgements. Returns acked id -> user."""
    acked: dict[str, str] = {}
    rng = random.Random(kill_after)
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for n in range(ORDERS_PER_ROUND):
        jobs.put_nowait(n)
    killed = asyncio.Event()

    async def worker(client: httpx.AsyncClient) -> None:
        while not killed.is_set():
            try:
                n = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            token = tokens[n % len(tokens)]
            headers = {"Authorization": f"Bearer {token}"}
            roll = rng.random()
            body: dict[str, Any] = {"symbol": "BTCUSDT", "side": rng.choice(["BUY", "SELL"]), "quantity": "0.0001"}
            if roll < 0.45:
                body["type"] = "MARKET"
            else:
                body.update(type="LIMIT", price=str(90000 + rng.randint(-2000, 2000)))
            try:
                response = await client.post("/api/trading/orders", json=body, headers=headers)
                if response.status_code in (200, 202):
                    acked[response.json()["id"]] = token
                    if roll > 0.85:
                        await client.delete(f"/api/trading/orders/{response.json()['id']}", headers=headers)
            except httpx.HTTPError:
                return  # the server died under us
            if len(acked) >= kill_after and not killed.is_set():
                killed.set()
                on_kill()

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return acked


async def register_users(url: str, count: int) -> list[str]:
    tokens = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for n in range(count):
            body = {"email": f"crash{n}@example.com", "password": "correct horse battery"}
            response = await client.post("/auth/register", json=body)
            if response.status_code == 409:
                response = await client.post("/auth/login", json=body)
            tokens.append(response.json()["token"])
    return tokens


async def wait_until_settled(url: str, token: str, timeout: float = 60) -> None:
    """After restart the engine re-queues PENDING orders; wait until none is left."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while asyncio.get_running_loop().time() < deadline:
            rows = (
                await client.get(
                    "/api/trading/orders?status=open&limit=1000", headers={"Authorization": f"Bearer {token}"}
                )
            ).json()
            if not any(row["status"] == "PENDING" for row in rows):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("PENDING orders were not executed after the restart")


def verify(database: Path, acked: dict[str, str]) -> None:
    verify_database(f"sqlite:///{database}", acked)


def verify_database(url: str, acked: dict[str, str]) -> None:
    """Every acknowledged order exists and left PENDING; events gap-free per user; transitions legal; no order
    filled more than its quantity; every account's money adds up."""
    engine = create_db_engine(url)
    with Session(engine) as session:
        orders = {o.id: o for o in session.exec(select(Order))}
        missing = set(acked) - set(orders)
        assert not missing, f"{len(missing)} acknowledged orders were lost"
        assert all(o.status != OrderStatus.PENDING for o in orders.values())
        events = list(session.exec(select(Event).order_by(col(Event.user_id), col(Event.seq))))
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        for user_events in by_user.values():
            assert [e.seq for e in user_events] == list(range(1, len(user_events) + 1)), "gap in the event log"
        history: dict[str, list[str]] = defaultdict(list)
        for event in events:
            if event.type == "ORDER_UPDATE":
                data = json.loads(event.payload)
                if (
                    not history[data["id"]]
                    or history[data["id"]][-1] != data["status"]
                    or data["status"] == "PARTIALLY_FILLED"
                ):
                    history[data["id"]].append(data["status"])
        for order_id, statuses in history.items():
            assert statuses[0] == "PENDING", (order_id, statuses)
            for before, after in itertools.pairwise(statuses):
                assert OrderStatus(after) in ALLOWED_TRANSITIONS[OrderStatus(before)], (order_id, statuses)
            assert statuses[-1] == orders[order_id].status
        fills_per_order: dict[str, Decimal] = defaultdict(Decimal)
        for fill in session.exec(select(Fill)):
            fills_per_order[fill.order_id] += fill.quantity
        for order_id, quantity in fills_per_order.items():
            assert quantity == orders[order_id].filled_quantity, "an order executed twice"
        for account in session.exec(select(Account)):
            check_account_invariant(session, account.id, orders)
    engine.dispose()


def check_account_invariant(session: Session, account_id: str, orders: dict[str, Order]) -> None:
    expected: dict[str, Decimal] = defaultdict(Decimal, {"USDT": Decimal(10000), "BTC": Decimal(1)})
    for fill in session.exec(select(Fill).where(Fill.account_id == account_id)):
        if fill.side == "BUY":
            expected["USDT"] -= fill.price * fill.quantity
            expected["BTC"] += fill.quantity - fill.fee
        else:
            expected["BTC"] -= fill.quantity
            expected["USDT"] += fill.price * fill.quantity - fill.fee
    locked: dict[str, Decimal] = defaultdict(Decimal)
    for order in orders.values():
        if order.account_id == account_id and OrderStatus(order.status).is_open:
            left = (order.quantity or Decimal(0)) - order.filled_quantity
            locked["BTC" if order.side == "SELL" else "USDT"] += left if order.side == "SELL" else left * order.price  # type: ignore[operator]
    for balance in session.exec(select(Balance).where(Balance.account_id == account_id)):
        assert balance.free + balance.locked == expected[balance.asset], balance.asset
        assert balance.locked == locked[balance.asset], balance.asset
        assert balance.free >= 0


@pytest.mark.timeout(300)
async def test_sigkill_during_a_burst_loses_and_doubles_nothing(tmp_path: Path) -> None:
    app = AppProcess(tmp_path, PAPER_BALANCES="USDT:10000,BTC:1")
    app.start()
    try:
        tokens = await register_users(app.url, USERS)
        all_acked: dict[str, str] = {}
        for kill_after in (60, 230, 470):  # several rounds, different kill points
            acked = await burst(app.url, tokens, kill_after, app.kill)
            app.kill()
            all_acked.update(acked)
            assert len(acked) >= min(kill_after, ORDERS_PER_ROUND) - CONCURRENCY
            app.start()
            await wait_until_settled(app.url, tokens[0])
            for token in tokens[1:]:
                await wait_until_settled(app.url, token)
        app.stop()
        assert len(all_acked) >= 500
        verify(tmp_path / "tradewind.db", all_acked)
    finally:
        app.kill()
