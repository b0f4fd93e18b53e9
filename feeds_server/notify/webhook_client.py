"""The HTTP client of webhook deliveries: it connects only to addresses domain/egress.py allows.

The check sits where the socket is opened (an httpcore network backend), not on the URL: the name
is resolved once, every address it resolves to is judged, and the connection goes to a judged
address, so neither a name that resolves to 127.0.0.1 nor a DNS answer that changes between a check
and the connection (rebinding) gets through. httpcore keeps the name for the Host header and for
TLS (SNI and the certificate check). Redirects are not followed and no proxy from the environment is
used. A refusal is an `httpx.ConnectError`, like a closed port: the delivery loop cannot tell them
apart, and neither can the admin who reads its counts.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Sequence

import httpcore
import httpx
from httpcore._utils import is_socket_readable

from feeds_server.domain import egress

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class TargetRefused(httpcore.ConnectError):
    """The host resolves to an address webhooks may not reach (httpx raises it as a ConnectError)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host` (an address literal resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to allowed addresses; see the module docstring."""

    def __init__(self, allow: Sequence[egress.Network] = (), resolver: Resolver = system_resolver) -> None:
        self._allow = tuple(allow)
        self._resolve = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # One deadline for the lookup and every address tried: a long DNS answer of dead addresses
        # must not hold a delivery for one timeout per address.
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        addresses = await self._checked_addresses(host, port, timeout)
        failure: Exception = httpcore.ConnectTimeout(f"connecting to {host} timed out")
        for ip in addresses:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            try:
                return _Stream(await self._inner.connect_tcp(ip, port, left, local_address, socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def _checked_addresses(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            resolved = list(await asyncio.wait_for(self._resolve(host, port), timeout))
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not resolved:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        for text in resolved:
            why = egress.refusal(egress.address(text), self._allow)
            if why:
                raise TargetRefused(f"{host} resolves to {text}: {why}")
        return resolved

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("webhooks do not use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """An anyio stream whose socket is looked up once. httpcore asks each kept-alive connection
    whether it is still readable every time its pool hands a connection out, and anyio builds all of
    a socket's attributes (addresses, family) for each ask: with a few dozen requests in flight that
    cost more CPU than the requests themselves."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return is_socket_readable(self._socket)  # a stream without a socket counts as closed
        return self._inner.get_extra_info(info)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a `GuardedBackend`.

    httpx takes no network backend as an argument, so the pool it builds is replaced by one built
    the same way with ours; tests/abuse/test_webhook_targets.py fails if that stops taking effect.
    """

    def __init__(self, allow: Sequence[egress.Network] = (), resolver: Resolver = system_resolver, keepalive: int = 20) -> None:
        limits = httpx.Limits(max_connections=max(100, keepalive), max_keepalive_connections=keepalive, keepalive_expiry=5.0)
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow, resolver),
        )


def webhook_client(
    allow: Sequence[egress.Network] = (), timeout: float = 10.0, resolver: Resolver = system_resolver, keepalive: int = 20
) -> httpx.AsyncClient:
    """The client deliveries are posted with: guarded connections, no redirects, no proxies from the environment.
    `keepalive`: connections kept open for reuse (as many as requests in flight, or each extra one reconnects)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow, resolver, keepalive), timeout=timeout, follow_redirects=False, trust_env=False
    )
