"""/settings: adding a paper account with a label, resetting one paper account without touching the other,
renaming it."""

from __future__ import annotations

from decimal import Decimal

from nicegui.testing import User

from tests.components.helpers import register_in_browser, services, user_id_of


async def held(user_id: str, account_id: str) -> dict[str, Decimal]:
    """The account's non-zero free balances."""
    return {b.asset: b.free for b in await services().accounts.balances(user_id, account_id) if b.free}


async def test_add_a_paper_account_then_reset_only_that_one(user: User) -> None:
    await register_in_browser(user)
    user_id = user_id_of(user)
    await user.open("/settings")
    user.find(marker="reset-usdt").clear().type("777")
    user.find(marker="paper-label").type("Strategy A")
    user.find(marker="add-paper").click()
    await user.should_see("Paper account added.", retries=30)
    await user.open("/settings")
    await user.should_see(marker="rename", retries=30)
    default, added = await services().accounts.list_for_user(user_id)
    assert added.label == "Strategy A" and added.venue == "paper"
    assert await held(user_id, added.id) == {"USDT": Decimal(777)}

    user.find(marker="reset-usdt").clear().type("5")
    user.find(marker=f"reset-{added.id}").click()
    user.find(marker=f"reset-confirm-{added.id}").click()
    await user.should_see("Paper account reset: 5 USDT (Strategy A)", retries=30)
    assert await held(user_id, added.id) == {"USDT": Decimal(5)}
    assert await held(user_id, default.id) == {"USDT": Decimal(10000)}

    user.find(marker=f"rename-{added.id}").click()
    user.find(marker=f"rename-label-{added.id}").clear().type("Momentum")
    user.find(marker=f"rename-confirm-{added.id}").click()
    await user.should_see("Account renamed.", retries=30)
    assert [a.label for a in await services().accounts.list_for_user(user_id)] == ["Paper", "Momentum"]


async def test_an_invalid_label_is_explained(user: User) -> None:
    await register_in_browser(user)
    await user.open("/settings")
    user.find(marker="add-paper").click()
    await user.should_see("label must be 1 to 64 printable characters", retries=30)
