"""app/immutable.py: read-only to the type checker, a plain slotted dataclass at run time."""

from __future__ import annotations

import dataclasses
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from mypy import api as mypy_api

from app.execution.records import Execution, Report
from app.immutable import immutable
from app.venues.paper_matching import MatchOrder


@immutable
class Point:
    x: Decimal
    label: str = "p"


def test_builds_with_defaults_compares_by_value_and_has_no_instance_dict() -> None:
    point = Point(Decimal("1.5"))
    assert point == Point(Decimal("1.50"), "p")
    assert point != Point(Decimal("1.5"), "q")
    assert point.label == "p"
    assert not hasattr(point, "__dict__")  # slotted
    assert dataclasses.replace(point, label="q") == Point(Decimal("1.5"), "q")


@pytest.mark.parametrize("cls", [Point, MatchOrder, Execution, Report])
def test_is_not_a_frozen_dataclass_at_run_time(cls: type) -> None:
    # The point of the decorator: frozen dataclasses set every field through object.__setattr__ (twice the cost).
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen is False  # type: ignore[attr-defined]


def test_the_type_checker_rejects_assigning_a_field(tmp_path: Path) -> None:
    source = tmp_path / "uses_immutable.py"
    source.write_text(
        textwrap.dedent(
            """
            from app.immutable import immutable

            @immutable
            class Point:
                x: int

            point = Point(1)
            point.x = 2
            """
        )
    )
    out, _, status = mypy_api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(source)])
    assert status == 1, out
    assert 'Property "x" defined in "Point" is read-only' in out
