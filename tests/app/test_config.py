"""Settings: defaults, parsing, one clear line per invalid variable, generated secrets."""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from app.config import SettingsError, load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    names = ("DATABASE_URL", "DATA_DIR", "MARKET_FEED_ENABLED", "JWT_SECRET", "ENCRYPTION_KEY", "STORAGE_SECRET")
    names = (*names, "ENCRYPTION_KEY_OLD", "COOKIE_SECURE")
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
        ("ENCRYPTION_KEY_OLD", f"{'A' * 43},too-short", "ENCRYPTION_KEY_OLD"),
        ("JWT_SECRET", "x" * 31, "at least 32 characters"),
        ("STORAGE_SECRET", "short", "at least 32 characters"),
        ("COOKIE_SECURE", "maybe", "COOKIE_SECURE"),
        ("REDIS_URL", "http://127.0.0.1:6379", "redis://"),
        ("CLUSTER_PARTITIONS", "0", "CLUSTER_PARTITIONS"),
        ("CLUSTER_PARTITIONS", "1025", "CLUSTER_PARTITIONS"),
        ("LEASE_TTL_SECONDS", "0.1", "LEASE_TTL_SECONDS"),
        ("LEASE_TTL_SECONDS", "301", "LEASE_TTL_SECONDS"),
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
    monkeypatch.setenv("JWT_SECRET", "from-the-environment-" + "x" * 11)
    assert load_settings().jwt_secret == "from-the-environment-" + "x" * 11
    assert not (clean_env / "data" / "secrets" / "jwt_secret").exists()


def _run_main(clean_env: Path, **env: str) -> subprocess.CompletedProcess[str]:
    main = Path(__file__).resolve().parents[2] / "main.py"
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(clean_env / "data"), **env}
    return subprocess.run([sys.executable, str(main)], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_main_refuses_to_start_with_one_clear_line(clean_env: Path) -> None:
    result = _run_main(clean_env, MARKET_DATA="nasdaq")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("tradewind: invalid setting MARKET_DATA")


def test_old_encryption_keys_are_a_list(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = [base64.urlsafe_b64encode(bytes([n]) * 32).decode().rstrip("=") for n in (1, 2)]
    monkeypatch.setenv("ENCRYPTION_KEY_OLD", f"{old[0]}, {old[1]}")
    assert load_settings().encryption_key_old == old
    monkeypatch.delenv("ENCRYPTION_KEY_OLD")
    assert load_settings().encryption_key_old == []


def test_an_empty_stored_secret_is_replaced(clean_env: Path) -> None:
    folder = clean_env / "data" / "secrets"
    folder.mkdir(parents=True)
    (folder / "jwt_secret").write_text("")
    (folder / "storage_secret").write_text("\n")
    settings = load_settings()
    assert len(settings.jwt_secret) >= 32 and len(settings.storage_secret) >= 32
    assert (folder / "jwt_secret").read_text() == settings.jwt_secret
    assert stat.S_IMODE((folder / "jwt_secret").stat().st_mode) == 0o600
    assert load_settings().jwt_secret == settings.jwt_secret
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


@pytest.mark.parametrize(
    ("name", "content"), [("jwt_secret", "short-secret"), ("storage_secret", "x" * 31), ("encryption_key", "abc")]
)
def test_a_short_stored_secret_stops_start_up_and_is_kept(clean_env: Path, name: str, content: str) -> None:
    folder = clean_env / "data" / "secrets"
    folder.mkdir(parents=True)
    (folder / name).write_text(content)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"invalid setting {name.upper()}: ")
    assert str(folder / name) in str(caught.value)
    assert (folder / name).read_text() == content  # never silently replaced: the operator decides


def test_a_secret_written_by_a_racing_first_start_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes starting for the first time agree on one value: the second link fails, its value is dropped."""
    folder = clean_env / "data" / "secrets"
    real_link = os.link

    def racing_link(source: str, target: str) -> None:
        Path(target).write_text("w" * 43)  # the other process got there first
        real_link(source, target)

    monkeypatch.setattr(os, "link", racing_link)
    assert load_settings().jwt_secret == "w" * 43
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_main_refuses_a_short_jwt_secret(clean_env: Path) -> None:
    result = _run_main(clean_env, JWT_SECRET="too-short")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("tradewind: invalid setting JWT_SECRET")


def test_configured_logging_drops_the_schedulers_info_lines(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from app.config import configure_logging

    configure_logging()
    ran = asyncio.Event()

    async def scenario() -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(ran.set, "date", id="once")  # runs at once: "Added job", "Running job", "executed"
        with caplog.at_level(logging.INFO):
            scheduler.start()
            await asyncio.wait_for(ran.wait(), 5)
            await asyncio.sleep(0.05)
            logging.getLogger("app.jobs").info("still heard")
        scheduler.shutdown(wait=False)

    asyncio.run(scenario())
    assert ran.is_set()
    assert [r.name for r in caplog.records if r.name.startswith("apscheduler") and r.levelno < logging.WARNING] == []
    assert "still heard" in caplog.text


def test_webhook_settings(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert defaults.webhook_allowed_hosts == [] and defaults.webhook_max_per_user == 10
    assert (defaults.webhook_max_attempts, defaults.webhook_retry_initial_seconds) == (5, 1.0)
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", " Hooks.Example.COM., 10.0.0.5,[::1],, 10.0.0.5")
    assert load_settings().webhook_allowed_hosts == ["hooks.example.com", "10.0.0.5", "::1"]
    for bad in ("hooks.example.com:8443", "10.0.0.0/8", "user@hooks.example.com"):
        monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", bad)
        with pytest.raises(SettingsError, match="invalid setting WEBHOOK_ALLOWED_HOSTS: expected host names"):
            load_settings()


def test_cluster_settings(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLUSTER", "CLUSTER_PARTITIONS", "LEASE_TTL_SECONDS", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.cluster, settings.cluster_partitions, settings.lease_ttl_seconds) == (False, 64, 10.0)
    monkeypatch.setenv("CLUSTER", "true")
    with pytest.raises(SettingsError, match="CLUSTER: cluster mode needs REDIS_URL"):
        load_settings()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(SettingsError, match="CLUSTER: cluster mode needs a PostgreSQL DATABASE_URL"):
        load_settings()  # the default SQLite file
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/tradewind")
    monkeypatch.setenv("CLUSTER_PARTITIONS", "16")
    monkeypatch.setenv("LEASE_TTL_SECONDS", "0.5")
    settings = load_settings()
    assert (settings.cluster, settings.cluster_partitions, settings.lease_ttl_seconds) == (True, 16, 0.5)
