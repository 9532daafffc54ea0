"""GET /api/trading/fills.csv and /orders.csv: the same decimal strings as the JSON API, per account, in a checked
time range; isolation between users and accounts."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app import statements
from app.ids import new_id
from app.services import Services
from storage.models import Fill, Order
from tests.factories import id_at, place, register, wait_for_status

DAY = 86_400_000
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z


def rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)


def store_fills(services: Services, user_id: str, account_id: str, times: list[int]) -> None:
    """One filled order per time, with a fill of price 100.5, quantity 0.1 and a fee in the base asset."""

    def insert(session: Any) -> None:
        for ts in times:
            order_id = id_at(ts)
            session.add(
                Order(
                    id=order_id, user_id=user_id, account_id=account_id, client_order_id=f"c{order_id}",
                    symbol="BTCUSDT", side="BUY", type="MARKET", quantity=Decimal("0.1"), status="FILLED",
                    filled_quantity=Decimal("0.1"), filled_quote=Decimal("10.05"), fee=Decimal("0.0001"),
                    fee_asset="BTC", created_at=ts, updated_at=ts,
                )
            )  # fmt: skip
            session.flush()
            session.add(
                Fill(
                    id=new_id(), order_id=order_id, user_id=user_id, account_id=account_id, symbol="BTCUSDT",
                    side="BUY", price=Decimal("100.5"), quantity=Decimal("0.1"), fee=Decimal("0.0001"),
                    fee_asset="BTC", liquidity="TAKER", ts=ts,
                )
            )  # fmt: skip

    services.db.run_sync(insert)


async def default_account(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/api/accounts", headers=headers)).json()[0]["id"])


async def test_fills_csv_has_the_same_strings_as_the_json_api(client: httpx.AsyncClient, running: Services) -> None:
    _, headers = await register(client)
    order = (await place(client, headers, quantity="0.013")).json()
    await wait_for_status(client, headers, order["id"], "FILLED")
    [fill] = (await client.get("/api/trading/fills", headers=headers)).json()

    [line] = rows(await client.get("/api/trading/fills.csv", headers=headers))
    for field in ("id", "order_id", "account_id", "symbol", "side", "price", "quantity", "fee", "fee_asset"):
        assert line[field] == fill[field], field
    assert line["ts"] == str(fill["ts"]) and line["time"].endswith("Z")
    assert Decimal(line["quote_quantity"]) == Decimal(fill["price"]) * Decimal(fill["quantity"])
    assert (line["fee"], line["fee_asset"], line["liquidity"]) == ("0.000013", "BTC", "TAKER")

    [order_line] = rows(await client.get("/api/trading/orders.csv", headers=headers))
    stored = (await client.get(f"/api/trading/orders/{order['id']}", headers=headers)).json()
    for field in ("id", "status", "quantity", "filled_quantity", "avg_fill_price", "fee", "fee_asset"):
        assert order_line[field] == stored[field], field
    assert order_line["price"] == ""  # a market order has no price: null in JSON, empty in CSV


async def test_the_range_is_half_open_and_takes_epoch_ms_or_iso(client: httpx.AsyncClient, services: Services) -> None:
    user_id, headers = await register(client)
    account_id = await default_account(client, headers)
    store_fills(services, user_id, account_id, [T0 - 1, T0, T0 + DAY - 1, T0 + DAY])
    by_ms = rows(await client.get(f"/api/trading/fills.csv?from={T0}&to={T0 + DAY}", headers=headers))
    assert [int(r["ts"]) for r in by_ms] == [T0, T0 + DAY - 1]
    assert by_ms[0]["time"] == "2025-12-01T00:00:00.000Z"
    assert (by_ms[0]["price"], by_ms[0]["quote_quantity"], by_ms[0]["fee"]) == ("100.5", "10.05", "0.0001")
    by_iso = await client.get(
        "/api/trading/orders.csv", params={"from": "2025-12-01", "to": "2025-12-02T00:00:00Z"}, headers=headers
    )
    assert [int(r["created_at"]) for r in rows(by_iso)] == [T0, T0 + DAY - 1]
    assert "filename=" in by_iso.headers["content-disposition"]


async def test_a_long_range_is_streamed_in_pages_oldest_first(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statements, "PAGE_ROWS", 2)
    user_id, headers = await register(client)
    times = [T0 + n * 1000 for n in (4, 0, 2, 2, 1)]
    store_fills(services, user_id, await default_account(client, headers), times)
    got = rows(await client.get(f"/api/trading/fills.csv?from={T0}&to={T0 + DAY}", headers=headers))
    assert [int(r["ts"]) for r in got] == sorted(times)
    assert len({r["id"] for r in got}) == len(times)  # a page boundary inside equal times loses nothing


async def test_bad_ranges_are_refused(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, headers = await register(client)
    url = "/api/trading/fills.csv"
    assert_error(await client.get(f"{url}?from={T0 + 1}&to={T0}", headers=headers), 422, "VALIDATION_ERROR", "from")
    assert_error(await client.get(f"{url}?from=0&to={367 * DAY}", headers=headers), 422, "VALIDATION_ERROR", "from")
    assert_error(await client.get(f"{url}?from=yesterday", headers=headers), 422, "VALIDATION_ERROR", "from")
    assert_error(await client.get(f"{url}?to=-5", headers=headers), 422, "VALIDATION_ERROR", "to")
    assert_error(await client.get(f"{url}?to=99999999999999", headers=headers), 422, "VALIDATION_ERROR", "to")
    assert_error(await client.get(f"{url}?to=%C2%B2", headers=headers), 422, "VALIDATION_ERROR", "to")  # "²"
    early = "from=0001-01-01T00:00%2B14:00"  # before the epoch (year 0 in UTC)
    assert_error(await client.get(f"{url}?{early}", headers=headers), 422, "VALIDATION_ERROR", "from")
    monkeypatch.setattr(statements, "MAX_ROWS", 2)
    store_fills(services, user_id, await default_account(client, headers), [T0, T0 + 1, T0 + 2])
    too_many = await client.get(f"{url}?from={T0}&to={T0 + DAY}", headers=headers)
    assert_error(too_many, 422, "EXPORT_TOO_LARGE", "from")
    assert (await client.get(url)).status_code == 401


async def test_exports_are_per_account_and_never_another_users(client: httpx.AsyncClient, services: Services) -> None:
    alice_id, alice = await register(client)
    _, bob = await register(client)
    paper_a = await default_account(client, alice)
    strategy_b = (await client.post("/api/accounts", json={"venue": "paper", "label": "B"}, headers=alice)).json()["id"]
    store_fills(services, alice_id, paper_a, [T0])
    store_fills(services, alice_id, strategy_b, [T0 + 1, T0 + 2])
    span = f"from={T0}&to={T0 + DAY}"
    assert len(rows(await client.get(f"/api/trading/fills.csv?{span}", headers=alice))) == 1  # default account
    of_b = rows(await client.get(f"/api/trading/fills.csv?{span}&account_id={strategy_b}", headers=alice))
    assert {r["account_id"] for r in of_b} == {strategy_b} and len(of_b) == 2
    assert rows(await client.get(f"/api/trading/orders.csv?{span}", headers=bob)) == []
    for kind in ("fills", "orders"):
        foreign = await client.get(f"/api/trading/{kind}.csv?{span}&account_id={strategy_b}", headers=bob)
        assert_error(foreign, 404, "ACCOUNT_NOT_FOUND", "account_id")
