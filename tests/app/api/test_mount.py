"""Mounting the API on an app that is started again and again (the UI tests start main.py once per test)."""

from __future__ import annotations

from fastapi import FastAPI

from app.api import mount_api


def test_mounting_the_api_leaves_the_apps_lifespan_as_it_was() -> None:
    app = FastAPI()
    lifespan = app.router.lifespan_context
    mount_api(app)
    assert app.router.lifespan_context is lifespan  # no wrapper per router, so no pile-up across starts
    assert "/health" in app.openapi()["paths"]
