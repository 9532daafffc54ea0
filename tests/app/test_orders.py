"""Order intake (app/orders.py) when the database connection is lost under it: retried, never doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.errors import Unavailable
from app.orders import INTAKE_RETRY, OrderRequest
from app.services import Services
from storage.models import Event, Order
from tests.factories import PASSWORD, unique_email

MARKET = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")
LIMIT = OrderRequest("BTCUSDT", "BUY", "LIMIT", quantity="0.01", price="1000")


def lose_connection(
    monkeypatch: pytest.MonkeyPatch, services: Services, *, after_commit: bool, times: int = 1
) -> list[int]:
    """The next `times` intake transactions fail as if the server ended the session (the first before its commit,
    or after it committed but before the answer arrived; the others before); returns the list the failures are
    counted in."""
    failures: list[int] = []
    real: Callable[..., Awaitable[Any]] = services.db.grouped.write

    async def write(unit: Any, alone: Any = None, together: Any = None) -> Any:
        if len(failures) >= times:
            return await real(unit, alone, together)
        failures.append(1)
        if after_commit and len(failures) == 1:
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


async def test_a_commit_unanswered_then_every_retry_lost_still_accepts_the_stored_order_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last error is a lost connection, not the order's own key: intake looks the order up all the same.
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    failures = lose_connection(monkeypatch, services, after_commit=True, times=INTAKE_RETRY.max_attempts)
    queued: list[object] = []
    monkeypatch.setattr(services.orders.queue, "submit", queued.append)
    submitted = await services.orders.submit(user, LIMIT)
    assert len(failures) == INTAKE_RETRY.max_attempts and submitted.created
    assert stored(services, user) == (1, 1)
    assert [command.order_id for command in queued] == [submitted.order["id"]]  # type: ignore[attr-defined]
    assert services.orders.open_orders.count(submitted.order["account_id"], "BTCUSDT") == 1  # its slot kept


async def test_a_database_that_never_answers_is_503_and_frees_the_slot_of_an_order_it_did_not_store(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    [account] = await services.accounts.list_for_user(user)
    lose_connection(monkeypatch, services, after_commit=False, times=INTAKE_RETRY.max_attempts)
    with pytest.raises(Unavailable) as unavailable:
        await services.orders.submit(user, LIMIT)
    assert unavailable.value.status == 503 and unavailable.value.code == "DATABASE_UNAVAILABLE"
    assert stored(services, user) == (0, 0)
    assert services.orders.open_orders.count(account.id, "BTCUSDT") == 0


async def test_an_order_whose_fate_cannot_be_read_keeps_its_slot(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored or not is unknown: were it stored, freeing its slot would let the account pass the open-order limit.
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    [account] = await services.accounts.list_for_user(user)
    lose_connection(monkeypatch, services, after_commit=True, times=INTAKE_RETRY.max_attempts)

    async def unreachable(read: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("could not connect to server"))

    monkeypatch.setattr(services.db, "fetch_in", unreachable)
    with pytest.raises(Unavailable):
        await services.orders.submit(user, LIMIT)
    assert services.orders.open_orders.count(account.id, "BTCUSDT") == 1


async def test_a_group_that_fails_on_one_duplicate_commits_every_other_order_of_it(services: Services) -> None:
    """Concurrent intakes share one transaction; a client order id sent twice fails that group, which is then
    written unit by unit: every other order is accepted, and the duplicate answers with the winner's order."""
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    twice = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001", client_order_id="same-id")
    results = await asyncio.gather(*(services.orders.submit(user, r) for r in [MARKET, twice, MARKET, twice, MARKET]))
    assert [r.created for r in results].count(True) == 4
    assert results[1].order["id"] == results[3].order["id"]
    assert stored(services, user) == (4, 4)
