"""/api/trading: orders, fills, positions, balances, and CSV statements of fills and orders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.deps import CurrentUser, ServicesDep, TradingUser
from app.api.schemas import (
    ERROR_RESPONSES,
    BalancePublic,
    CancelAllResult,
    FillPublic,
    OcoCreate,
    OcoPublic,
    OrderCreate,
    OrderPublic,
    OrderReplace,
    OrderWithFills,
    PositionPublic,
)
from app.domain import fmt
from app.oco import OcoRequest, place_oco
from app.orders import OrderRequest
from app.replacements import ReplaceRequest
from app.statements import Kind

if TYPE_CHECKING:
    from app.services import Services

router = APIRouter(prefix="/api/trading", tags=["trading"], responses=ERROR_RESPONSES)

Limit = Annotated[int, Query(ge=1, le=1000)]
Text = Annotated[str | None, Query(max_length=40)]
From = Annotated[
    str | None, Query(alias="from", max_length=40, description="Epoch ms or ISO-8601; default `to` - 30 days")
]
To = Annotated[str | None, Query(max_length=40, description="Epoch ms or ISO-8601, exclusive; default now")]
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, header line first, oldest row first"}
}

# OpenAPI links: the order a POST answers with can be read and canceled by its id (stateful clients and fuzzers
# chain them). Operation ids are FastAPI's defaults for the routes below.
_ORDER_LINKS = {
    "GetOrder": {
        "operationId": "get_order_api_trading_orders__order_id__get",
        "parameters": {"order_id": "$response.body#/id"},
        "description": "The order just placed, with its fills",
    },
    "CancelOrder": {
        "operationId": "cancel_order_api_trading_orders__order_id__delete",
        "parameters": {"order_id": "$response.body#/id"},
        "description": "Cancel the order just placed",
    },
}


@router.post(
    "/orders",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderPublic,
    responses={
        202: {"description": "Stored as PENDING and queued for execution", "links": _ORDER_LINKS},
        200: {
            "model": OrderPublic,
            "description": "This client_order_id exists already: that order",
            "links": _ORDER_LINKS,
        },
    },
)
async def place_order(body: OrderCreate, user: TradingUser, services: ServicesDep, response: Response) -> Any:
    """Store the order (PENDING) and queue it for execution; 200 with the existing order for a repeated
    client_order_id."""
    submitted = await services.orders.submit(user.id, OrderRequest(**body.model_dump()))
    if not submitted.created:
        response.status_code = status.HTTP_200_OK
        return OrderPublic(**submitted.order)
    # The hot path: the order was serialised once for its event; the same bytes are the answer (a Response is
    # sent as it is, skipping a second validation and serialisation of the same fields).
    assert submitted.json is not None
    return Response(submitted.json, status_code=status.HTTP_202_ACCEPTED, media_type="application/json")


@router.post("/oco", status_code=status.HTTP_202_ACCEPTED)
async def place_oco_order(body: OcoCreate, user: TradingUser, services: ServicesDep) -> OcoPublic:
    """Store both legs of a stand-alone OCO (PENDING) and queue them as one order list."""
    legs = await place_oco(services.orders, user.id, OcoRequest(**body.model_dump()))
    return OcoPublic(oco_group=legs[0]["oco_group"], orders=[OrderPublic(**leg) for leg in legs])


@router.get("/orders")
async def list_orders(
    user: CurrentUser,
    services: ServicesDep,
    status: Literal["open", "closed", "all"] = "all",
    symbol: Text = None,
    account_id: Text = None,
    limit: Limit = 100,
    before: Text = None,
) -> list[OrderPublic]:
    """Newest first; `before=<order id>` pages backwards."""
    rows = await services.orders.list_orders(
        user.id, status=status, symbol=symbol, account_id=account_id, limit=limit, before=before
    )
    return [OrderPublic(**row) for row in rows]


@router.get("/orders/{order_id}")
async def get_order(order_id: str, user: CurrentUser, services: ServicesDep) -> OrderWithFills:
    return OrderWithFills(**await services.orders.get(user.id, order_id))


@router.patch(
    "/orders/{order_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderPublic,
    responses={
        202: {"description": "The replacement, stored as PENDING; the order it replaces ends REPLACED"},
        200: {"model": OrderPublic, "description": "This client_order_id already replaced the order: that one"},
    },
)
async def replace_order(
    order_id: str, body: OrderReplace, user: TradingUser, services: ServicesDep, response: Response
) -> Any:
    """Modify/replace a working order: a new order with the changed fields (its `replaces` is this order's id)
    replaces it at the venue. 409 ORDER_NOT_OPEN for an order that is not working; 422 for a MARKET order."""
    submitted = await services.orders.replace(user.id, order_id, ReplaceRequest(**body.model_dump()))
    if not submitted.created:
        response.status_code = status.HTTP_200_OK
    return OrderPublic(**submitted.order)


@router.delete("/orders/{order_id}", status_code=status.HTTP_202_ACCEPTED)
async def cancel_order(order_id: str, user: TradingUser, services: ServicesDep) -> OrderPublic:
    """Request the cancel; CANCELED follows asynchronously. 409 ORDER_NOT_OPEN for a terminal order."""
    return OrderPublic(**await services.orders.cancel(user.id, order_id))


@router.delete("/orders", status_code=status.HTTP_202_ACCEPTED)
async def cancel_all_orders(
    user: TradingUser, services: ServicesDep, symbol: Text = None, account_id: Text = None
) -> CancelAllResult:
    return CancelAllResult(canceled=await services.orders.cancel_all(user.id, account_id, symbol))


@router.get("/fills")
async def list_fills(
    user: CurrentUser, services: ServicesDep, symbol: Text = None, account_id: Text = None, limit: Limit = 100
) -> list[FillPublic]:
    rows = await services.orders.fills(user.id, account_id=account_id, symbol=symbol, limit=limit)
    return [FillPublic(**row) for row in rows]


@router.get("/positions")
async def list_positions(user: CurrentUser, services: ServicesDep, account_id: Text = None) -> list[PositionPublic]:
    return [PositionPublic(**row) for row in await services.portfolio.positions(user.id, account_id)]


@router.post(
    "/positions/{symbol}/close",
    status_code=status.HTTP_202_ACCEPTED,
    responses={202: {"description": "The closing MARKET SELL, stored as PENDING", "links": _ORDER_LINKS}},
)
async def close_position(
    symbol: Annotated[str, Path(max_length=20)], user: TradingUser, services: ServicesDep, account_id: Text = None
) -> OrderPublic:
    """A MARKET SELL of the position's quantity rounded down to the step. 404 NO_POSITION when flat, 422
    POSITION_TOO_SMALL below the symbol's minimum quantity or order value; the kill switch applies."""
    submitted = await services.closer.close(user.id, symbol, account_id)
    return OrderPublic(**submitted.order)


@router.get("/balances")
async def list_balances(user: CurrentUser, services: ServicesDep, account_id: Text = None) -> list[BalancePublic]:
    rows = await services.portfolio.balances(user.id, account_id)
    return [BalancePublic(asset=row.asset, free=fmt(row.free) or "0", locked=fmt(row.locked) or "0") for row in rows]


@router.get("/fills.csv", response_class=StreamingResponse, responses=_CSV)
async def export_fills(
    user: CurrentUser, services: ServicesDep, start: From = None, to: To = None, account_id: Text = None
) -> StreamingResponse:
    """One account's fills with `from` <= ts < `to` as CSV (fees and fee asset; the API's decimal strings)."""
    return await _export(user.id, services, "fills", account_id, start, to)


@router.get("/orders.csv", response_class=StreamingResponse, responses=_CSV)
async def export_orders(
    user: CurrentUser, services: ServicesDep, start: From = None, to: To = None, account_id: Text = None
) -> StreamingResponse:
    """One account's orders created with `from` <= created_at < `to` as CSV."""
    return await _export(user.id, services, "orders", account_id, start, to)


async def _export(
    user_id: str, services: Services, kind: Kind, account_id: str | None, start: str | None, end: str | None
) -> StreamingResponse:
    # Checked before the response starts: a bad range or too many rows is a 422, never a broken-off stream.
    statement = await services.statements.prepare(user_id, kind, account_id, start, end)
    return StreamingResponse(
        services.statements.stream(statement),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{statement.filename}"'},
    )
