"""The SSRF guard: a webhook may point only where the operator allows.

- Only http and https, no user:password@, at most MAX_URL_LENGTH characters.
- WEBHOOK_ALLOWED_HOSTS empty: any host, but every address it resolves to must be public (not private, loopback,
  link-local, multicast, reserved, unspecified, shared 100.64/10, ...; IPv4-mapped IPv6 is judged as IPv4).
- WEBHOOK_ALLOWED_HOSTS set: only those hosts (exact name or IP literal); being listed is the explicit
  permission to reach a private address.

`check()` runs at registration and again before every delivery, after resolving the name; the delivery then
connects to the very address that was checked (`Destination.address`), so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot steer a delivery into the server's network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from app.errors import ValidationFailed

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}
RESOLVE_TIMEOUT_SECONDS = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class WebhookRefused(ValidationFailed):
    """The URL is not allowed (422 at registration; a REFUSED delivery record at delivery time)."""

    code = "WEBHOOK_URL_REFUSED"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


class HostUnresolved(WebhookRefused):
    """The name did not resolve: refused at registration, retried at delivery (DNS may recover)."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL and the address to connect to."""

    url: str
    scheme: str
    host: str  # lower case, no brackets, no trailing dot
    port: int
    address: str  # the checked IP address to connect to


async def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for `host` (an IP literal resolves to itself)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refusal_reason(address: IPAddress) -> str | None:
    """Why a delivery may not reach `address` without an explicit allowance; None for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for reason, flagged in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flagged:
            return reason
    return None if address.is_global else "not public"


class HostGuard:
    """Checks webhook URLs against WEBHOOK_ALLOWED_HOSTS and the resolved addresses (see the module docstring)."""

    def __init__(self, allowed_hosts: Iterable[str] = (), resolve: Resolver = resolve_host) -> None:
        self.allowed_hosts = frozenset(host.lower() for host in allowed_hosts)
        self.resolve = resolve

    def parse(self, url: object) -> tuple[str, str, int]:
        """Scheme, host and port of an acceptable URL, before any DNS: raises WebhookRefused."""
        if not isinstance(url, str) or not url.strip():
            raise WebhookRefused("url is required")
        if len(url) > MAX_URL_LENGTH:
            raise WebhookRefused(f"url must be at most {MAX_URL_LENGTH} characters")
        if any(ch.isspace() or ord(ch) < 32 for ch in url):
            raise WebhookRefused("url must not contain whitespace or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
            httpx.URL(url)  # the client that delivers must accept it too
        except (ValueError, httpx.InvalidURL):
            raise WebhookRefused("url is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise WebhookRefused("url must start with http:// or https://")
        if parts.username is not None or parts.password is not None:
            raise WebhookRefused("url must not carry a user name or password")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise WebhookRefused("url has no host")
        if self.allowed_hosts and host not in self.allowed_hosts:
            raise WebhookRefused(f"host {host} is not allowed here (WEBHOOK_ALLOWED_HOSTS)")
        if port == 0:
            raise WebhookRefused("url is not a valid URL")
        return scheme, host, port or SCHEMES[scheme]

    async def check(self, url: object) -> Destination:
        """Parse, resolve and check `url`; the Destination names the address to connect to."""
        scheme, host, port = self.parse(url)
        try:
            found = [host] if _is_ip_literal(host) else await self.resolve(host, port)
        except (OSError, TimeoutError, UnicodeError):
            raise HostUnresolved(f"host {host} could not be resolved") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise HostUnresolved(f"host {host} could not be resolved")
        if host not in self.allowed_hosts:
            for address in addresses:
                reason = refusal_reason(address)
                if reason is not None:
                    raise WebhookRefused(f"host {host} resolves to a {reason} address ({address}), which is refused")
        assert isinstance(url, str)
        return Destination(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
