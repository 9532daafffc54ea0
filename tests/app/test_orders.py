"""Order intake (app/orders.py) when the database connection is lost under it: retried, never doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.orders import OrderRequest
from app.services import Services
from storage.models import Event, Order
from tests.factories import PASSWORD, unique_email

MARKET = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")


def lose_connection(monkeypatch: pytest.MonkeyPatch, services: Services, *, after_commit: bool) -> list[int]:
    """The next intake transaction fails as if the server ended the session (before its commit, or after it
    committed but before the answer arrived); returns the list the failures are counted in."""
    failures: list[int] = []
    real: Callable[..., Awaitable[Any]] = services.db.grouped.write

    async def write(unit: Any, alone: Any = None, together: Any = None) -> Any:
        if failures:
            return await real(unit, alone, together)
        failures.append(1)
        if after_commit:
            await real(unit, alone, together)
        raise OperationalError("COMMIT", {}, Exception("terminating connection due to administrator command"))

    monkeypatch.setattr(services.db.grouped, "write", write)
    return failures


def stored(services: Services, user_id: str) -> tuple[int, int]:
    def count(session: Any) -> tuple[int, int]:
        orders = session.execute(select(func.count()).select_from(Order).where(Order.user_id == user_id))
        events = session.execute(select(func.count()).select_from(Event).where(Event.user_id == user_id))
        return orders.scalar_one(), events.scalar_one()

    return services.db.run_sync(count)


async def test_a_connection_lost_before_the_commit_is_retried_and_the_order_accepted(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    failures = lose_connection(monkeypatch, services, after_commit=False)
    submitted = await services.orders.submit(user, MARKET)
    assert failures == [1]
    assert submitted.created and submitted.order["status"] == "PENDING"
    assert stored(services, user) == (1, 1)  # one order, one event: the failed try left nothing


async def test_a_connection_lost_after_the_commit_accepts_the_stored_order_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    lose_connection(monkeypatch, services, after_commit=True)
    queued: list[object] = []
    monkeypatch.setattr(services.orders.queue, "submit", queued.append)
    submitted = await services.orders.submit(user, MARKET)
    assert submitted.created  # the retry met its own committed order: accepted, and nothing doubled
    assert submitted.order["status"] == "PENDING" and submitted.json is not None
    assert stored(services, user) == (1, 1)
    assert [command.order_id for command in queued] == [submitted.order["id"]]  # type: ignore[attr-defined]


async def test_a_group_that_fails_on_one_duplicate_commits_every_other_order_of_it(services: Services) -> None:
    """Concurrent intakes share one transaction; a client order id sent twice fails that group, which is then
    written unit by unit: every other order is accepted, and the duplicate answers with the winner's order."""
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    twice = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001", client_order_id="same-id")
    results = await asyncio.gather(*(services.orders.submit(user, r) for r in [MARKET, twice, MARKET, twice, MARKET]))
    assert [r.created for r in results].count(True) == 4
    assert results[1].order["id"] == results[3].order["id"]
    assert stored(services, user) == (4, 4)
