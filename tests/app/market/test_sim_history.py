"""Start-up history: a shape generated once per generator state is reused, stamped with each call's times."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from app.market import sim_history
from app.market.intervals import bucket_start, interval_ms
from app.market.models import Interval
from app.market.symbols import simulated_rules

RULES = simulated_rules(["BTCUSDT"])["BTCUSDT"]
END = 1_700_000_123_456  # inside a minute, an hour, a day and a week: every live candle is partial


def generate(seed: str, interval: Interval, end_ms: int, count: int = 200) -> tuple[list[object], object]:
    rng = random.Random(seed)
    candles = sim_history.history_candles(
        rng, RULES, interval, count=count, end_ms=end_ms, end_price=65_000.5, daily_vol=0.03, qty_per_minute=1.7
    )
    return list(candles), rng.getstate()


@pytest.fixture(autouse=True)
def _shapes_kept() -> Iterator[None]:
    kept = sim_history._SHAPES_KEPT
    sim_history.keep_shapes(100)
    yield
    sim_history.keep_shapes(kept)


@pytest.mark.parametrize("interval", list(Interval))
def test_a_reused_shape_gives_what_generating_anew_gives_at_another_time(interval: Interval) -> None:
    later = END + 7 * interval_ms(interval) + 12_345
    generate("s:BTCUSDT:history", interval, END)  # keeps the shape
    reused, reused_state = generate("s:BTCUSDT:history", interval, later)
    sim_history._SHAPES.clear()
    fresh, fresh_state = generate("s:BTCUSDT:history", interval, later)

    assert reused == fresh  # times, prices and the live candle's partial volume
    assert reused_state == fresh_state  # the generator is left where generating leaves it
    assert reused[-1].t == bucket_start(later, interval)  # type: ignore[attr-defined]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per shape generated."""
    generated: list[int] = []
    generate_shape = sim_history._history_shape

    def counted(*args: object) -> object:
        generated.append(1)
        return generate_shape(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sim_history, "_history_shape", counted)
    return generated


def test_the_shape_is_generated_once_per_generator_state(calls: list[int]) -> None:
    first, _ = generate("a", Interval.H1, END)
    generate("a", Interval.H1, END + 60_000)
    assert len(calls) == 1
    other, _ = generate("b", Interval.H1, END)  # another seed: its own history
    assert len(calls) == 2
    assert other != first


def test_the_kept_shapes_are_bounded() -> None:
    sim_history.keep_shapes(3)
    for n in range(10):
        generate(f"seed {n}", Interval.D1, END, count=20)
        assert len(sim_history._SHAPES) <= 3


def test_with_none_kept_each_call_generates_the_same_history_anew(calls: list[int]) -> None:
    sim_history.keep_shapes(0)  # a server's setting: it builds one market
    first, first_state = generate("a", Interval.H1, END)
    second, second_state = generate("a", Interval.H1, END)
    assert len(calls) == 2 and not sim_history._SHAPES
    assert first == second and first_state == second_state


def test_no_candles_asked_none_given() -> None:
    candles, _ = generate("a", Interval.M5, END, count=0)
    assert candles == []
