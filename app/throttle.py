"""Attempt throttling with bounded memory: login (per email and client address, and per address) and registration.

The login rule (docs/security.md):
- a client address gets at most `pair_limit` (5) failed logins for one email within `window` (15 min); then 429
  `TOO_MANY_ATTEMPTS` for that email from that address until the oldest of them is older than the window. A
  successful login from that address clears its count for the email.
- a client address gets at most `address_limit` (20) failed logins across all emails within the window; then every
  login from that address gets 429 (argon2 costs 64 MiB and tens of ms per try: a flood is a denial of service).
- one email gets at most `email_limit` (50) failed logins from all addresses together within the window (a guessing
  botnet); beyond that only addresses that logged in to that email successfully within `known_for` (30 days) may
  still try, each under its own per-address limits above.
- an attempt counts as a failure from the moment it starts, before the password hash is awaited, and is taken back
  only when it succeeds: 40 concurrent wrong passwords get at most 5 answers of 401, the rest 429.
- so a stranger cannot keep a real user locked out: the lock-outs are per address, and the email-wide one never
  applies to the addresses the user already logs in from (a stranger behind the user's own address, e.g. the same
  NAT, can lock that address out for a window at a time; the address limit stops them there too).

Every table holds at most `capacity` keys; beyond that the least recently used key is forgotten (an attacker who
sprays that many keys only resets counts, never grows memory), and each key keeps at most `limit` timestamps.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import Throttled

LOGIN_WINDOW = 15 * 60.0
PAIR_LIMIT = 5
ADDRESS_LIMIT = 20
EMAIL_LIMIT = 50
KNOWN_FOR = 30 * 24 * 3600.0
DEFAULT_CAPACITY = 50_000


class SlidingWindow:
    """At most `limit` hits per key within `window` seconds, for at most `capacity` keys."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.limit, self.window, self.clock, self.capacity = limit, window, clock, capacity
        self._hits: OrderedDict[str, list[float]] = OrderedDict()

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until `key` may try again, or None when it is under the limit."""
        hits = self._recent(key)
        if len(hits) < self.limit:
            return None
        return max(1, int(hits[0] + self.window - self.clock()) + 1)

    def hit(self, key: str) -> float:
        """Count one hit for `key`; returns its timestamp (what `undo` takes)."""
        hits = self._recent(key)
        stamp = self.clock()
        hits.append(stamp)
        del hits[: -self.limit]  # only the newest `limit` matter for the decision
        self._hits[key] = hits
        self._hits.move_to_end(key)
        while len(self._hits) > self.capacity:
            self._hits.popitem(last=False)
        return stamp

    def undo(self, key: str, stamp: float) -> None:
        """Take back one hit made by `hit` (it turned out not to count)."""
        hits = self._hits.get(key)
        if hits is not None and stamp in hits:
            hits.remove(stamp)
            if not hits:
                del self._hits[key]

    def reset(self, key: str) -> None:
        self._hits.pop(key, None)

    def __len__(self) -> int:
        return len(self._hits)

    def _recent(self, key: str) -> list[float]:
        hits = self._hits.get(key)
        if hits is None:
            return []
        horizon = self.clock() - self.window
        recent = [stamp for stamp in hits if stamp > horizon]
        if len(recent) != len(hits):
            if recent:
                self._hits[key] = recent
            else:
                del self._hits[key]
        return recent


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login in progress, already counted as a failure; `LoginThrottle.succeeded` takes it back."""

    pair: str
    address: str
    email: str
    stamp: float


class LoginThrottle:
    """The login rule of this module's docstring."""

    def __init__(
        self,
        *,
        pair_limit: int = PAIR_LIMIT,
        address_limit: int = ADDRESS_LIMIT,
        email_limit: int = EMAIL_LIMIT,
        window: float = LOGIN_WINDOW,
        known_for: float = KNOWN_FOR,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.clock, self.known_for, self.capacity = clock, known_for, capacity
        self.pairs = SlidingWindow(pair_limit, window, clock=clock, capacity=capacity)
        self.addresses = SlidingWindow(address_limit, window, clock=clock, capacity=capacity)
        self.emails = SlidingWindow(email_limit, window, clock=clock, capacity=capacity)
        self._known: OrderedDict[str, float] = OrderedDict()  # pair -> until when its address is known-good

    def begin(self, email: str, address: str) -> LoginAttempt:
        """Raise Throttled (429) if a limit of the rule applies; otherwise count the attempt as a failure right away
        (before any await) and return it."""
        pair = f"{address} {email}"
        checks = [self.pairs.retry_after(pair), self.addresses.retry_after(address)]
        if not self._is_known(pair):
            checks.append(self.emails.retry_after(email))
        waits = [wait for wait in checks if wait is not None]
        if waits:
            raise Throttled(
                "Too many failed login attempts; try again later.", retry_after=max(waits), code="TOO_MANY_ATTEMPTS"
            )
        stamp = self.pairs.hit(pair)
        self.addresses.hit(address)
        self.emails.hit(email)
        return LoginAttempt(pair, address, email, stamp)

    def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: clear the pair's failures, take this attempt back from the address and the
        email, and remember the address as one this email logs in from."""
        self.pairs.reset(attempt.pair)
        self.addresses.undo(attempt.address, attempt.stamp)
        self.emails.undo(attempt.email, attempt.stamp)
        self._known[attempt.pair] = self.clock() + self.known_for
        self._known.move_to_end(attempt.pair)
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)

    def _is_known(self, pair: str) -> bool:
        until = self._known.get(pair)
        if until is not None and until < self.clock():
            del self._known[pair]
            return False
        return until is not None


class RegisterThrottle:
    """At most `limit` registration attempts per client address per hour; then 429 `TOO_MANY_REGISTRATIONS`."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = SlidingWindow(limit, 3600.0, clock=clock)

    def count(self, address: str) -> None:
        wait = self.window.retry_after(address)
        if wait is not None:
            raise Throttled(
                "Too many sign-ups from this address; try again later.",
                retry_after=wait,
                code="TOO_MANY_REGISTRATIONS",
            )
        self.window.hit(address)


class RequestRate:
    """A token bucket per key: `rate` requests per second on average, bursts of up to `burst`; at most `capacity`
    keys (the least recently used is forgotten: it only gets a full bucket back). `take` answers how many seconds to
    wait, or None when the request may go now."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.capacity, self._clock = rate, burst, capacity, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float | None:
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = None if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1 if wait is None else tokens, now)
        if len(self._buckets) > self.capacity:
            self._buckets.popitem(last=False)
        return wait
