"""Test-wide set-up: one database per test session (SQLite by default, PostgreSQL with TW_TEST_DB=postgres),
migrated once, emptied after every test that used it. Environment variables point main.py (run by NiceGUI's
`user` fixture) at the same database."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fastapi.dependencies.models as fastapi_dependencies
import psycopg
import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from app import auth, native, orders
from app.market import sim_history
from storage.db import create_db_engine
from storage.migrate import upgrade_to_head

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKEND = os.environ.get("TW_TEST_DB", "sqlite")
_DATA_DIR = Path(tempfile.mkdtemp(prefix="tradewind-test-"))
_PG_NAME = f"tradewind_test_{os.getpid()}"


def _test_database_url() -> str:
    if BACKEND == "postgres":
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{_PG_NAME}"
    if BACKEND != "sqlite":
        raise pytest.UsageError(f"TW_TEST_DB must be sqlite or postgres, not {BACKEND!r}")
    return f"sqlite:///{_DATA_DIR / 'test.db'}"


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND == "postgres":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_PG_NAME}"')
            conn.execute(f'CREATE DATABASE "{_PG_NAME}"')
    url = _test_database_url()
    os.environ.update(
        DATABASE_URL=url,
        DATA_DIR=str(_DATA_DIR),
        MARKET_FEED_ENABLED="false",
        NICEGUI_STORAGE_PATH=str(_DATA_DIR / "nicegui"),
        # Never the internet: a Binance venue a test forgets to point at the fake gets "connection refused".
        BINANCE_TESTNET_URL="http://127.0.0.1:9",
        BINANCE_TESTNET_STREAM_URL="ws://127.0.0.1:9",
        BINANCE_TESTNET_WS_API_URL="ws://127.0.0.1:9",
    )
    engine = create_db_engine(url)
    upgrade_to_head(engine)
    engine.dispose()
    _cheap_password_hashing()
    sim_history.keep_shapes(100)  # every test builds a market with the same start-up history: generate it once


def _cheap_password_hashing() -> None:
    """argon2 with the least work in this process (1 MiB, 1 pass, 1 lane), as Django's test settings use a fast
    hasher: at full strength every registration and login cost ~0.1 s, over a thousand times a run. Same code path
    and scheme; the full strength is asserted on `new_password_context()` (tests/app/test_auth.py), and apps the
    end-to-end tests start as processes hash at full strength."""
    auth.password_context.update(argon2__memory_cost=1024, argon2__rounds=1, argon2__parallelism=1)
    auth._DUMMY_HASH = auth.password_context.hash("tradewind-dummy-password")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the native build (app/native.py) a compiled class's methods cannot be replaced: tests that do so run in
    the suite's Python pass only."""
    if not native.is_native(orders):
        return
    skip = pytest.mark.skip(reason="replaces a method of a compiled class; runs in the Python pass (NATIVE_CORE=off)")
    for item in items:
        if item.get_closest_marker("python_only"):
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    if BACKEND == "postgres":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{_PG_NAME}" WITH (FORCE)')


def empty_all_tables(url: str) -> None:
    engine = create_db_engine(url)
    with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))
    engine.dispose()


@pytest.fixture
def database_url() -> Iterator[str]:
    """The session's migrated test database; emptied after the test."""
    url = os.environ["DATABASE_URL"]
    yield url
    empty_all_tables(url)


@pytest.fixture
def data_dir() -> Path:
    return _DATA_DIR


@pytest.fixture
async def services(database_url: str) -> AsyncIterator[object]:
    """A fully wired service container on the test database (background tasks not started)."""
    from app.config import load_settings
    from app.services import build_services

    built = build_services(load_settings(), migrate=False)
    yield built
    await built.stop()


@pytest.fixture(autouse=True)
def _empty_tables_after_ui_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """UI tests run main.py against the shared database: leave it empty for the next test, and let go of the test's
    app."""
    yield
    if "user" in request.fixturenames or "create_user" in request.fixturenames:
        empty_all_tables(os.environ["DATABASE_URL"])
        _forget_page_functions()


def _forget_page_functions() -> None:
    """FastAPI keeps what it learned about each endpoint function in LRU caches of 4,096 entries keyed by the
    function. Every UI test registers its pages anew (closures over that test's services), so the caches kept every
    earlier test's services alive — the simulated market's candles and all — and each test's garbage collections
    (NiceGUI's fixture runs two) walked a heap that grew by ~25k objects a test. A server registers its pages once."""
    for cached in vars(fastapi_dependencies).values():
        if callable(getattr(cached, "cache_clear", None)):
            cached.cache_clear()
