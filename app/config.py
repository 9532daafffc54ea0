"""Settings from the environment and `.env` (pydantic-settings), with secrets generated once into DATA_DIR.

Build settings once with :func:`load_settings` (``main.py`` does) and pass them down; nothing here is a global.
"""

from __future__ import annotations

import base64
import os
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# Substrings of Binance production hosts: api(1-4|-gcp).binance.com, stream/ws-api.binance.com, binance.us and the
# public market-data mirrors on binance.vision (the testnets live on testnet.binance.vision).
MAINNET_HOST_MARKERS = ("binance.com", "binance.us", "data-api.binance.vision", "data-stream.binance.vision")
GENERATED_SECRETS = ("JWT_SECRET", "ENCRYPTION_KEY", "STORAGE_SECRET")


class SettingsError(Exception):
    """Invalid configuration: the message is one line that names the variable."""


class Settings(BaseSettings):
    """Every variable of API.md's configuration table, plus a few operational knobs."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Empty means "the SQLite file inside DATA_DIR" (API.md: sqlite:///./data/tradewind.db by default).
    database_url: str = ""
    data_dir: Path = Path("./data")
    jwt_secret: str = ""
    encryption_key: str = ""
    storage_secret: str = ""
    jwt_expire_hours: float = Field(12.0, gt=0)
    symbols: Annotated[list[str], NoDecode] = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
    market_data: Literal["simulated", "binance-testnet"] = "simulated"
    sim_seed: int = 42
    paper_balances: Annotated[dict[str, Decimal], NoDecode] = {"USDT": Decimal("10000")}
    paper_maker_fee: Decimal = Field(Decimal("0.001"), ge=0, lt=1)
    paper_taker_fee: Decimal = Field(Decimal("0.001"), ge=0, lt=1)
    binance_testnet_url: str = "https://testnet.binance.vision"
    binance_testnet_stream_url: str = "wss://stream.testnet.binance.vision"
    binance_testnet_ws_api_url: str = "wss://ws-api.testnet.binance.vision"
    # Sessions and abuse limits (docs/security.md).
    registration: Literal["open", "closed"] = "open"
    register_limit_per_hour: int = Field(20, ge=1)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto uvicorn trusts for the client address (a reverse proxy).
    forwarded_allow_ips: str = "127.0.0.1"
    # Background machinery can be switched off for tests that drive the market themselves.
    market_feed_enabled: bool = True

    @field_validator("symbols", mode="before")
    @classmethod
    def _parse_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", "").split(",") if part]
        if isinstance(value, list):
            symbols = [str(s).upper().replace("/", "") for s in value]
            if not symbols or any(not s.isalnum() for s in symbols):
                raise ValueError("expected a comma-separated list like BTCUSDT,ETHUSDT")
            return list(dict.fromkeys(symbols))
        return value

    @field_validator("paper_balances", mode="before")
    @classmethod
    def _parse_balances(cls, value: object) -> object:
        if isinstance(value, str):
            balances: dict[str, Decimal] = {}
            for part in filter(None, value.replace(" ", "").split(",")):
                asset, sep, amount = part.partition(":")
                try:
                    parsed = Decimal(amount)
                except InvalidOperation:
                    parsed = Decimal("NaN")
                if not sep or not asset.isalnum() or not parsed.is_finite() or parsed < 0:
                    raise ValueError("expected ASSET:AMOUNT pairs like USDT:10000,BTC:0.5")
                balances[asset.upper()] = parsed
            return balances
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL (sqlite:///path or postgresql+psycopg://...)") from exc
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("only sqlite:/// and postgresql+psycopg:// are supported")
        return value

    @field_validator("binance_testnet_url", "binance_testnet_stream_url", "binance_testnet_ws_api_url")
    @classmethod
    def _refuse_mainnet(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.hostname:
            raise ValueError("not a URL")
        if any(marker in parts.hostname for marker in MAINNET_HOST_MARKERS):
            raise ValueError(f"{parts.hostname} is a Binance mainnet host; Tradewind trades on testnets only")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_encryption_key(self) -> Settings:
        if self.encryption_key:
            decode_key(self.encryption_key)
        return self

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"


def decode_key(encoded: str) -> bytes:
    """ENCRYPTION_KEY is 32 random bytes in URL-safe base64 (what `secrets.token_urlsafe(32)` gives)."""
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError as exc:
        raise ValueError("ENCRYPTION_KEY must be 32 bytes in URL-safe base64") from exc
    if len(raw) != 32:
        raise ValueError("ENCRYPTION_KEY must be 32 bytes in URL-safe base64")
    return raw


def load_settings(**overrides: object) -> Settings:
    """Read settings, then fill any missing secret from (or into) DATA_DIR. Raises SettingsError."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        variable = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"invalid setting {variable}: {message}") from None
    if not settings.database_url:
        settings.database_url = f"sqlite:///{settings.data_dir / 'tradewind.db'}"
    for name in GENERATED_SECRETS:
        field = name.lower()
        if not getattr(settings, field):
            setattr(settings, field, _stored_secret(settings.data_dir, name))
    return settings


def _stored_secret(data_dir: Path, name: str) -> str:
    """Return the secret kept in DATA_DIR/secrets/NAME, creating it (mode 0600) on first use."""
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name.lower()
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    # O_EXCL: if two processes race on first start, one wins and the other reads the winner's value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
