"""Display formatting shared by the trading widgets (the wire form stays `app.domain.fmt`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation


def places(step: Decimal) -> int:
    """Decimal places of a tick or step size (0.01 -> 2, 1 -> 0)."""
    exponent = step.normalize().as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


def on_step(value: Decimal | str | None, step: Decimal) -> str:
    """`value` with exactly as many decimals as the tick/step size, thousands separated; '—' for nothing."""
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(value)
    except InvalidOperation:
        return str(value)
    return f"{number:,.{places(step)}f}"


def compact(value: Decimal | None) -> str:
    """Large amounts shortened for headers: 1234567 -> 1.23M."""
    if value is None:
        return "—"
    for size, suffix in ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "K")):
        if abs(value) >= size:
            return f"{value / size:,.2f}{suffix}"
    return f"{value:,.2f}"


def clock(ts_ms: int | None) -> str:
    """HH:MM:SS (UTC) of a millisecond timestamp."""
    if not ts_ms:
        return ""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%H:%M:%S")


def stamp(ts_ms: int | None) -> str:
    """YYYY-MM-DD HH:MM:SS (UTC) of a millisecond timestamp."""
    if not ts_ms:
        return ""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
