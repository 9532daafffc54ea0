"""/login, /register and /logout (GET: a confirmation; the log-out itself is POST /logout or the button)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nicegui import app, ui

from app.errors import TradewindError
from components import session, theme

if TYPE_CHECKING:
    from app.services import Services


def register(services: Services) -> None:
    @ui.page("/login")
    async def login_page(redirect_to: str = "/") -> None:
        target = session.safe_redirect(redirect_to)
        if await session.current_user(services):
            ui.navigate.to(target)
            return
        address = session.client_address()
        with theme.public_frame("Log in"):
            email, password, error = _credential_fields()

            async def submit() -> None:
                try:
                    user = await services.auth.login(email.value, password.value, address)
                except TradewindError as exc:
                    error.set_text(exc.message)
                    error.set_visibility(True)
                    return
                session.log_in(user, await services.auth.token_version(user.id) or 0, target)

            password.on("keydown.enter", submit)
            ui.button("Log in", on_click=submit).classes("w-full").mark("submit")
            if services.settings.registration == "closed":
                return
            with ui.row().classes("text-sm gap-1"):
                ui.label("New here?")
                ui.link("Create an account", "/register").mark("to-register")

    @ui.page("/register")
    async def register_page() -> None:
        address = session.client_address()
        with theme.public_frame("Create account"):
            if services.settings.registration == "closed":
                ui.label("Sign-up is closed on this server. Ask its operator for an account.").mark("signup-closed")
                ui.link("Log in", "/login").mark("to-login")
                return
            email, password, error = _credential_fields(new=True)

            async def submit() -> None:
                try:
                    user = await services.auth.register(email.value, password.value, address)
                except TradewindError as exc:
                    error.set_text(exc.message)
                    error.set_visibility(True)
                    return
                session.log_in(user, await services.auth.token_version(user.id) or 0, "/")

            password.on("keydown.enter", submit)
            ui.button("Create account", on_click=submit).classes("w-full").mark("submit")
            with ui.row().classes("text-sm gap-1"):
                ui.label("Already registered?")
                ui.link("Log in", "/login").mark("to-login")

    @ui.page("/logout")
    async def logout_page() -> None:
        # A GET (a link, an image on another site) never logs out: it only offers the button.
        if await session.current_user(services) is None:
            ui.navigate.to("/login")
            return
        with theme.public_frame("Log out"):
            ui.label("Log out of Tradewind in this browser?")
            ui.button("Log out", on_click=session.leave).classes("w-full").mark("logout-confirm")

    app.add_api_route("/logout", session.logout_endpoint, methods=["POST"], include_in_schema=False)


def _credential_fields(new: bool = False) -> tuple[ui.input, ui.input, ui.label]:
    email = ui.input("Email").props("type=email autocomplete=email").classes("w-full").mark("email")
    hint = "At least 8 characters" if new else None
    password = (
        ui.input("Password", password=True, password_toggle_button=True)
        .props(f"autocomplete={'new-password' if new else 'current-password'}")
        .classes("w-full")
        .mark("password")
    )
    if hint:
        password.props(f'hint="{hint}"')
    error = ui.label().classes("text-negative text-sm").mark("error")
    error.set_visibility(False)
    return email, password, error
