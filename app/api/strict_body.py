"""The base of every request body: unknown fields, wrong types and text with NUL characters are refused."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

NUL = "\x00"


class StrictBody(BaseModel):
    """Request bodies refuse unknown fields, wrong types and text with NUL characters."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="after")
    def _refuse_nul_characters(self) -> Self:
        """PostgreSQL's text cannot hold NUL (`\\u0000` in JSON): a statement carrying one fails, a 500, where
        SQLite would store it. No field has a use for it, so every body refuses it here, naming the field (ctx
        `field`, read by app/api/errors.py), on both databases alike. One pass over the values: cheaper than a
        validator per field on the order path."""
        for name, value in self.__dict__.items():
            if _holds_nul(value):
                raise PydanticCustomError("string_nul", "text must not contain NUL characters", {"field": name})
        return self


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    return False
