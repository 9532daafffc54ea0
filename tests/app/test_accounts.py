"""Account resolution: the paper account is read once per user (even by a burst of requests), others every time."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import NotFound
from app.services import Services


async def test_a_burst_of_resolves_reads_the_paper_account_once(services: Services) -> None:
    user = await services.auth.register("burst@example.com", "correct horse battery")
    reads = 0
    read = services.db.read

    async def counting_read(work):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return await read(work)

    services.db.read = counting_read  # type: ignore[method-assign]
    burst = await asyncio.gather(*(services.accounts.resolve(user.id, None) for _ in range(50)))
    again = await services.accounts.resolve(user.id, burst[0].id)  # by id: the same account, from memory
    assert reads == 1
    assert {a.id for a in burst} == {again.id} and again.venue == "paper" and again.user_id == user.id


async def test_another_users_paper_account_is_still_not_found(services: Services) -> None:
    alice = await services.auth.register("alice-cache@example.com", "correct horse battery")
    bob = await services.auth.register("bob-cache@example.com", "correct horse battery")
    alices = await services.accounts.resolve(alice.id, None)
    await services.accounts.resolve(bob.id, None)
    with pytest.raises(NotFound):
        await services.accounts.resolve(bob.id, alices.id)
