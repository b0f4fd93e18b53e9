"""A real Web Push service for tests: an HTTP server on 127.0.0.1 that plays the browser vendor's part.

`new_subscription()` makes what a browser would: an endpoint URL on this server, a P-256 key pair and
an auth secret, returned as `PushSubscription.toJSON()`. A push to that endpoint is accepted only with
a valid VAPID `Authorization` (RFC 8292: `vapid t=JWT, k=KEY`, ES256 by that key, `aud` the endpoint's
origin, `exp` in the future and at most 24 hours away, a `sub`), a TTL header, and a body that
decrypts (RFC 8291, aes128gcm) with the subscription's private key and auth secret; the plaintext is
recorded. `answer(sub, 410)` makes one endpoint answer with that status from then on (or for the next
`times` pushes), to play an expired subscription or a service in trouble.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import http_ece
import pytest
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def browser_subscription(endpoint: str = "https://push.example.com/send/abc") -> dict[str, Any]:
    """A browser's `PushSubscription.toJSON()` for an endpoint of any push service (fresh valid keys)."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))}}


@dataclass
class Received:
    """A push the service accepted (or refused: `status`), with its headers and plaintext."""

    token: str
    status: int
    headers: dict[str, str]
    payload: dict[str, Any] | None
    error: str | None = None


@dataclass
class _Sub:
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    answers: list[int] = field(default_factory=list)  # statuses to answer, one per push; last one sticks if sticky
    sticky: int | None = None
    delay: float = 0.0
    server_key: str | None = None  # the applicationServerKey it was made with: pushes must be signed by it


class PushService:
    """Start with `start()` (a thread with its own loop), stop with `stop()`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.subs: dict[str, _Sub] = {}
        self.received: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # While set to an unset Event, pushes wait before being answered; one whose sender went away
        # meanwhile is not accepted (its connection closed before the answer).
        self.hold: threading.Event | None = None
        self.waiting = 0

    # --- the browser's side -----------------------------------------------------------------
    def new_subscription(self, server_key: str | None = None) -> dict[str, Any]:
        """What `PushManager.subscribe({applicationServerKey: server_key})` gives a page."""
        token = b64(os.urandom(12))
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.subs[token] = _Sub(key, auth, server_key=server_key)
        point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint(token), "expirationTime": None, "keys": {"p256dh": b64(point), "auth": b64(auth)}}

    def endpoint(self, token: str) -> str:
        return f"http://{self.host}:{self.port}/push/{token}"

    @staticmethod
    def token_of(subscription: dict[str, Any]) -> str:
        return str(subscription["endpoint"]).rsplit("/", 1)[1]

    def answer(self, subscription: dict[str, Any], status: int, times: int | None = None, delay: float = 0.0) -> None:
        """Answer pushes to this subscription with `status` (for the next `times`, or from now on)."""
        sub = self.subs[self.token_of(subscription)]
        sub.delay = delay
        if times is None:
            sub.sticky, sub.answers = status, []
        else:
            sub.answers = [status] * times

    def delivered(self, subscription: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Plaintexts of the pushes accepted (to one subscription, or to all)."""
        with self._lock:
            return [
                r.payload for r in self.received
                if r.status in (201, 202) and r.payload is not None and (subscription is None or r.token == self.token_of(subscription))
            ]

    # --- the server -------------------------------------------------------------------------
    def start(self) -> "PushService":
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application(client_max_size=8192)
            app.router.add_post("/push/{token}", self._push)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _push(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        sub = self.subs.get(token)
        if sub is None:
            return web.Response(status=404, text="no such subscription")
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()}
        status, payload, error = 201, None, None
        if self.hold is not None:
            self.waiting += 1
            while not self.hold.is_set():
                await asyncio.sleep(0.01)
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)
        try:
            self._check_vapid(request.headers.get("Authorization", ""), f"http://{self.host}:{self.port}", sub.server_key)
            if "TTL" not in request.headers or not request.headers["TTL"].isdigit():
                raise ValueError("no TTL header")
            if request.headers.get("Content-Encoding") != "aes128gcm":
                raise ValueError("Content-Encoding must be aes128gcm")
            plaintext = http_ece.decrypt(body, private_key=sub.key, auth_secret=sub.auth, version="aes128gcm")
            payload = json.loads(plaintext)
        except (ValueError, KeyError, InvalidSignature) as exc:
            status, error = 400, repr(exc)
        if status == 201:
            if sub.delay:
                await asyncio.sleep(sub.delay)
            if sub.answers:
                status = sub.answers.pop(0)
            elif sub.sticky is not None:
                status = sub.sticky
        with self._lock:
            self.received.append(Received(token, status, headers, payload, error))
        return web.Response(status=status, text=error or "")

    @staticmethod
    def _check_vapid(header: str, audience: str, server_key: str | None) -> None:
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError(f"not a vapid Authorization: {header[:40]!r}")
        parts = dict(p.strip().split("=", 1) for p in rest.split(","))
        jwt, key = parts["t"], unb64(parts["k"])
        if server_key is not None and key != unb64(server_key):
            raise ValueError("signed with another key than the subscription was made with")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
        head_b64, claims_b64, sig_b64 = jwt.split(".")
        head = json.loads(unb64(head_b64))
        if head.get("alg") != "ES256":
            raise ValueError("alg must be ES256")
        sig = unb64(sig_b64)
        if len(sig) != 64:
            raise ValueError("an ES256 signature is 64 bytes")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(unb64(claims_b64))
        now = time.time()
        if claims.get("aud") != audience:
            raise ValueError(f"aud {claims.get('aud')!r} is not {audience!r}")
        if not now < claims["exp"] <= now + 24 * 3600:
            raise ValueError("exp must be in the future and at most 24 hours away")
        if not claims.get("sub"):
            raise ValueError("no sub claim")


@pytest.fixture
def push_service() -> Iterator[PushService]:
    """A running push service (import this fixture into the test module)."""
    service = PushService().start()
    yield service
    service.stop()
