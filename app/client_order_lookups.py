"""Intake's check for an order already sent with the same client order id, gathered across requests.

Careful bots send every order with its own client order id, so that a retry finds the first attempt instead of
placing the order twice; intake must look each one up before storing the order. One read per order cost as much
as the rest of the order on PostgreSQL (a hand-over to a reader thread each; in process, 261 against 109 µs of CPU
per order without ids: docs/orders.md, "Speed"). Lookups asked within the same turn of the event loop go together:
one statement per account for up to 64 ids (storage/repositories/orders.py), on one reader-thread hand-over (inline
on SQLite). Idle, that costs one loop turn. An id of the form Tradewind makes ("tw" + an order id) is found by
primary key, on its own (a caller sends one back only to find that order).
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from typing import Any

from storage.db import Database
from storage.driver_reads import DriverReader
from storage.models import MADE_CLIENT_ORDER_ID
from storage.repositories import orders

Key = tuple[str, str]  # account id, client order id


class ClientOrderIdLookups:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: dict[Key, list[asyncio.Future[Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def find(self, account_id: str, client_order_id: str) -> Any | None:
        """The account's order with this client order id, as a row (an Order's attributes), or None."""
        if MADE_CLIENT_ORDER_ID.fullmatch(client_order_id):
            return await self.db.fetch_in(lambda r: orders.with_client_order_id(r, account_id, client_order_id))
        # A future per caller, even for the same id: a cancelled request then cancels its own wait only.
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((account_id, client_order_id), []).append(future)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_all())
        return await future

    async def _read_all(self) -> None:
        await asyncio.sleep(0)  # one turn: the lookups of requests read in the same turn join
        batch: dict[Key, list[asyncio.Future[Any]]] = {}
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                await self._read(batch)
        finally:  # cancelled (the services stopping): nobody is left waiting for an answer that will not come
            for futures in (*batch.values(), *self._waiting.values()):
                for future in futures:
                    future.cancel()

    async def _read(self, batch: dict[Key, list[asyncio.Future[Any]]]) -> None:
        by_account: dict[str, list[str]] = defaultdict(list)
        for account_id, client_order_id in batch:
            by_account[account_id].append(client_order_id)
        try:
            found = await self.db.fetch_in(functools.partial(_read_batch, by_account=by_account))
        except Exception as error:  # every caller of this batch sees the read's failure, as its own read's
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            return
        for (account_id, client_order_id), futures in batch.items():
            row = found[account_id].get(client_order_id)
            for future in futures:
                if not future.done():
                    future.set_result(row)


def _read_batch(reader: DriverReader, by_account: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    return {
        account_id: orders.with_callers_client_order_ids(reader, account_id, ids)
        for account_id, ids in by_account.items()
    }
