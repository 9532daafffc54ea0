"""/api/accounts: where orders go."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import Field

from app.accounts import AccountView
from app.api.deps import CurrentUser, ServicesDep, TradingUser
from app.api.schemas import (
    ERROR_RESPONSES,
    AccountCreate,
    AccountPublic,
    AccountRename,
    PaperAccountCreate,
    ResetRequest,
    TradingStateChanged,
    TradingStateUpdate,
)
from app.trading_state import TradingStates

router = APIRouter(prefix="/api/accounts", tags=["accounts"], responses=ERROR_RESPONSES)


def account_public(view: AccountView, states: TradingStates) -> AccountPublic:
    """The account as users see it; its trading state is the kill switch's memory (the authority)."""
    return AccountPublic(
        trading_state=states.state(view.id).value,
        id=view.id,
        venue=view.venue,
        label=view.label,
        created_at=view.created_at,
        api_key_hint=view.api_key_hint,
        needs_new_key=view.needs_new_key,
    )


@router.get("")
async def list_accounts(user: CurrentUser, services: ServicesDep) -> list[AccountPublic]:
    """The caller's accounts, paper first. Secrets are never returned; `api_key_hint` shows 4+4 characters."""
    return [account_public(view, services.trading.states) for view in await services.accounts.list_for_user(user.id)]


_ACCOUNT_LINKS = {
    "DeleteAccount": {
        "operationId": "delete_account_api_accounts__account_id__delete",
        "parameters": {"account_id": "$response.body#/id"},
        "description": "Delete the account just added",
    },
}


NewAccount = Annotated[AccountCreate | PaperAccountCreate, Field(discriminator="venue")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"description": "Stored (a testnet key: checked with the exchange first)", "links": _ACCOUNT_LINKS}
    },
)
async def add_account(body: NewAccount, user: TradingUser, services: ServicesDep) -> AccountPublic:
    """`venue: "paper"`: another paper account with a label and optional starting balances (at most 10 per user:
    409 TOO_MANY_PAPER_ACCOUNTS). `venue: "binance-testnet"`: a testnet key, checked with a signed account call
    first: a key the exchange refuses gives 422 EXCHANGE_REJECTED_KEY with the exchange's message and stores
    nothing. Stored AES-GCM sealed."""
    if isinstance(body, PaperAccountCreate):
        balances = services.portfolio.starting_balances(body.balances)
        view = await services.accounts.add_paper_account(user.id, body.label, balances)
        return account_public(view, services.trading.states)
    view = await services.accounts.add_binance_account(
        user.id, body.api_key, body.api_secret.get_secret_value(), body.label
    )
    return account_public(view, services.trading.states)


@router.patch("/{account_id}")
async def rename_account(
    account_id: str, body: AccountRename, user: TradingUser, services: ServicesDep
) -> AccountPublic:
    """Give one of the caller's accounts a new label."""
    view = await services.accounts.rename_account(user.id, account_id, body.label)
    return account_public(view, services.trading.states)


@router.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_account(account_id: str, user: TradingUser, services: ServicesDep) -> Response:
    """Delete one of the caller's accounts: 409 while it has open orders, or for the default paper account."""
    await services.accounts.delete_account(user.id, account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{account_id}/reset")
async def reset_paper_account(
    account_id: str, user: TradingUser, services: ServicesDep, body: ResetRequest | None = None
) -> AccountPublic:
    """Paper only: cancel open orders, set balances (default PAPER_BALANCES), positions from zero."""
    await services.portfolio.reset_paper(user.id, account_id, body.balances if body else None)
    account = await services.accounts.resolve(user.id, account_id)
    return account_public(AccountView.of(account), services.trading.states)


@router.put("/{account_id}/trading-state")
async def set_trading_state(
    account_id: str, body: TradingStateUpdate, user: TradingUser, services: ServicesDep
) -> TradingStateChanged:
    """The kill switch. HALTED refuses new orders (409 TRADING_HALTED) and cancels every open order of the
    account; REDUCE_ONLY refuses orders that would open or grow a position (409 REDUCE_ONLY); ACTIVE lifts both.
    Every change is a TRADING_STATE event on /ws."""
    return TradingStateChanged(**await services.trading.change(user.id, account_id, body.state))
