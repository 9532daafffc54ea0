"""A caller's client order id: 1-32 characters of its alphabet, and never the form of the ids the server makes."""

from __future__ import annotations

import pytest

from app.client_order_ids import check_client_order_id, refuse_made_client_order_id
from app.errors import ValidationFailed
from app.ids import new_id, venue_client_order_id


@pytest.mark.parametrize("value", [None, "a", "bot-1_A", "x" * 32, "tw" + new_id().lower()])
def test_a_client_order_id_of_the_alphabet_is_taken_as_it_is(value: str | None) -> None:
    assert check_client_order_id(value) == value


@pytest.mark.parametrize("value", ["", "x" * 33, "has spaces", "é", 5, ["a"]])
def test_anything_else_is_422_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_client_order_id(value)
    assert (refused.value.code, refused.value.field) == ("VALIDATION_ERROR", "client_order_id")


def test_the_form_the_server_makes_is_reserved() -> None:
    with pytest.raises(ValidationFailed) as refused:
        refuse_made_client_order_id(venue_client_order_id(new_id()))
    assert (refused.value.code, refused.value.field) == ("CLIENT_ORDER_ID_RESERVED", "client_order_id")
    refuse_made_client_order_id("tw-" + new_id()[:25])  # one character off: a caller's to choose
    refuse_made_client_order_id("bot-1")
