"""Two builds' in-process order path, side by side: which one costs less CPU per order.

    .venv/bin/python bench/ab_inprocess.py OTHER_CHECKOUT [--pairs 8] [--orders 20000] [--warm-up 2000]
    .venv/bin/python bench/ab_inprocess.py . --other-env NATIVE_CORE=off     # the native build against Python

OTHER_CHECKOUT is another working tree of this repository (`git worktree add /tmp/before <rev>`; it may share this
one's .venv). Each pair runs both builds AT THE SAME TIME, each process pinned to its own core (`taskset`), and the
cores are swapped every pair; each run submits `--orders` paper market orders through the real services on SQLite
(after `--warm-up` of them) and reports the CPU of all its threads per order. Prints every pair and the median of
the pairs' ratios (this build / the other).

Why at the same time: on these shared VMs the in-process part's CPU per order moved by ~15 % from one run to the
next on one build, so alternating runs could not resolve a change of a few per cent; two runs sharing the same
minutes see the same noise, and their ratio held to a few per cent (docs/orders.md, "Speed", 2026-12-06 later).
It needs two idle cores; the load part (which uses both) cannot be compared this way. Figures are printed, never
asserted.

`--this-env` / `--other-env NAME=VALUE` set a variable for one side only: the same checkout twice with
NATIVE_CORE=off on one side measures what the native build (app/native.py) saves. Each pair line says which form
each side ran in (native or python): a missing or stale build runs Python without a word.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.machinery
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


Side = tuple[Path, dict[str, str]]  # a checkout and the variables its runs get


def run_pair(first: Side, second: Side, cores: tuple[int, int], orders: int, warm_up: int) -> list[tuple[str, float]]:
    """How each ran (native or python) and its CPU µs per order: `first` on cores[0], `second` on cores[1], at once."""
    processes = [
        subprocess.Popen(
            ["taskset", "-c", str(core), sys.executable, __file__, "--worker", str(root), str(orders), str(warm_up)],
            cwd=root,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        for (root, env), core in ((first, cores[0]), (second, cores[1]))
    ]
    outputs = [process.communicate()[0] for process in processes]
    for process in processes:
        if process.returncode != 0:
            raise SystemExit(f"a worker failed (exit {process.returncode})")
    return [(output.split()[-2], float(output.split()[-1])) for output in outputs]


def worker(root: Path, orders: int, warm_up: int) -> None:
    """One build's run: warm up, then time `orders` submits until all are FILLED; print the CPU µs per order."""
    sys.path.insert(0, str(root))
    sys.path.insert(1, str(root / "bench"))
    import order_pipeline  # the build under test's own bench helpers

    folder = Path(tempfile.mkdtemp(prefix="tw-ab-"))
    os.environ.update(
        DATABASE_URL=order_pipeline.database_url("sqlite", folder, "ab"),
        DATA_DIR=str(folder),
        MARKET_FEED_ENABLED="false",
        PAPER_BALANCES="USDT:100000000",
    )

    async def measure() -> float:
        from app.config import load_settings
        from app.orders import OrderRequest
        from app.services import build_services, freeze_startup_heap

        services = build_services(load_settings())
        await services.engine.start()
        freeze_startup_heap()
        users = [(await services.auth.register(f"ab{n}@example.com", order_pipeline.PASSWORD)).id for n in range(4)]
        order = OrderRequest("BTCUSDT", "BUY", "MARKET", quantity="0.0001")
        await asyncio.gather(*(services.orders.submit(users[n % 4], order) for n in range(warm_up)))
        await services.engine.drain()
        cpu = time.process_time()
        await asyncio.gather(*(services.orders.submit(users[n % 4], order) for n in range(orders)))
        await services.engine.drain()
        cpu = time.process_time() - cpu
        await services.stop()
        return cpu / orders * 1e6

    cpu = order_pipeline.run_on_servers_loop(measure())
    # Which form the order path ran in (app/native.py): a missing or stale build silently runs Python.
    loader = sys.modules["app.orders"].__spec__.loader  # type: ignore[union-attr]
    print(f"{'native' if isinstance(loader, importlib.machinery.ExtensionFileLoader) else 'python'} {cpu:.1f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the other build's checkout")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--warm-up", type=int, default=2_000)
    parser.add_argument("--this-env", action="append", default=[], metavar="NAME=VALUE", help="for this build only")
    parser.add_argument("--other-env", action="append", default=[], metavar="NAME=VALUE", help="for the other only")
    args = parser.parse_args()
    other = args.other.resolve()
    this_side: Side = (HERE, dict(pair.split("=", 1) for pair in args.this_env))
    other_side: Side = (other, dict(pair.split("=", 1) for pair in args.other_env))
    print(f"CPU µs per order, in process, SQLite; this build {HERE} {this_side[1]} against {other} {other_side[1]}")
    ratios = []
    for pair in range(args.pairs):
        cores = (0, 1) if pair % 2 == 0 else (1, 0)
        (this_kind, this), (that_kind, that) = run_pair(this_side, other_side, cores, args.orders, args.warm_up)
        ratios.append(this / that)
        print(
            f"  pair {pair + 1}: this {this:6.1f} ({this_kind}, core {cores[0]})  "
            f"other {that:6.1f} ({that_kind}, core {cores[1]})  ratio {this / that:.3f}"
        )
    print(f"median ratio this / other: {statistics.median(ratios):.3f} over {len(ratios)} pairs")


if __name__ == "__main__":
    main()
