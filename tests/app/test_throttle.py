"""The login and sign-up throttles (app/throttle.py) on an injected clock."""

from __future__ import annotations

import pytest

from app.errors import Throttled
from app.throttle import LoginThrottle, RegisterThrottle, RequestRate, SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, email: str, address: str, times: int) -> None:
    for _ in range(times):
        throttle.begin(email, address)  # counted as a failure until `succeeded`


def test_five_failures_for_one_email_from_one_address_then_429_until_the_oldest_ages_out() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    fail(throttle, "a@example.com", "10.0.0.1", 5)
    with pytest.raises(Throttled) as refused:
        throttle.begin("a@example.com", "10.0.0.1")
    assert refused.value.code == "TOO_MANY_ATTEMPTS"
    assert refused.value.retry_after == 15 * 60 + 1
    clock.now += 15 * 60 - 10
    with pytest.raises(Throttled) as later:
        throttle.begin("a@example.com", "10.0.0.1")
    assert later.value.retry_after == 11
    clock.now += 11
    throttle.begin("a@example.com", "10.0.0.1")  # the oldest failure is out of the window


def test_a_stranger_elsewhere_cannot_lock_the_user_out() -> None:
    throttle = LoginThrottle(clock=Clock())
    fail(throttle, "victim@example.com", "198.51.100.66", 5)
    with pytest.raises(Throttled):
        throttle.begin("victim@example.com", "198.51.100.66")
    attempt = throttle.begin("victim@example.com", "192.0.2.10")  # the user's own address still gets to try
    throttle.succeeded(attempt)


def test_success_clears_the_pair_and_takes_the_attempt_back_from_the_address() -> None:
    throttle = LoginThrottle(clock=Clock())
    fail(throttle, "a@example.com", "10.0.0.1", 4)
    throttle.succeeded(throttle.begin("a@example.com", "10.0.0.1"))
    fail(throttle, "a@example.com", "10.0.0.1", 5)  # a fresh count of five
    with pytest.raises(Throttled):
        throttle.begin("a@example.com", "10.0.0.1")
    assert len(throttle.addresses._hits["10.0.0.1"]) == 9  # four + five failures; the success is not among them


def test_one_address_gets_twenty_failures_across_all_emails() -> None:
    throttle = LoginThrottle(clock=Clock())
    for n in range(20):
        fail(throttle, f"user{n}@example.com", "10.0.0.9", 1)
    with pytest.raises(Throttled):
        throttle.begin("someone-else@example.com", "10.0.0.9")
    throttle.begin("someone-else@example.com", "10.0.0.10")  # other addresses are unaffected


def test_tables_stay_bounded_whatever_is_sprayed() -> None:
    window = SlidingWindow(5, 60.0, clock=Clock(), capacity=100)
    for n in range(10_000):
        window.hit(f"key{n}")
    assert len(window) == 100
    for _ in range(50):
        window.hit("one")
    assert len(window._hits["one"]) == 5  # only the newest `limit` stamps are kept


def test_expired_keys_are_forgotten() -> None:
    clock = Clock()
    window = SlidingWindow(2, 60.0, clock=clock)
    window.hit("a")
    clock.now += 61
    assert window.retry_after("a") is None
    assert len(window) == 0


def test_registrations_per_address_per_hour() -> None:
    clock = Clock()
    throttle = RegisterThrottle(3, clock=clock)
    for _ in range(3):
        throttle.count("10.0.0.1")
    with pytest.raises(Throttled) as refused:
        throttle.count("10.0.0.1")
    assert refused.value.code == "TOO_MANY_REGISTRATIONS" and refused.value.retry_after == 3601
    throttle.count("10.0.0.2")
    clock.now += 3600
    throttle.count("10.0.0.1")


def test_many_addresses_guessing_one_email_are_stopped_but_its_known_addresses_are_not() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    throttle.succeeded(throttle.begin("victim@example.com", "192.0.2.10"))  # the user's usual address
    for n in range(10):  # a botnet: 10 addresses x 5 guesses = the email-wide limit of 50
        fail(throttle, "victim@example.com", f"198.51.100.{n}", 5)
    with pytest.raises(Throttled):
        throttle.begin("victim@example.com", "198.51.100.200")  # a new address: refused
    throttle.succeeded(throttle.begin("victim@example.com", "192.0.2.10"))  # the user still logs in
    throttle.begin("other@example.com", "198.51.100.200")  # other emails are unaffected
    clock.now += 31 * 24 * 3600  # known for 30 days only; the guesses have aged out too
    throttle.begin("victim@example.com", "198.51.100.200")


def test_a_request_rate_allows_a_burst_then_the_average_rate() -> None:
    now = [0.0]
    rate = RequestRate(10, 20, clock=lambda: now[0])
    assert all(rate.take("key") is None for _ in range(20))  # the burst
    wait = rate.take("key")
    assert wait == pytest.approx(0.1)  # one token comes back every 1/10 s
    assert rate.take("other") is None  # per key
    now[0] += 0.1
    assert rate.take("key") is None
    assert rate.take("key") is not None


def test_a_request_rate_stays_bounded() -> None:
    rate = RequestRate(1, 1, capacity=100)
    for n in range(1000):
        rate.take(f"key{n}")
    assert len(rate._buckets) == 100
