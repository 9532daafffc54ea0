"""/api/portfolio: the equity curve (downsampled snapshots, the value now) and performance per symbol (realized
PnL, fees valued in USDT); per account, and never another user's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from app.services import Services
from storage.repositories import equity as equity_repo
from tests.factories import place, register, wait_for_status

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


async def paper_ids(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    return [a["id"] for a in (await client.get("/api/accounts", headers=headers)).json()]


async def test_the_curve_keeps_the_last_snapshot_of_each_interval(
    client: httpx.AsyncClient, services: Services
) -> None:
    _, headers = await register(client)
    [account_id] = await paper_ids(client, headers)
    stored = [(T0 + 10 * MINUTE, "100"), (T0 + 50 * MINUTE, "110"), (T0 + HOUR + MINUTE, "120"), (T0 + DAY, "90")]
    services.db.run_sync(lambda s: equity_repo.upsert(s, [(account_id, t, Decimal(v)) for t, v in stored]))
    services.history.clock = lambda: T0 + DAY + 5 * MINUTE

    hourly = (await client.get("/api/portfolio/equity?interval=1h", headers=headers)).json()
    assert hourly["points"] == [
        {"t": T0, "equity": "110"},
        {"t": T0 + HOUR, "equity": "120"},
        {"t": T0 + DAY, "equity": "90"},
    ]
    assert (hourly["account_id"], hourly["quote"], hourly["interval"], hourly["equity"]) == (
        account_id,
        "USDT",
        "1h",
        "10000",  # the value now, from the balances
    )
    daily = (await client.get(f"/api/portfolio/equity?interval=1d&account_id={account_id}", headers=headers)).json()
    assert daily["points"] == [{"t": T0, "equity": "120"}, {"t": T0 + DAY, "equity": "90"}]
    services.history.clock = lambda: T0 + DAY + 11 * MINUTE
    minutes = (await client.get("/api/portfolio/equity?interval=1m", headers=headers)).json()
    assert [p["t"] for p in minutes["points"]] == [T0 + 50 * MINUTE, T0 + HOUR + MINUTE, T0 + DAY]  # one day back
    bad = await client.get("/api/portfolio/equity?interval=5m", headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "interval"


async def test_performance_sums_realized_pnl_and_fees_in_usdt(client: httpx.AsyncClient, running: Services) -> None:
    _, headers = await register(client)
    empty = (await client.get("/api/portfolio/performance", headers=headers)).json()
    assert (empty["realized_pnl"], empty["fees"], empty["symbols"]) == ("0", "0", [])
    buy = (await place(client, headers, quantity="0.01")).json()
    buy = await wait_for_status(client, headers, buy["id"], "FILLED")
    sell = (await place(client, headers, side="SELL", quantity="0.005")).json()
    sell = await wait_for_status(client, headers, sell["id"], "FILLED")

    fills: list[dict[str, Any]] = (await client.get("/api/trading/fills", headers=headers)).json()
    expected_fees = sum(
        (Decimal(f["fee"]) * Decimal(f["price"]) if f["fee_asset"] == "BTC" else Decimal(f["fee"]) for f in fills),
        Decimal(0),
    )
    [position] = (await client.get("/api/trading/positions", headers=headers)).json()
    summary = (await client.get("/api/portfolio/performance", headers=headers)).json()
    assert Decimal(summary["fees"]) == expected_fees > 0
    assert summary["symbols"] == [
        {
            "symbol": "BTCUSDT",
            "realized_pnl": position["realized_pnl"],
            "fees": summary["fees"],
            "fees_complete": True,
        }
    ]
    assert summary["realized_pnl"] == position["realized_pnl"] != "0"


async def test_another_users_or_accounts_history_is_never_shown(client: httpx.AsyncClient, services: Services) -> None:
    _, alice = await register(client)
    _, bob = await register(client)
    [alices] = await paper_ids(client, alice)
    [bobs] = await paper_ids(client, bob)
    strategy = (await client.post("/api/accounts", json={"venue": "paper", "label": "B"}, headers=alice)).json()["id"]
    services.db.run_sync(lambda s: equity_repo.upsert(s, [(alices, T0, Decimal(1)), (strategy, T0, Decimal(2))]))
    services.history.clock = lambda: T0 + MINUTE
    assert (await client.get("/api/portfolio/equity?interval=1m", headers=bob)).json()["points"] == []
    of_strategy = await client.get(f"/api/portfolio/equity?interval=1m&account_id={strategy}", headers=alice)
    assert of_strategy.json()["points"] == [{"t": T0, "equity": "2"}]
    for path in ("equity", "performance"):
        response = await client.get(f"/api/portfolio/{path}?account_id={alices}", headers=bob)
        assert response.status_code == 404 and response.json()["error"]["code"] == "ACCOUNT_NOT_FOUND"
        assert (await client.get(f"/api/portfolio/{path}?account_id={bobs}")).status_code == 401
