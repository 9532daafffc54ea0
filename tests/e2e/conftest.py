"""A real Tradewind process for browser tests: temp data dir and SQLite file, free port, live simulated feed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    """Start `python main.py` and yield its base URL; the process is killed afterwards whatever happens."""
    port = _free_port()
    # Without pytest's and NiceGUI's test variables: NiceGUI would think it runs inside a screen test.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env = {
        **inherited,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
        "NICEGUI_STORAGE_PATH": str(tmp_path / "nicegui"),
        "MARKET_FEED_ENABLED": "true",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not become healthy in 30 s")
            time.sleep(0.2)
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)
        log.close()
