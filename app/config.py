"""Settings from the environment and `.env` (pydantic-settings), with secrets generated once into DATA_DIR.

Build settings once with :func:`load_settings` (``main.py`` does) and pass them down; nothing here is a global.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import secrets
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# Substrings of Binance production hosts: api(1-4|-gcp).binance.com, stream/ws-api.binance.com, binance.us and the
# public market-data mirrors on binance.vision (the testnets live on testnet.binance.vision).
MAINNET_HOST_MARKERS = ("binance.com", "binance.us", "data-api.binance.vision", "data-stream.binance.vision")
GENERATED_SECRETS = ("JWT_SECRET", "ENCRYPTION_KEY", "STORAGE_SECRET")
MIN_SECRET_LENGTH = 32  # JWT_SECRET and STORAGE_SECRET (an HS256 key should be at least as long as its hash)
# Loggers that are chatty at INFO without saying anything an operator needs (apscheduler: two lines per job run).
QUIET_LOGGERS = ("apscheduler",)

log = logging.getLogger(__name__)


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
    # Previous ENCRYPTION_KEYs (comma-separated): stored exchange keys sealed with them still open, and are re-sealed
    # to ENCRYPTION_KEY at start-up.
    encryption_key_old: Annotated[list[str], NoDecode] = []
    storage_secret: str = ""
    # Session cookie `Secure` flag: "auto" sets it on responses to HTTPS requests (directly, or via a trusted proxy's
    # X-Forwarded-Proto), "true" always, "false" never.
    cookie_secure: Literal["auto", "true", "false"] = "auto"
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
    # Requests per second one API key may send on average (bursts of twice that); then 429 TOO_MANY_REQUESTS.
    api_key_requests_per_second: float = Field(50.0, gt=0, le=100_000)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto uvicorn trusts for the client address (a reverse proxy).
    forwarded_allow_ips: str = "127.0.0.1"
    # Background machinery can be switched off for tests that drive the market themselves.
    market_feed_enabled: bool = True
    # Outgoing webhooks (docs/api.md, docs/security.md). WEBHOOK_ALLOWED_HOSTS: empty = any host with public
    # addresses only; otherwise only these hosts (names or IP literals), which may then be private.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = []
    webhook_max_per_user: int = Field(10, ge=1, le=100)
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(5, ge=1, le=20)
    webhook_retry_initial_seconds: float = Field(1.0, gt=0, le=60)
    webhook_queue_size: int = Field(1000, ge=1, le=1_000_000)
    # Several replicas (docs/scaling.md): committed events, token-version changes and API key revocations are
    # published here and delivered by every other replica. Empty: one process, everything in memory.
    redis_url: str = ""
    # Prefix of the Redis channel names, so several deployments (or test runs) can share one Redis.
    redis_channel_prefix: str = "tradewind:"
    # Cluster mode (docs/scaling.md): replicas share accounts by partition leases and one market-data feed leader.
    # Needs REDIS_URL and a PostgreSQL DATABASE_URL (checked in load_settings, once DATABASE_URL has its default).
    cluster: bool = False
    # Fixed for the life of a deployment: accounts hash into this many partitions (many more than replicas).
    cluster_partitions: int = Field(64, ge=1, le=1024)
    # A dead replica's partitions and feed move after this long; leases are renewed every third of it.
    lease_ttl_seconds: float = Field(10.0, ge=0.2, le=300)

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

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.replace(" ", "").split(",")
        if isinstance(value, list):
            hosts = [str(h).strip().lower().rstrip(".").strip("[]") for h in value]
            hosts = [h for h in hosts if h]
            if any("/" in h or "@" in h or (":" in h and not _is_ip(h)) for h in hosts):
                raise ValueError("expected host names or IP addresses like hooks.example.com,10.0.0.5 (no ports)")
            return list(dict.fromkeys(hosts))
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

    @field_validator("jwt_secret", "storage_secret")
    @classmethod
    def _check_secret_length(cls, value: str) -> str:
        if value and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters (it has {len(value)})")
        return value

    @field_validator("encryption_key")
    @classmethod
    def _check_encryption_key(cls, value: str) -> str:
        if value:
            decode_key(value)
        return value

    @field_validator("encryption_key_old", mode="before")
    @classmethod
    def _parse_old_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", "").split(",") if part]
        if isinstance(value, list):
            for key in value:
                decode_key(str(key), "ENCRYPTION_KEY_OLD")
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

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("expected redis://host:port/db, rediss://... (TLS) or unix:///path")
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

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def decode_key(encoded: str, name: str = "ENCRYPTION_KEY") -> bytes:
    """ENCRYPTION_KEY is 32 random bytes in URL-safe base64 (what `secrets.token_urlsafe(32)` gives)."""
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes in URL-safe base64")
    return raw


def configure_logging() -> None:
    """Process-wide logging (main.py): INFO with timestamps, minus the loggers in QUIET_LOGGERS (WARNING and up)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


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
    if settings.cluster and not settings.redis_url:
        raise SettingsError("invalid setting CLUSTER: cluster mode needs REDIS_URL (redis://host:6379/0)")
    if settings.cluster and settings.is_sqlite:
        raise SettingsError(
            "invalid setting CLUSTER: cluster mode needs a PostgreSQL DATABASE_URL (postgresql+psycopg://...), "
            "which every replica shares"
        )
    for name in GENERATED_SECRETS:
        field = name.lower()
        if not getattr(settings, field):
            setattr(settings, field, _stored_secret(settings.data_dir, name))
    return settings


def _stored_secret(data_dir: Path, name: str) -> str:
    """Return the secret kept in DATA_DIR/secrets/NAME, creating it (mode 0600) on first use.

    An empty file (a first start that crashed mid-write, before writes were atomic) is replaced by a new secret; a
    file that is not a valid secret (short, or not a 32-byte key) stops start-up rather than being used.
    """
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name.lower()
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return _checked_stored_secret(path, name, stored)
        log.warning("%s is empty: writing a new %s", path, name)
        return _write_secret(path, secrets.token_urlsafe(32), replace=True)
    return _checked_stored_secret(path, name, _write_secret(path, secrets.token_urlsafe(32), replace=False))


def _checked_stored_secret(path: Path, name: str, value: str) -> str:
    if name == "ENCRYPTION_KEY":
        try:
            decode_key(value)
        except ValueError:
            raise SettingsError(
                f"invalid setting {name}: {path} does not hold a 32-byte URL-safe base64 key; restore it from a "
                f"backup, or set {name}"
            ) from None
    elif len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(
            f"invalid setting {name}: {path} holds {len(value)} characters, fewer than {MIN_SECRET_LENGTH}; "
            f"delete it to generate a new one, or set {name}"
        )
    return value


def _write_secret(path: Path, value: str, *, replace: bool) -> str:
    """Write `value` atomically: a private temp file, fsync, then link (first start) or rename (replacing an empty
    file) into place, then fsync the folder. Readers see no file or the whole value, never a partial one. If
    another process created the file first, its value wins and is returned."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
            value = path.read_text().strip()  # a concurrent replacement may have landed last: use what is stored
        else:
            try:
                os.link(temp, path)  # unlike rename, fails if the file exists: two first starts agree on one value
            except FileExistsError:
                return path.read_text().strip()
        _fsync_folder(path.parent)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return value


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
