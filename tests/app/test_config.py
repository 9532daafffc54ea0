"""Settings: defaults, parsing, one clear line per invalid variable, generated secrets."""

from __future__ import annotations

import stat
from decimal import Decimal
from pathlib import Path

import pytest

from app.config import SettingsError, load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    names = ("DATABASE_URL", "DATA_DIR", "MARKET_FEED_ENABLED", "JWT_SECRET", "ENCRYPTION_KEY")
    binance = ("BINANCE_TESTNET_URL", "BINANCE_TESTNET_STREAM_URL", "BINANCE_TESTNET_WS_API_URL")
    for name in (*names, *binance):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_defaults_match_the_api_contract(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.database_url == f"sqlite:///{clean_env / 'data' / 'tradewind.db'}"
    assert settings.symbols == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
    assert settings.market_data == "simulated"
    assert settings.sim_seed == 42
    assert settings.paper_balances == {"USDT": Decimal("10000")}
    assert settings.binance_testnet_url == "https://testnet.binance.vision"
    assert settings.binance_testnet_stream_url == "wss://stream.testnet.binance.vision"
    assert settings.binance_testnet_ws_api_url == "wss://ws-api.testnet.binance.vision"


def test_variables_are_parsed(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBOLS", "btc/usdt, ETHUSDT")
    monkeypatch.setenv("PAPER_BALANCES", "USDT:2500.5,btc:0.25")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("MARKET_DATA", "binance-testnet")
    settings = load_settings()
    assert settings.symbols == ["BTCUSDT", "ETHUSDT"]
    assert settings.paper_balances == {"USDT": Decimal("2500.5"), "BTC": Decimal("0.25")}
    assert settings.port == 9000
    assert settings.market_data == "binance-testnet"


def test_env_file_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text("SIM_SEED=7\n")
    assert load_settings().sim_seed == 7


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("DATABASE_URL", "mysql://x@localhost/db", "DATABASE_URL"),
        ("MARKET_DATA", "nasdaq", "MARKET_DATA"),
        ("PORT", "99999", "PORT"),
        ("PAPER_BALANCES", "USDT=10", "PAPER_BALANCES"),
        ("PAPER_BALANCES", "USDT:-5", "PAPER_BALANCES"),
        ("BINANCE_TESTNET_URL", "https://api.binance.com", "mainnet"),
        ("BINANCE_TESTNET_STREAM_URL", "wss://stream.binance.com:9443", "mainnet"),
        ("ENCRYPTION_KEY", "too-short", "ENCRYPTION_KEY"),
    ],
)
def test_invalid_settings_name_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert fragment in message
    assert variable in message
    assert "\n" not in message


def test_secrets_are_generated_once_with_private_permissions(clean_env: Path) -> None:
    first = load_settings()
    second = load_settings()
    assert first.jwt_secret and first.encryption_key and first.storage_secret
    assert len({first.jwt_secret, first.encryption_key, first.storage_secret}) == 3
    assert (first.jwt_secret, first.encryption_key) == (second.jwt_secret, second.encryption_key)
    for name in ("jwt_secret", "encryption_key", "storage_secret"):
        mode = (clean_env / "data" / "secrets" / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600


def test_explicit_secret_wins_over_generated(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "from-the-environment")
    assert load_settings().jwt_secret == "from-the-environment"
    assert not (clean_env / "data" / "secrets" / "jwt_secret").exists()


def test_main_refuses_to_start_with_one_clear_line(clean_env: Path) -> None:
    import subprocess
    import sys

    main = Path(__file__).resolve().parents[2] / "main.py"
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(clean_env / "data"), "MARKET_DATA": "nasdaq"}
    result = subprocess.run(
        [sys.executable, str(main)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("tradewind: invalid setting MARKET_DATA")
