"""A caller's client order id: the alphabet it may use, and the form it may not take (the server's own)."""

from __future__ import annotations

import re
from typing import Any

from app.errors import ValidationFailed
from storage.models import MADE_CLIENT_ORDER_ID

CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def check_client_order_id(value: Any) -> str | None:
    """A caller's client order id as given, or 422 when it is not 1-32 characters of the allowed alphabet."""
    if value is not None and (not isinstance(value, str) or not CLIENT_ORDER_ID.match(value)):
        raise ValidationFailed(
            "client_order_id must be 1-32 characters of A-Z, a-z, 0-9, _ or -", field="client_order_id"
        )
    return value


def refuse_made_client_order_id(client_order_id: str) -> None:
    """422 for a new order whose client order id has the shape of one Tradewind makes ("tw" + an order id): those
    are unique by construction and kept out of the unique index (storage/models.py), so a caller's copy could give
    two orders of an account one client order id. Sending back one Tradewind made finds that order instead."""
    if MADE_CLIENT_ORDER_ID.fullmatch(client_order_id):
        raise ValidationFailed(
            "client_order_id: 'tw' followed by 26 capital letters and digits is the form of the ids Tradewind makes "
            "for orders sent without one; choose another",
            code="CLIENT_ORDER_ID_RESERVED",
            field="client_order_id",
        )
