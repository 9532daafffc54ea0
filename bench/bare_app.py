"""Bare FastAPI baseline for bench/order_pipeline.py: what one small JSON POST costs on this machine, today.

    .venv/bin/python bench/bare_app.py [--port 8123]   # or PORT=8123

The order bench's route, `POST /echo`: FastAPI parses a JSON body shaped like an order (`OrderCreate`'s fields)
into a pydantic model and returns a small JSON object with status 202 -- the same request/response shape as
`POST /api/trading/orders`, without authentication, middleware, database or execution. It is served by uvicorn in
a single process with the settings NiceGUI's `ui.run` uses for the real app (nicegui/ui_run.py builds a
`uvicorn.Config` with `log_level=uvicorn_logging_level` ("warning" in main.py), `ws="wsproto"`, one worker, and
uvicorn's defaults otherwise: `loop="auto"` -> uvloop and `http="auto"` -> httptools when installed, as they are
here). The bench prints the real app's orders/s as a ratio of this app's req/s under the same load generator, so
read the ratio, not the absolute figures. `GET /balances` is bench/reads.py's baseline for the hot reads.
"""

from __future__ import annotations

import argparse
import itertools
import os

import uvicorn
from fastapi import FastAPI, status
from pydantic import BaseModel, Field

app = FastAPI()
_ids = itertools.count(1)


class EchoBody(BaseModel):
    """The order body's fields (app/api/schemas.py OrderCreate), money as strings."""

    symbol: str = Field(max_length=20)
    side: str = Field(max_length=8)
    type: str = Field(max_length=24)
    quantity: str | None = None
    quote_quantity: str | None = None
    price: str | None = None
    stop_price: str | None = None
    time_in_force: str | None = Field(default=None, max_length=8)
    account_id: str | None = Field(default=None, max_length=40)
    client_order_id: str | None = Field(default=None, max_length=64)


class EchoOut(BaseModel):
    id: int
    symbol: str
    side: str
    type: str
    quantity: str | None
    status: str


@app.post("/echo", status_code=status.HTTP_202_ACCEPTED)
async def echo(body: EchoBody) -> EchoOut:
    return EchoOut(
        id=next(_ids), symbol=body.symbol, side=body.side, type=body.type, quantity=body.quantity, status="PENDING"
    )


class BalanceOut(BaseModel):
    asset: str
    free: str
    locked: str


@app.get("/balances")
async def balances() -> list[BalanceOut]:
    """bench/reads.py's baseline: a small JSON list through a response model, shaped like GET /api/trading/balances."""
    return [
        BalanceOut(asset="BTC", free="0.000999", locked="0"),
        BalanceOut(asset="USDT", free="99996906.9", locked="3003"),
    ]


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def config(host: str, port: int) -> uvicorn.Config:
    """The uvicorn settings of nicegui.ui_run.run for main.py (reload=False, one worker)."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", ws="wsproto", loop="auto", http="auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8123")))
    args = parser.parse_args()
    uvicorn.Server(config(args.host, args.port)).run()


if __name__ == "__main__":
    main()
