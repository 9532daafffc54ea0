"""Intake's client-order-id lookups, gathered (app/client_order_lookups.py): the orders of one loop turn are looked
up by one read; each caller gets its own answer, its own failure, and a cancelled caller leaves the others theirs."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app.orders import OrderRequest, Submitted
from app.services import Services
from tests.factories import PASSWORD, count_calls, unique_email

MARKET = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.001")


def with_id(client_order_id: str) -> OrderRequest:
    return replace(MARKET, client_order_id=client_order_id)


async def test_the_lookups_of_one_turn_share_one_read_and_each_caller_gets_its_own_answer(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    earlier = {cid: (await services.orders.submit(user, with_id(cid))).order["id"] for cid in ("a", "b", "c")}
    reads = count_calls(monkeypatch, services.db, "fetch_in")
    asked = [f"bot-{n}" if n % 3 else "abc"[n % 9 // 3] for n in range(90)]  # 30 repeats of a, b and c

    results: list[Submitted] = await asyncio.gather(*(services.orders.submit(user, with_id(cid)) for cid in asked))

    assert reads == [1]  # 90 lookups, one read (up to 64 ids a statement: two statements)
    for cid, result in zip(asked, results, strict=True):
        if cid in earlier:
            assert (result.created, result.order["id"]) == (False, earlier[cid])
        else:
            assert result.created and result.order["client_order_id"] == cid


async def test_the_same_new_id_sent_several_times_at_once_is_one_order(services: Services) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id

    results = await asyncio.gather(*(services.orders.submit(user, with_id("once")) for _ in range(5)))

    assert [r.created for r in results].count(True) == 1
    assert len({r.order["id"] for r in results}) == 1


async def test_an_id_of_the_form_tradewind_makes_is_found_by_its_order(services: Services) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    first = await services.orders.submit(user, MARKET)

    again = await services.orders.submit(user, with_id(first.order["client_order_id"]))

    assert (again.created, again.order["id"]) == (False, first.order["id"])


async def test_a_failed_read_fails_every_caller_of_its_batch_and_the_next_batch_reads_again(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    await services.orders.submit(user, MARKET)  # the account is known: intake's only read is the lookup now
    read = services.db.fetch_in

    async def fails(_: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(services.db, "fetch_in", fails)
    failed = await asyncio.gather(
        *(services.orders.submit(user, with_id(f"x{n}")) for n in range(3)), return_exceptions=True
    )
    assert [type(error) for error in failed] == [OperationalError] * 3

    monkeypatch.setattr(services.db, "fetch_in", read)
    assert (await services.orders.submit(user, with_id("x0"))).created  # nothing was stored by the failed ones


async def test_a_cancelled_caller_leaves_the_others_of_its_batch_their_answer(services: Services) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    stored = await services.orders.submit(user, with_id("kept"))
    gone = asyncio.create_task(services.orders.submit(user, with_id("kept")))
    stays = asyncio.create_task(services.orders.submit(user, with_id("kept")))
    await asyncio.sleep(0)  # both are waiting for the batch's read
    gone.cancel()

    assert (await stays).order["id"] == stored.order["id"]
    assert gone.cancelled()


async def test_callers_waiting_when_the_lookups_stop_are_cancelled_not_left_hanging(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = (await services.auth.register(unique_email(), PASSWORD)).id
    await services.orders.submit(user, MARKET)  # the account is known: intake's only read is the lookup now
    never = asyncio.Event()

    async def stalls(_: Any) -> Any:
        await never.wait()

    monkeypatch.setattr(services.db, "fetch_in", stalls)
    waiting = asyncio.create_task(services.orders.submit(user, with_id("late")))
    await asyncio.sleep(0.01)
    reader = services.orders.client_order_lookups._reader
    assert reader is not None and not reader.done()

    reader.cancel()  # as at shutdown

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, timeout=5)
