"""A webhook receiver on loopback (a real aiohttp server on a free port): records every request and answers with
scripted status codes (then 200). With `tls_host` it serves HTTPS with a self-signed certificate for that name;
`client_context` trusts it."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=list)  # answers in order; 200 once they run out
    received: list[Received] = field(default_factory=list)
    port: int = 0
    client_context: ssl.SSLContext | None = None  # trusts the TLS certificate (tls_host only)
    # Requests to /slow wait for `release` (a receiver that does not answer yet); `slow_at_once` counts them.
    release: asyncio.Event = field(default_factory=asyncio.Event)
    slow_now: int = 0
    slow_at_once: int = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/slow":
            self.slow_now += 1
            self.slow_at_once = max(self.slow_at_once, self.slow_now)
            try:
                await self.release.wait()
            finally:
                self.slow_now -= 1
        self.received.append(Received(request.path, dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "not now")


@asynccontextmanager
async def webhook_receiver(*statuses: int, tls_host: str | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(statuses=list(statuses))
    server_context = None
    if tls_host is not None:
        server_context, receiver.client_context = _tls_contexts(tls_host)
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver._handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    receiver.port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=server_context).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


def _tls_contexts(host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `host`: the server's context, and a client context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client
