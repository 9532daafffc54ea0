"""A real Tradewind process for browser tests: temp data dir and SQLite file, free port, live simulated feed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.app_process import AppProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    """Start `python main.py` and yield its base URL; the process is killed afterwards whatever happens."""
    app = AppProcess(tmp_path, NICEGUI_STORAGE_PATH=str(tmp_path / "nicegui"))
    try:
        app.start()
        yield app.url
    finally:
        app.kill()
