"""Testnet only: a Binance mainnet host in any of the three Binance URLs stops start-up with one clear line, and the
venue adapter refuses one even when settings validation was bypassed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import SettingsError, load_settings
from app.venues.binance_testnet import BinanceTestnetVenue

MAIN = Path(__file__).resolve().parents[3] / "main.py"
TESTNET = {
    "BINANCE_TESTNET_URL": "https://testnet.binance.vision",
    "BINANCE_TESTNET_STREAM_URL": "wss://stream.testnet.binance.vision",
    "BINANCE_TESTNET_WS_API_URL": "wss://ws-api.testnet.binance.vision",
}
MAINNET = [
    ("BINANCE_TESTNET_URL", "https://api.binance.com", "api.binance.com"),
    ("BINANCE_TESTNET_URL", "https://api3.binance.com", "api3.binance.com"),
    ("BINANCE_TESTNET_URL", "https://api.binance.us", "api.binance.us"),
    ("BINANCE_TESTNET_STREAM_URL", "wss://stream.binance.com:9443", "stream.binance.com"),
    ("BINANCE_TESTNET_STREAM_URL", "wss://data-stream.binance.vision", "data-stream.binance.vision"),
    ("BINANCE_TESTNET_WS_API_URL", "wss://ws-api.binance.com:443", "ws-api.binance.com"),
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("DATABASE_URL", "MARKET_FEED_ENABLED", *TESTNET):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.parametrize(("variable", "url", "host"), MAINNET)
def test_mainnet_hosts_are_refused_naming_the_variable_and_the_host(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, url: str, host: str
) -> None:
    monkeypatch.setenv(variable, url)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == (
        f"invalid setting {variable}: {host} is a Binance mainnet host; Tradewind trades on testnets only"
    )


def test_testnet_and_local_hosts_are_accepted(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, url in TESTNET.items():
        monkeypatch.setenv(variable, url + "/")
    settings = load_settings()
    assert settings.binance_testnet_ws_api_url == "wss://ws-api.testnet.binance.vision"
    monkeypatch.setenv("BINANCE_TESTNET_URL", "http://127.0.0.1:18080")
    assert load_settings().binance_testnet_url == "http://127.0.0.1:18080"


def test_main_refuses_to_start_against_mainnet_with_one_clear_line(clean_env: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATA_DIR": str(clean_env / "data"),
        "BINANCE_TESTNET_URL": "https://api.binance.com",
    }
    result = subprocess.run(
        [sys.executable, str(MAIN)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "tradewind: invalid setting BINANCE_TESTNET_URL: "
        "api.binance.com is a Binance mainnet host; Tradewind trades on testnets only"
    )


def test_the_adapter_refuses_mainnet_even_without_settings() -> None:
    with pytest.raises(ValueError, match="mainnet"):
        BinanceTestnetVenue(
            "k" * 64,
            "s" * 64,
            rest_url="https://api.binance.com",
            stream_url=TESTNET["BINANCE_TESTNET_STREAM_URL"],
            ws_api_url=TESTNET["BINANCE_TESTNET_WS_API_URL"],
        )
