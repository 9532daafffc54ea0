"""/api/accounts: where orders go."""

from __future__ import annotations

from fastapi import APIRouter

from app.accounts import AccountView
from app.api.deps import CurrentUser, ServicesDep
from app.api.schemas import ERROR_RESPONSES, AccountPublic, ResetRequest

router = APIRouter(prefix="/api/accounts", tags=["accounts"], responses=ERROR_RESPONSES)


def account_public(view: AccountView) -> AccountPublic:
    return AccountPublic(
        id=view.id,
        venue=view.venue,
        label=view.label,
        created_at=view.created_at,
        api_key_hint=view.api_key_hint,
    )


@router.get("")
async def list_accounts(user: CurrentUser, services: ServicesDep) -> list[AccountPublic]:
    """The caller's accounts, paper first. Secrets are never returned; `api_key_hint` shows 4+4 characters."""
    return [account_public(view) for view in await services.accounts.list_for_user(user.id)]


@router.post("/{account_id}/reset")
async def reset_paper_account(
    account_id: str, user: CurrentUser, services: ServicesDep, body: ResetRequest | None = None
) -> AccountPublic:
    """Paper only: cancel open orders, set balances (default PAPER_BALANCES), positions from zero."""
    await services.portfolio.reset_paper(user.id, account_id, body.balances if body else None)
    account = await services.accounts.resolve(user.id, account_id)
    return account_public(AccountView.of(account))
