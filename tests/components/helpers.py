"""Shared steps of the UI tests (simulated user)."""

from __future__ import annotations

from typing import Any

from nicegui import ElementFilter, app, ui
from nicegui.testing import User

from tests.factories import PASSWORD, unique_email


async def register_in_browser(user: User, email: str | None = None) -> str:
    """Register through the page; lands on the trade page. Returns the email."""
    email = email or unique_email()
    await user.open("/register")
    user.find(marker="email").type(email)
    user.find(marker="password").type(PASSWORD)
    user.find(marker="submit").click()
    await user.should_see(marker="ticket", retries=30)
    await settle_session(user)
    return email


async def settle_session(user: User) -> None:
    """Open the trade page again from the test itself after a log-in.

    A log-in renews the browser's session id (components/session.py) on a page the simulation opened from a
    background task; the simulation runs later event handlers with the request of the last page the *test* opened
    (a browser uses the handler's own page), which would still carry the session id from before the log-in."""
    landed = user.client
    await user.open(f"/trade/{services().market.symbols[0]}")  # not "/": its redirect leaves a client behind
    await user.should_see(marker="ticket", retries=30)
    if landed is not None and landed is not user.client:
        landed.delete()  # the browser left that page


async def log_out(user: User) -> None:
    """Log out the way a person does when typing /logout: the page asks, the button logs out."""
    await user.open("/logout")
    user.find(marker="logout-confirm").click()
    await user.should_see(marker="to-register", retries=30)


def services() -> Any:
    """The running app's service container."""
    return app.state.services


def grid_rows(user: User, marker: str) -> list[dict[str, Any]]:
    """The rows a live grid holds (its server copy is what the browser renders), also while its tab is hidden
    (`user.find` only sees visible elements)."""
    assert user.client is not None
    with user.client:
        grids = list(ElementFilter(kind=ui.aggrid, marker=marker, only_visible=False, local_scope=False))
    assert len(grids) == 1, f"expected one grid marked {marker!r}, found {len(grids)}"
    return list(grids[0].options["rowData"])


def choose(user: User, marker: str, option: str) -> None:
    """Pick an option of a select the way a person does: open it, then click the option's text."""
    user.find(marker=marker).click()
    user.find(option).click()


def element(user: User, marker: str) -> Any:
    """The one element with `marker` (visible or not)."""
    assert user.client is not None
    with user.client:
        found = list(ElementFilter(marker=marker, only_visible=False, local_scope=False))
    assert len(found) == 1, f"expected one element marked {marker!r}, found {len(found)}"
    return found[0]


class OutboxSpy:
    """Records what the page's client sends: full element updates (by element id) and JavaScript calls."""

    def __init__(self, user: User) -> None:
        assert user.client is not None
        outbox = user.client.outbox
        self.updated: list[int] = []
        self.javascript: list[str] = []
        enqueue_update, enqueue_message = outbox.enqueue_update, outbox.enqueue_message

        def spy_update(target: Any) -> None:
            self.updated.append(target.id)
            enqueue_update(target)

        def spy_message(message_type: Any, data: Any, target_id: Any) -> None:
            if message_type == "run_javascript":
                self.javascript.append(str(data["code"]))
            enqueue_message(message_type, data, target_id)

        outbox.enqueue_update = spy_update  # type: ignore[method-assign]
        outbox.enqueue_message = spy_message  # type: ignore[method-assign]

    def calls(self, needle: str) -> list[str]:
        return [code for code in self.javascript if needle in code]


async def wait_for(condition: Any, what: str, attempts: int = 200) -> None:
    """Poll `condition()` until true, yielding to the app between tries (no timing assumptions)."""
    import asyncio

    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def user_id_of(user: User) -> str:
    """The logged-in user's id, from the session storage of the user's current page."""
    assert user.client is not None
    with user.client:
        return str(app.storage.user["user_id"])
