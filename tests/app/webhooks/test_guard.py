"""The SSRF guard: schemes, length, allow-list, and addresses after resolution (DNS rebinding included)."""

from __future__ import annotations

import ipaddress

import pytest

from app.webhooks.guard import MAX_URL_LENGTH, HostGuard, HostUnresolved, WebhookRefused, refusal_reason


def resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, _port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


PUBLIC = "93.184.216.34"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, nothing binds it
        ("100.64.0.1", "not public"),  # shared address space (carrier-grade NAT)
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is judged as IPv4
        (PUBLIC, None),
        ("2606:4700::1111", None),
    ],
)
def test_refusal_reasons(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example/x", "url must start with http:// or https://"),
        ("file:///etc/passwd", "url must start with http:// or https://"),
        ("https://user:pw@hooks.example/x", "url must not carry a user name or password"),
        ("https:///x", "url has no host"),
        ("https://hooks.example/a b", "url must not contain whitespace or control characters"),
        ("https://hooks.example:99999/x", "url is not a valid URL"),
        ("https://hooks.example:0/x", "url is not a valid URL"),
        ("http://[::1/x", "url is not a valid URL"),
        ("https://hooks.example/" + "a" * MAX_URL_LENGTH, f"url must be at most {MAX_URL_LENGTH} characters"),
        (42, "url is required"),
    ],
)
async def test_malformed_urls_are_refused(url: object, message: str) -> None:
    guard = HostGuard(resolve=resolver({"hooks.example": [PUBLIC]}))
    with pytest.raises(WebhookRefused) as caught:
        await guard.check(url)
    assert caught.value.message == message and caught.value.field == "url" and caught.value.status == 422


async def test_any_public_host_without_an_allow_list() -> None:
    guard = HostGuard(resolve=resolver({"hooks.example": [PUBLIC]}))
    destination = await guard.check("https://Hooks.Example./in?x=1")
    assert (destination.host, destination.port, destination.address) == ("hooks.example", 443, PUBLIC)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1"])
async def test_a_name_resolving_to_a_private_address_is_refused(address: str) -> None:
    guard = HostGuard(resolve=resolver({"inside.example": [PUBLIC, address]}))  # one bad address is enough
    with pytest.raises(WebhookRefused, match=r"host inside.example resolves to a .* address"):
        await guard.check("http://inside.example/")


async def test_ip_literals_are_checked_too() -> None:
    guard = HostGuard()  # the real resolver: an IP literal resolves to itself, no DNS
    with pytest.raises(WebhookRefused, match="loopback"):
        await guard.check("http://127.0.0.1:8080/x")
    with pytest.raises(WebhookRefused, match="private"):
        await guard.check("http://[::ffff:10.0.0.1]/x")
    assert (await guard.check(f"http://{PUBLIC}/x")).address == PUBLIC


async def test_the_allow_list_admits_only_its_hosts_even_private_ones() -> None:
    guard = HostGuard(["127.0.0.1", "hooks.internal"], resolve=resolver({"hooks.internal": ["10.0.0.5"]}))
    assert (await guard.check("http://127.0.0.1:9000/x")).address == "127.0.0.1"
    assert (await guard.check("http://hooks.internal/x")).address == "10.0.0.5"
    with pytest.raises(WebhookRefused, match=r"host hooks.example is not allowed here \(WEBHOOK_ALLOWED_HOSTS\)"):
        await guard.check("https://hooks.example/x")
    with pytest.raises(WebhookRefused, match="not allowed"):
        await guard.check("http://localhost:9000/x")  # names are matched exactly, not by what they resolve to


async def test_a_rebinding_name_is_refused_when_it_turns_private() -> None:
    answers = {"rebind.example": [PUBLIC]}
    guard = HostGuard(resolve=resolver(answers))
    assert (await guard.check("http://rebind.example/x")).address == PUBLIC
    answers["rebind.example"] = ["127.0.0.1"]
    with pytest.raises(WebhookRefused, match="loopback"):
        await guard.check("http://rebind.example/x")


async def test_an_unresolvable_name_is_refused() -> None:
    guard = HostGuard(resolve=resolver({}))
    with pytest.raises(HostUnresolved, match=r"host nowhere\.example could not be resolved"):
        await guard.check("https://nowhere.example/x")
