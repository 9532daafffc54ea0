"""The one place where ccxt/Binance failures become app/errors.py venue errors.

| Binance answer                                              | raised                                   |
|-------------------------------------------------------------|------------------------------------------|
| HTTP 429 / 418 (-1003, -1015)                               | VenueThrottled(retry_after=Retry-After)  |
| -1021 timestamp outside recvWindow                          | time sync: resync and resend (caller)    |
| -2014 / -2015 / -1022 / -2008 key or signature refused      | VenueRejected(exchange message)          |
| any other Binance error body with a 4xx status (-2010,      | VenueRejected(exchange message)          |
|   -1013 filter failure, -1121 bad symbol, -2011/-2013 ...)  |                                          |
| 5xx, timeout, dropped or refused connection, non-JSON body  | VenueUnavailable (outcome unknown)       |

Secret hygiene: ccxt's exception text carries the full request URL (query string, `signature=`). Callers raise the
translated error `from None` and log only `safe_message(exc)`; no message built here contains ccxt's text.

The HTTP status and Binance's {"code", "msg"} are attached to ccxt's exception by the client's `handle_errors`
hook (client.py), so the decision rests on what the exchange said, not on ccxt's class names (which differ between
the real testnet host and a local fake, and turn -2015 into DDoSProtection after a first successful call).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import ccxt

from app.errors import VenueError, VenueKeyRejected, VenueRejected, VenueThrottled, VenueUnavailable

AUTH_CODES = frozenset({-2014, -2015, -1022, -2008})
TIME_SYNC_CODE = -1021
ORDER_NOT_FOUND_CODES = frozenset({-2011, -2013})
ORDER_NOT_FOUND = "VENUE_ORDER_NOT_FOUND"
BANNED_DEFAULT_RETRY_AFTER = 60.0  # 418 without a Retry-After header
THROTTLED_DEFAULT_RETRY_AFTER = 10.0  # 429 without a Retry-After header

# Attribute names carried by annotated ccxt exceptions.
HTTP_STATUS = "tw_http_status"
BINANCE_CODE = "tw_binance_code"
BINANCE_MSG = "tw_binance_msg"
BINANCE_DATA = "tw_binance_data"  # the `data` of an error body (order/cancelReplace's per-half results)
RETRY_AFTER = "tw_retry_after"


def annotate(exc: BaseException, status: object, headers: object, response: object) -> None:
    """Attach the HTTP status, Retry-After and Binance's error body to a ccxt exception (first writer wins)."""
    if getattr(exc, HTTP_STATUS, None) is None and isinstance(status, int) and status >= 100:
        setattr(exc, HTTP_STATUS, status)
    if isinstance(headers, dict):
        for name, value in headers.items():
            if str(name).lower() == "retry-after":
                with contextlib.suppress(TypeError, ValueError):
                    setattr(exc, RETRY_AFTER, float(value))
    if isinstance(response, dict) and getattr(exc, BINANCE_CODE, None) is None:
        code = response.get("code")
        if isinstance(code, int) and code not in (0, 200):
            setattr(exc, BINANCE_CODE, code)
            setattr(exc, BINANCE_MSG, str(response.get("msg") or ""))
            if isinstance(response.get("data"), dict):
                setattr(exc, BINANCE_DATA, response["data"])


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a failed call means: the error to raise, and whether resyncing the clock and resending may help."""

    error: VenueError
    time_sync: bool = False


def translate(exc: Exception) -> Outcome:
    """Map one ccxt exception onto the venue error hierarchy (see the table above)."""
    status: int | None = getattr(exc, HTTP_STATUS, None)
    code: int | None = getattr(exc, BINANCE_CODE, None)
    msg: str = getattr(exc, BINANCE_MSG, None) or ""
    if code in AUTH_CODES:
        return Outcome(VenueKeyRejected(msg or "Binance refused the API key."))
    if status in (418, 429) or isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        retry_after: float | None = getattr(exc, RETRY_AFTER, None)
        if retry_after is None:
            retry_after = BANNED_DEFAULT_RETRY_AFTER if status == 418 else THROTTLED_DEFAULT_RETRY_AFTER
        what = "banned this IP" if status == 418 else "rate-limited this client"
        message = f"Binance {what}; retry in {retry_after:g}s. {msg}".strip()
        return Outcome(VenueThrottled(message, retry_after=retry_after))
    if code == TIME_SYNC_CODE or isinstance(exc, ccxt.InvalidNonce):
        return Outcome(VenueRejected(msg or "Request timestamp outside Binance's recvWindow."), time_sync=True)
    if code is not None and status is not None and 400 <= status < 500:
        if code in ORDER_NOT_FOUND_CODES:
            return Outcome(VenueRejected(msg, code=ORDER_NOT_FOUND))
        return Outcome(VenueRejected(msg or f"Binance refused the request (code {code})."))
    if isinstance(exc, ccxt.OperationFailed | ccxt.ExchangeClosedByUser) or status is not None or _is_transport(exc):
        return Outcome(VenueUnavailable(_unavailable_message(exc, status, msg)))
    if isinstance(exc, ccxt.BaseError):
        # Raised by ccxt before anything was sent (bad arguments, unsupported call): a definite refusal.
        return Outcome(VenueRejected(f"Binance request refused locally: {type(exc).__name__}"))
    return Outcome(VenueUnavailable(_unavailable_message(exc, status, msg)))


def venue_error(exc: BaseException) -> VenueError:
    """The venue error for any failure: VenueErrors as they are, everything else translated (raise it `from None`).
    A timeout of our own (asyncio.timeout around a call) becomes VenueUnavailable."""
    if isinstance(exc, VenueError):
        return exc
    if isinstance(exc, Exception):
        return translate(exc).error
    return VenueUnavailable(f"Binance call interrupted ({type(exc).__name__})")


def safe_message(exc: BaseException) -> str:
    """What may be logged about a failure: our own message, never ccxt's text (it may carry a signed URL)."""
    return venue_error(exc).message


def from_ccxt(exc: BaseException) -> bool:
    """True if `exc` or an exception chained to it is ccxt's: its traceback would print ccxt's text, so log it with
    `safe_message` instead of `log.exception`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ccxt.BaseError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _is_transport(exc: Exception) -> bool:
    # ccxt wraps aiohttp.ClientError as a plain ExchangeError: the request may have gone out.
    cause: Any = exc.__cause__
    return cause is not None and type(cause).__module__.startswith(("aiohttp", "asyncio", "socket", "ssl"))


def _unavailable_message(exc: Exception, status: int | None, msg: str) -> str:
    # ccxt's own text carries the request URL (with its signature); keep only what helps an operator.
    parts = ["Binance did not answer definitively", f"({type(exc).__name__}"]
    if status is not None:
        parts[-1] += f", HTTP {status}"
    parts[-1] += ")"
    if msg:
        parts.append(f": {msg}")
    return " ".join(parts).replace(" :", ":") + "; the request may or may not have taken effect."
