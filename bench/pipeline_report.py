"""bench/order_pipeline.py's report: every figure beside its baseline, then each of the execution-core issue's
targets with the measured value and met / NOT met (the load target judged on the median round)."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass

from bench_servers import Load


@dataclass
class LoadRound:
    """One closed-loop round of orders against the app: end-to-end orders/s and server CPU µs per order until the
    last 202."""

    load: Load
    e2e: float
    ack_cpu: float


def order_path_form() -> str:
    """Which form the order path runs in, here and in the app processes this bench starts (app/native.py)."""
    from app import native, orders

    if native.is_native(orders):
        return "native build (app/native.py)"
    return "Python (NATIVE_CORE=off, or no current native build: .venv/bin/python -m app.native_build)"


def report(args: argparse.Namespace, f: dict, seconds: float) -> None:  # type: ignore[type-arg]
    print(f"database: {args.db}   orders: {args.orders}   parts: {', '.join(args.only)}   ({seconds:.0f} s)")
    print(f"order path: {order_path_form()}")
    targets: list[tuple[str, str, bool | None]] = []
    if "raw" in f:
        raw, intake, sustained, cpu_us = f["raw"], f["intake"], f["sustained"], f["cpu_us"]
        print("in process (no HTTP)")
        print(f"  baseline  raw single-row INSERT+COMMIT          {raw:10,.0f} rows/s")
        print(
            f"  baseline  storage floor (an order's rows alone)  {f['floor500']:10,.0f} µs/order, 500 per transaction;"
            f" {f['floor1']:,.0f} µs/order, one per transaction"
        )
        print(
            f"  baseline  storage floor, load part's shape   {f['floor_users']:10,.0f} µs/order,"
            f" one order from each of {args.users} users per transaction"
        )
        print(f"  pipeline  intake (store PENDING+event, enqueue) {intake:10,.0f} orders/s  ({intake / raw:.3f}x raw)")
        print(
            f"  pipeline  submit -> FILLED, sustained           {sustained:10,.0f} orders/s"
            f"  ({sustained / raw:.3f}x raw) = {1e6 / sustained:,.0f} µs/order wall, {cpu_us:,.0f} µs/order CPU"
        )
        print(
            f"  pipeline  the same, each with a client order id {f['sustained_ids']:10,.0f} orders/s"
            f"  ({f['sustained_ids'] / raw:.3f}x raw) = {f['cpu_us_ids']:,.0f} µs/order CPU"
        )
        scope = "" if args.db == "sqlite" else " [target defined on SQLite]"
        targets.append(
            (
                f"in-process sustained submit -> FILLED >= 10,000 orders/s (< 100 µs/order){scope}",
                f"{sustained:,.0f} orders/s ({1e6 / sustained:,.0f} µs/order; raw commit {raw:,.0f}/s;"
                f" storage floor {f['floor500']:,.0f} µs/order)",
                sustained >= 10_000 if args.db == "sqlite" else None,
            )
        )
    if "paced" in f:
        h = f["paced"]
        print("HTTP, paced 200 requests/s (one user)")
        print(
            f"  baseline  GET /api/accounts           p50 {h['base_p50']:6.1f} ms   p99 {h['base_p99']:6.1f} ms"
            f"  answered at {h['base_rate']:4.0f}/s"
        )
        print(
            f"  HTTP      submit -> 202               p50 {h['ack_p50']:6.1f} ms   p99 {h['ack_p99']:6.1f} ms"
            f"  answered at {h['ack_rate']:4.0f}/s"
            f"  ({h['ack_p50'] / h['base_p50']:.1f}x / {h['ack_p99'] / h['base_p99']:.1f}x baseline)"
        )
        saturated = min(h["base_rate"], h["ack_rate"]) < 190
        if saturated:
            print("  !! answered below the 200/s pace: the server was saturated, these latencies are mostly queueing")
        print(f"  HTTP+WS   submit -> FILLED event      p50 {h['fill_p50']:6.1f} ms   p99 {h['fill_p99']:6.1f} ms")
        targets += [
            ("paced 200/s: submit -> 202 p99 < 5 ms", f"{h['ack_p99']:.1f} ms", h["ack_p99"] < 5),
            (
                "paced 200/s: submit -> 202 p99 < 2 x GET /api/accounts p99"
                + (" [not judged: the baseline itself queued]" if saturated else ""),
                f"{h['ack_p99']:.1f} ms vs 2 x {h['base_p99']:.1f} = {2 * h['base_p99']:.1f} ms",
                h["ack_p99"] < 2 * h["base_p99"] if not saturated else None,
            ),
            ("paced 200/s: submit -> FILLED on /ws p99 < 15 ms", f"{h['fill_p99']:.1f} ms", h["fill_p99"] < 15),
        ]
    if "app_rounds" in f:
        targets.append(report_load(args, f))
    if targets:
        print("targets (issue: execution core)")
        for name, value, met in targets:
            verdict = "n/a" if met is None else ("met" if met else "NOT met")
            print(f"  {verdict:8} {name}\n           measured: {value}")


def report_load(args: argparse.Namespace, f: dict) -> tuple[str, str, bool]:  # type: ignore[type-arg]
    """The load part's lines; the target judged on the median round (each round against the mean of the bare
    app's runs on either side of it)."""
    bares: list[Load] = f["bares"]
    rounds: list[LoadRound] = f["app_rounds"]
    gen = f"{args.clients} aiohttp process{'es' if args.clients > 1 else ''}"
    print(
        f"HTTP load, closed loop: {args.connections} connections, {args.orders} requests, {args.users} users,"
        f" generator {gen}, {len(rounds)} round{'s' if len(rounds) > 1 else ''} of the app between bare runs"
    )
    for number, run in enumerate(bares):
        print(
            f"  baseline  bare FastAPI POST /echo (run {number + 1}) {run.rate:8,.0f} req/s   "
            f"     server CPU {run.server_us:5,.0f} µs/req   generator CPU {run.cpu_share:4.0%} of a core,"
            f" {run.errors} errors"
        )
    # Each round against the bare runs just before and after it: the machine's speed at that moment.
    around = [(bares[n].rate + bares[n + 1].rate) / 2 for n in range(len(rounds))]
    ratios = [r.e2e / bare for r, bare in zip(rounds, around, strict=True)]
    middle = sorted(range(len(rounds)), key=ratios.__getitem__)[len(rounds) // 2]
    median, bare = rounds[middle], around[middle]
    bare_us = statistics.mean(run.server_us for run in bares)
    read = f["app_read"]
    print(f"  app       idle (market simulation, timers)  server CPU {f['app_idle']:4.0%} of a core")
    print(
        f"  app       GET /api/accounts (same stack)    {read.rate:10,.0f} req/s     ({read.rate / bare:.2f}x bare)"
        f"  server CPU {read.server_us:5,.0f} µs/req   generator CPU {read.cpu_share:4.0%} of a core,"
        f" {read.errors} errors"
    )
    for number, (run, ratio) in enumerate(zip(rounds, ratios, strict=True)):
        mark = "  <- median" if number == middle and len(rounds) > 1 else ""
        print(
            f"  app       round {number + 1}: submit -> all FILLED   {run.e2e:10,.0f} orders/s  ({ratio:.2f}x bare)"
            f"  server CPU {run.load.server_us:5,.0f} µs/order{mark}"
        )
    load = median.load
    print(
        f"  app       accepted (202s until the last)    {load.rate:10,.0f} orders/s  ({load.rate / bare:.2f}x bare)"
        f"  server CPU {median.ack_cpu:5,.0f} µs/order   generator CPU {load.cpu_share:4.0%} of a core,"
        f" {load.errors} errors"
    )
    print(
        f"  app       submit -> all FILLED, end to end  {median.e2e:10,.0f} orders/s  ({ratios[middle]:.2f}x bare)"
        f"  server CPU {load.server_us:5,.0f} µs/order ({load.server_us / bare_us:.1f}x bare)"
    )
    print(
        f"  app       paced 200/s, {args.users} users, until FILLED       "
        f"server CPU {f['app_paced_cpu']:5,.0f} µs/order (less idle; same arrivals for every build)"
    )
    bare_paced = statistics.mean(run.paced_us for run in bares)
    print(
        f"  baseline  bare FastAPI POST /echo paced 200/s              "
        f"server CPU {bare_paced:5,.0f} µs/req   (app: {f['app_paced_cpu'] / bare_paced:.1f}x bare)"
    )
    need = 0.5 if args.db == "sqlite" else 0.3
    spread = f"; rounds {', '.join(f'{r:.2f}' for r in ratios)}" if len(rounds) > 1 else ""
    return (
        f"HTTP {args.db}, {args.connections} conns, {args.users} users: end-to-end >= {need} x bare req/s",
        f"{median.e2e:,.0f} orders/s = {ratios[middle]:.2f} x {bare:,.0f} req/s (median round{spread})",
        ratios[middle] >= need,
    )
