"""/openapi.json is a valid OpenAPI 3.1 document that tells the truth: schemathesis fuzzes every operation of the
running API (the real routes and services, the Binance fake behind testnet accounts) from it, stateful phase
included, and finds no server error, no schema error and no response that breaks the schema.

The app is served by uvicorn on a free loopback port in a thread with its own event loop (the services and the
execution engine live in that loop); schemathesis runs as its CLI in a subprocess against it, bounded by
`--max-examples` per operation and by a time budget.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI

from app.api import mount_api
from app.config import load_settings
from app.services import Services, build_services
from tests.factories import PASSWORD, unique_email
from tests.fakes.binance import DOC_API_KEY, DOC_SECRET, FakeBinance
from tests.fakes.binance.app_venues import point_services_at

# The default run is bounded for a shared 2-core machine: examples, fuzzing and stateful phases with MAX_EXAMPLES
# per operation. TW_FUZZ_FULL=1 adds the coverage phase (boundary values and unexpected methods of every operation,
# several hundred more requests) and more examples; run it after changing a route or a schema. TW_FUZZ_SEED picks
# another seed (the default is fixed, so a run is reproducible).
FULL = os.environ.get("TW_FUZZ_FULL") == "1"
MAX_EXAMPLES = 50 if FULL else 6
PHASES = "examples,coverage,fuzzing,stateful" if FULL else "examples,fuzzing,stateful"
MAX_SECONDS = 600 if FULL else 120  # a safety net only: the run ends after MAX_EXAMPLES per operation
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# What a fuzzer cannot learn from the schema: which symbols this server trades and a key the exchange (the fake)
# accepts. Schemathesis puts these values into generated requests half of the time, so orders and accounts get
# created and the stateful phase can follow the schema's links (POST order -> GET/DELETE order, POST account ->
# DELETE account).
FUZZ_CONFIG = f"""
[dictionaries]
symbols = {{ values = ["BTCUSDT", "ETHUSDT", "btc/usdt"] }}
api_keys = {{ values = ["{DOC_API_KEY}"] }}
api_secrets = {{ values = ["{DOC_SECRET}"] }}

[parameters]
"body.symbol" = {{ dictionary = "symbols", probability = 0.5 }}
"path.symbol" = {{ dictionary = "symbols", probability = 0.5 }}
"body.api_key" = {{ dictionary = "api_keys", probability = 0.5 }}
"body.api_secret" = {{ dictionary = "api_secrets", probability = 0.5 }}
"""


def _app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with FakeBinance.start() as fake:
            point_services_at(services, fake)  # POST /api/accounts checks keys against the fake
            await services.engine.start()
            try:
                yield
            finally:
                await services.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.services = services
    mount_api(app)
    return app


@pytest.fixture
def live_api(database_url: str) -> Iterator[str]:
    """The API served over real HTTP on 127.0.0.1:<free port>; yields its base URL."""
    services = build_services(load_settings(), migrate=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app(services), log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.02)
        assert server.started, "the API server did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def test_openapi_document_is_valid_3_1(live_api: str) -> None:
    document = httpx.get(f"{live_api}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema; raises on any error


def test_method_not_allowed_names_every_method_of_the_path(live_api: str) -> None:
    for path, allowed in (
        ("/api/trading/orders", "DELETE, GET, POST"),
        ("/api/trading/orders/some-id", "DELETE, GET, PATCH"),
        ("/api/accounts", "GET, POST"),
        ("/health", "GET"),
    ):
        response = httpx.request("PUT", f"{live_api}{path}")
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
        assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.timeout(MAX_SECONDS + 30)
def test_fuzzing_finds_no_server_error_and_no_schema_violation(live_api: str, tmp_path: Path) -> None:
    registered = httpx.post(f"{live_api}/auth/register", json={"email": unique_email("fuzz"), "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    token = registered.json()["token"]
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG)
    command = [
        str(SCHEMATHESIS),
        f"--config-file={config}",
        "run",
        f"{live_api}/openapi.json",
        f"--header=Authorization: Bearer {token}",
        f"--max-examples={MAX_EXAMPLES}",
        f"--phases={PHASES}",
        f"--seed={os.environ.get('TW_FUZZ_SEED', '20261202')}",
        "--workers=1",
        "--no-shrink",
        "--generation-database=none",
        "--suppress-health-check=all",
        "--request-timeout=10",
        "--exclude-checks=positive_data_acceptance,use_after_free",
    ]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=MAX_SECONDS, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    if os.environ.get("TW_FUZZ_LOG"):
        Path(os.environ["TW_FUZZ_LOG"]).write_text(output)
    assert result.returncode == 0, output
