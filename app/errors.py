"""One exception hierarchy for the services; the API maps it to HTTP in one place (app/api/errors.py).

TradewindError                      code, message, field
├── ValidationFailed        422     bad input that changes nothing
├── NotAuthenticated        401     missing/invalid/expired token, bad credentials
├── Forbidden               403     authenticated but not allowed
├── NotFound                404     unknown, or not owned by the caller (never reveals which)
├── Conflict                409     the object's state forbids the request
├── Throttled               429     too many attempts; carries retry_after seconds
├── Unavailable             503     the database did not answer (after retries): try again later
└── VenueError                      raised by venues, never reaches the API as a 5xx
    ├── VenueRejected               a definite refusal: the order becomes REJECTED
    │   └── VenueKeyRejected        the API key itself is refused: the account needs a new key
    ├── VenueUnavailable            timeout / 5xx / dropped connection: outcome unknown, resolve later
    └── VenueThrottled              429/418: back off for retry_after seconds
"""

from __future__ import annotations


class TradewindError(Exception):
    """Base of every error the services raise on purpose."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ValidationFailed(TradewindError):
    status = 422
    code = "VALIDATION_ERROR"


class NotAuthenticated(TradewindError):
    status = 401
    code = "NOT_AUTHENTICATED"


class Forbidden(TradewindError):
    status = 403
    code = "FORBIDDEN"


class NotFound(TradewindError):
    status = 404
    code = "NOT_FOUND"


class Conflict(TradewindError):
    status = 409
    code = "CONFLICT"


class Throttled(TradewindError):
    status = 429
    code = "THROTTLED"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(TradewindError):
    status = 503
    code = "DATABASE_UNAVAILABLE"


class VenueError(TradewindError):
    """A venue call failed; the execution engine decides what it means for the order."""

    status = 502
    code = "VENUE_ERROR"


class VenueRejected(VenueError):
    code = "VENUE_REJECTED"


class VenueKeyRejected(VenueRejected):
    """The venue refuses the account's API key (revoked, wrong secret, no permission): retrying cannot help."""

    code = "VENUE_KEY_REJECTED"


class VenueUnavailable(VenueError):
    code = "VENUE_UNAVAILABLE"


class VenueThrottled(VenueError):
    code = "VENUE_THROTTLED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
