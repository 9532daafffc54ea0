"""bench/order_pipeline.py's paced parts: requests fired at a fixed rate (open loop), their latencies, submit ->
FILLED on the WebSocket, and the server CPU per order at a pace that is the same for every build."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import aiohttp
import websockets
from bench_servers import ORDER, Server, percentile, until_no_open_orders


async def paced(
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str],
    rate: int,
    count: int,
    achieved: list[float],
) -> list[float]:
    """Fire `count` requests at `rate`/s (open loop: the pace does not wait for answers); latencies in ms. Appends
    the rate actually answered (count / time until the last answer) to `achieved`: below `rate`, the server could
    not keep up and the latencies are queueing."""
    latencies: list[float] = []

    async def one() -> None:
        t0 = time.perf_counter()
        async with session.request(method, path, json=body, headers=headers) as response:
            await response.read()
            assert response.status < 300, response.status
        latencies.append((time.perf_counter() - t0) * 1000)

    tasks = []
    start = time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    achieved.append(count / (time.perf_counter() - start))
    return latencies


async def paced_figures(app: Server, token: str) -> dict[str, float]:
    async with aiohttp.ClientSession(app.url) as client:
        headers = {"Authorization": f"Bearer {token}"}
        warm: list[float] = []
        await paced(client, "POST", "/api/trading/orders", ORDER, headers, 200, 50, warm)  # warm-up
        rates: list[float] = []
        # Baseline in the same run: an authenticated read through the same stack, at the same pace.
        baseline = await paced(client, "GET", "/api/accounts", None, headers, 200, 1000, rates)
        acks = await paced(client, "POST", "/api/trading/orders", ORDER, headers, 200, 1000, rates)
    await until_no_open_orders(app.url, [token])  # the fills below start with an idle engine
    await asyncio.sleep(1)
    fills: list[float] = []
    # A fresh session: uvicorn closes keep-alive connections idle for 5 s, and reusing one of the paced run's
    # connections as it closes fails with ServerDisconnectedError.
    ws_url = f"ws://127.0.0.1:{app.port}/ws?token={token}"
    async with aiohttp.ClientSession(app.url) as client, websockets.connect(ws_url) as ws:
        await ws.recv()
        symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
        await ws.send(json.dumps({"type": "UNSUBSCRIBE", "symbols": symbols}))
        for _ in range(300):
            t0 = time.perf_counter()
            async with client.post("/api/trading/orders", json=ORDER, headers=headers) as response:
                order_id = (await response.json())["id"]
            while True:
                message = json.loads(await ws.recv())
                data = message.get("data", {})
                if message["type"] == "ORDER_UPDATE" and data.get("id") == order_id and data["status"] == "FILLED":
                    fills.append((time.perf_counter() - t0) * 1000)
                    break
            await asyncio.sleep(0.01)
    return {
        "base_rate": rates[0],
        "ack_rate": rates[1],
        "base_p50": statistics.median(baseline),
        "base_p99": percentile(baseline, 0.99),
        "ack_p50": statistics.median(acks),
        "ack_p99": percentile(acks, 0.99),
        "fill_p50": statistics.median(fills),
        "fill_p99": percentile(fills, 0.99),
    }


async def paced_posts(base: str, path: str, users: list[dict[str, str]], rate: int, count: int, ok: int) -> None:
    async with aiohttp.ClientSession(base) as session:
        start = time.perf_counter()
        tasks = []
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            headers = users[n % len(users)]
            tasks.append(asyncio.create_task(session.post(path, json=ORDER, headers=headers)))
        for response in await asyncio.gather(*tasks):
            await response.read()
            assert response.status == ok, response.status
            response.release()


def paced_cpu(app: Server, tokens: list[str], rate: int, count: int, idle: float) -> float:
    """Server CPU µs per order at a paced `rate` (open loop, users round-robin) until all are filled, less the
    idle CPU of the same seconds. The arrival pattern is the same for every build, so unlike the closed loop's
    figure it does not depend on how big the groups and batches got (a faster build gets more per commit there)."""
    cpu, t0 = app.cpu_seconds(), time.perf_counter()
    users = [{"Authorization": f"Bearer {token}"} for token in tokens]
    asyncio.run(paced_posts(app.url, "/api/trading/orders", users, rate, count, 202))
    asyncio.run(until_no_open_orders(app.url, tokens))
    used = app.cpu_seconds() - cpu - idle * (time.perf_counter() - t0)
    return used / count * 1e6
