"""Trade-page fan-out benchmark: N concurrent /trade/{symbol} pages over NiceGUI's real socket.io websocket.

    .venv/bin/python bench/ui_pages.py [--pages 200] [--seconds 20]

What it does, all on this machine:
- starts the real app (`main.py`'s wiring, SQLite in a temp dir) in a child process with the simulated feed off and a
  driver instead: every 250 ms each of 5 symbols gets one public trade (5 symbols x 4 updates/s). The driver encodes
  a sequence number in the price (base + seq), and records when it applied each one;
- logs one user in the way the login page does (the session's `app.storage.user` carries the user id) and opens
  pages with that session cookie: HTTP GET of the page, then python-socketio's AsyncClient connects to
  /_nicegui_ws/socket.io with the page's client id (the browser's implicit handshake), spread over the 5 symbols;
- tick -> page lag = time the page's `update` message carrying the new last-price label arrives - time the driver
  applied that trade (same clock); CPU = the server process's CPU seconds / wall seconds (from /proc); memory per
  page = server RSS growth / pages; garbage-collection pauses over 20 ms in the server (they stop the event loop);
- baseline in the same run: first 1 page, then N pages; figures and ratios are printed. Timings never go in tests.

python-socketio (the client) and aiohttp are already installed: the first is a NiceGUI dependency, the second a dev
extra. The load generator runs on the same 2 cores as the server, so lag includes some client-side queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")
BASES = {"BTCUSDT": 50000, "ETHUSDT": 3000, "BNBUSDT": 600, "SOLUSDT": 150, "XRPUSDT": 1}
STEP = {"BTCUSDT": "1", "ETHUSDT": "0.1", "BNBUSDT": "0.1", "SOLUSDT": "0.01", "XRPUSDT": "0.0001"}
UPDATES_PER_SECOND = 4
SECRET = "bench-storage-secret-" + "x" * 32
EMAIL = "bench@example.com"


# ---- server side (child process) ------------------------------------------------------------------------------


def serve(port: int, data_dir: Path, session_id: str) -> None:
    """main.py's wiring plus the driver and one logged-in session (written where NiceGUI keeps user storage)."""
    sys.path.insert(0, str(ROOT))
    from nicegui import app, ui

    from app.api import mount_api
    from app.config import load_settings
    from app.ids import now_ms
    from app.market.models import Trade
    from app.services import build_services
    from components.pages import register_pages

    settings = load_settings()
    pauses = gc_pause_recorder()
    services = build_services(settings)
    app.state.services = services
    mount_api(app)
    register_pages(services)
    sent: dict[str, list[float]] = {s: [] for s in SYMBOLS}

    async def log_in_and_drive() -> None:
        user = await services.auth.register(EMAIL, "bench-password-1")
        version = await services.auth.token_version(user.id) or 0
        storage = Path(os.environ["NICEGUI_STORAGE_PATH"])
        storage.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any page exists
        session = {"user_id": user.id, "email": user.email, "token_version": version}
        (storage / f"storage-user-{session_id}.json").write_text(json.dumps(session))
        (data_dir / "ready").write_text("ok")
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            for symbol in SYMBOLS:
                seq = len(sent[symbol])
                price = BASES[symbol] + Decimal(STEP[symbol]) * (seq + 1)
                sent[symbol].append(time.time())
                services.market.apply_trade(Trade(symbol, price, Decimal("0.01"), "BUY", now_ms()))
            if seq % UPDATES_PER_SECOND == 0:  # once a second: the load generator reads the send times from it
                (data_dir / "sent.json").write_text(json.dumps(sent))
                (data_dir / "gc.json").write_text(json.dumps(pauses))
            deadline += 1 / UPDATES_PER_SECOND
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    app.on_startup(services.start)
    app.on_startup(lambda: asyncio.get_running_loop().create_task(log_in_and_drive()))
    app.on_shutdown(services.stop)
    ui.run(
        host="127.0.0.1",
        port=port,
        storage_secret=settings.storage_secret,
        reload=False,
        show=False,
        reconnect_timeout=10,
        show_welcome_message=False,
        uvicorn_logging_level="warning",
    )


def gc_pause_recorder(longer_than: float = 0.02) -> list[tuple[float, int, float]]:
    """(wall time, generation, seconds) of every garbage collection longer than `longer_than`: such a pause stops
    the event loop, so it shows up directly in the lag tail."""
    import gc

    pauses: list[tuple[float, int, float]] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif (took := time.perf_counter() - started[0]) > longer_than:
            pauses.append((time.time(), info["generation"], took))

    gc.callbacks.append(on_gc)
    return pauses


# ---- load generator (parent process) --------------------------------------------------------------------------


def session_cookie(session_id: str) -> str:
    """Starlette's SessionMiddleware cookie for {"id": session_id}, signed with the storage secret."""
    from itsdangerous import TimestampSigner

    data = base64.b64encode(json.dumps({"id": session_id}).encode())
    return TimestampSigner(SECRET).sign(data).decode()


class Page:
    """One simulated browser tab of /trade/{symbol}: HTML over HTTP, then the socket.io websocket."""

    def __init__(self, base: str, symbol: str, cookie: str, lags: list[tuple[str, int, float]]) -> None:
        self.base, self.symbol, self.cookie, self.lags = base, symbol, cookie, lags
        self.sio: object = None
        self.messages = 0

    async def open(self, http: object) -> None:
        import socketio

        response = await http.get(f"{self.base}/trade/{self.symbol}", headers={"Cookie": f"session={self.cookie}"})  # type: ignore[attr-defined]
        html = response.text
        match = re.search(r"""['"]client_id['"]:\s*['"]([^'"]+)""", html)  # the page's socket.io query
        assert match, f"no client id in the page (status {response.status_code}): {html[:300]}"
        query = {
            "client_id": match.group(1),
            "implicit_handshake": "true",
            "tab_id": str(uuid.uuid4()),
            "document_id": str(uuid.uuid4()),
            "next_message_id": "0",
        }
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("update", self._on_update)
        sio.on("*", self._on_any)
        url = f"{self.base}/?" + "&".join(f"{k}={v}" for k, v in query.items())
        await sio.connect(
            url,
            socketio_path="/_nicegui_ws/socket.io",
            transports=["websocket"],
            headers={"Cookie": f"session={self.cookie}"},
        )
        self.sio = sio

    async def _on_any(self, event: str, data: object = None) -> None:
        self.messages += 1

    async def _on_update(self, data: dict) -> None:
        now = time.time()
        self.messages += 1
        for element in data.values():  # {element id: element dict, ..., "_id": message id}
            if isinstance(element, dict) and element.get("props", {}).get("data-testid") == "last-price":
                text = str(element.get("text", "")).replace(",", "")
                if text and text != "—":
                    seq = round((Decimal(text) - BASES[self.symbol]) / Decimal(STEP[self.symbol])) - 1
                    self.lags.append((self.symbol, seq, now))

    async def close(self) -> None:
        if self.sio is not None:
            await self.sio.disconnect()  # type: ignore[attr-defined]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def phase(
    base: str, cookie: str, pages: int, seconds: float, pid: int, data_dir: Path, opened: list[Page]
) -> dict[str, float]:
    """Open pages until `pages` are open (the earlier phase's stay open: the session lives while a tab does),
    measure for `seconds`."""
    import httpx

    lags: list[tuple[str, int, float]] = []
    for page in opened:
        page.lags = lags
    already = len(opened)
    rss_before = proc_rss_mb(pid)
    async with httpx.AsyncClient(timeout=60) as http:
        gate = asyncio.Semaphore(8)

        async def open_one(i: int) -> None:
            async with gate:
                page = Page(base, SYMBOLS[i % len(SYMBOLS)], cookie, lags)
                await page.open(http)
                opened.append(page)

        await asyncio.gather(*(open_one(i) for i in range(already, pages)))
    await asyncio.sleep(3)  # settle: page builds done, first pushes delivered
    lags.clear()
    cpu0, wall0, start = proc_cpu_seconds(pid), time.monotonic(), time.time()
    await asyncio.sleep(seconds)
    cpu = (proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
    rss, measured = proc_rss_mb(pid), list(lags)
    await asyncio.sleep(1.1)  # the driver rewrites its files once a second
    sent = json.loads((data_dir / "sent.json").read_text())
    gc_pauses = [took for at, _, took in json.loads((data_dir / "gc.json").read_text()) if at >= start]
    delays = sorted(now - sent[s][seq] for s, seq, now in measured if 0 <= seq < len(sent[s]))
    p = (lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] * 1000) if delays else (lambda q: float("nan"))
    return {
        "pages": pages,
        "cpu_cores": cpu,
        "rss_mb": rss,
        "mb_per_page": (rss - rss_before) / max(pages - already, 1),
        "updates_seen": len(delays),
        "updates_per_page_s": len(delays) / pages / seconds,
        "lag_p50_ms": p(0.50),
        "lag_p99_ms": p(0.99),
        "lag_max_ms": delays[-1] * 1000 if delays else float("nan"),
        "gc_pauses": len(gc_pauses),
        "gc_longest_ms": max(gc_pauses, default=0.0) * 1000,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(pages: int, seconds: float) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tw-bench-ui-"))
    port, session_id = free_port(), str(uuid.uuid4())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("NICEGUI", "PYTEST"))},
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'bench.db'}",
        "NICEGUI_STORAGE_PATH": str(data_dir / "nicegui"),
        "STORAGE_SECRET": SECRET,
        "MARKET_FEED_ENABLED": "false",
        "SYMBOLS": ",".join(SYMBOLS),
    }
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen(  # noqa: ASYNC220 - once, at start-up
        [sys.executable, __file__, "serve", str(port), str(data_dir), session_id],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            if (data_dir / "sent.json").exists():
                break
            if server.poll() is not None:
                raise SystemExit(f"server exited:\n{(data_dir / 'server.log').read_text()}")
            await asyncio.sleep(0.1)
        base, cookie = f"http://127.0.0.1:{port}", session_cookie(session_id)
        idle_cpu0, idle_t0 = proc_cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(3)
        idle = (proc_cpu_seconds(server.pid) - idle_cpu0) / (time.monotonic() - idle_t0)
        opened: list[Page] = []
        baseline = await phase(base, cookie, 1, seconds, server.pid, data_dir, opened)
        loaded = await phase(base, cookie, pages, seconds, server.pid, data_dir, opened)
        await asyncio.gather(*(page.close() for page in opened))
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    print(f"trade pages over socket.io: 5 symbols x {UPDATES_PER_SECOND} updates/s, {seconds:.0f} s per phase")
    print(f"server CPU with 0 pages (feed driver only): {idle:.3f} cores")
    for name, row in (("baseline", baseline), ("loaded", loaded)):
        print(
            f"{name:>8}: pages={row['pages']:>4} cpu={row['cpu_cores']:.3f} cores rss={row['rss_mb']:.0f} MB "
            f"mem/page={row['mb_per_page']:.2f} MB updates/page/s={row['updates_per_page_s']:.2f} "
            f"lag p50={row['lag_p50_ms']:.0f} ms p99={row['lag_p99_ms']:.0f} ms max={row['lag_max_ms']:.0f} ms "
            f"gc pauses >20 ms={row['gc_pauses']} (longest {row['gc_longest_ms']:.0f} ms)"
        )
    print(
        f"ratios loaded/baseline: cpu x{loaded['cpu_cores'] / max(baseline['cpu_cores'], 1e-9):.1f}, "
        f"p99 lag x{loaded['lag_p99_ms'] / max(baseline['lag_p99_ms'], 1e-9):.1f}; "
        f"cpu per page {(loaded['cpu_cores'] - idle) / pages * 1000:.2f} millicores"
    )
    print("targets: p99 < 250 ms, < 1 core, < 2 MB per page")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(run(args.pages, args.seconds))


if __name__ in {"__main__", "__mp_main__"}:
    main()
