"""Sends one Web Push: encrypts the payload for the browser (RFC 8291, aes128gcm, through pywebpush),
signs the request with the server's VAPID key (RFC 8292, notify/vapid.py) and posts it to the
browser's push service (RFC 8030), then sorts the answer into what the worker does next.

The endpoint was checked when it was stored, but a stored URL is never trusted: it is checked again
here (domain/push_targets.py), and the connection goes through the webhook client's guarded
transport (notify/webhook_client.py), which judges every address the name resolves to at connect
time, follows no redirect and uses no proxy from the environment. The answer's body is read up to
PUSH_MAX_RESPONSE_BYTES and the whole exchange, connect to last byte, is bounded by
PUSH_TIMEOUT_SECONDS: one push service that answers slowly must not hold the others up. The
endpoint was chosen by a member, not the operator, so the addresses it may reach inside the
operator's network are FEEDS_PUSH_ALLOW_NETWORKS (empty by default), never the webhooks' list.
What the push service answers is kept for logs and `notifier --failed` on one printable line.

201/202 (any 2xx): sent. 404/410: the subscription expired or was withdrawn, it is removed. 429, 5xx,
timeouts and connection failures: tried again later (a Retry-After is honoured within the backoff
ceiling). Any other 4xx, or a target egress refuses: refused for good (a dead letter).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pywebpush import WebPusher

from feeds_server import limits
from feeds_server.config import Settings
from feeds_server.domain import egress, push_targets
from feeds_server.domain.names import one_line
from feeds_server.domain.numbers import is_digits
from feeds_server.notify import vapid
from feeds_server.notify.webhook_client import Resolver, TargetRefused, system_resolver, webhook_client

SENT, GONE, RETRY, REFUSED = "sent", "gone", "retry", "refused"
# Kinds a person wants to hear of at once: the push service may wake a sleeping phone for these.
URGENT_KINDS = frozenset({"mention", "private_message"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class Result:
    outcome: str  # SENT | GONE | RETRY | REFUSED
    detail: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class Target:
    """Where one push goes: the subscription's endpoint and keys as stored."""

    endpoint: str
    p256dh: str
    auth: str


def topic(tag: str | None) -> str | None:
    """The Topic header for a payload's tag: a newer push with the same topic replaces one the push
    service still holds (RFC 8030 section 5.4 allows 32 base64url characters, so other tags are hashed)."""
    if not tag:
        return None
    if _TOPIC.fullmatch(tag):
        return tag
    return base64.urlsafe_b64encode(hashlib.sha256(tag.encode()).digest()).rstrip(b"=").decode()[:32]


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The JSON a service worker reads, cut to PUSH_MAX_PAYLOAD_BYTES by shortening its body text."""
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) <= limits.PUSH_MAX_PAYLOAD_BYTES:
        return data
    body = str(payload.get("body") or "")
    over = len(data) - limits.PUSH_MAX_PAYLOAD_BYTES
    cut = body.encode()[: max(0, len(body.encode()) - over - 3)].decode(errors="ignore") + "…"
    data = json.dumps({**payload, "body": cut}, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > limits.PUSH_MAX_PAYLOAD_BYTES:  # the other fields are server-made and short; never expected
        data = json.dumps({k: payload[k] for k in ("kind", "org", "notification_id", "url") if k in payload}).encode()
    return data


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110 delay-seconds); a date or anything else is ignored."""
    if value and is_digits(value.strip()):
        return min(float(value.strip()), limits.PUSH_RETRY_MAX_SECONDS)
    return None


def printable(text: str, limit: int = 200) -> str:
    """Text that came from a push service (or an error about one), on one printable line: it goes
    to logs and to `notifier --failed` on a terminal, where an ESC would be a command."""
    return " ".join("".join(c if c.isprintable() else " " for c in one_line(text)).split())[:limit]


class PushSender:
    """One per worker: the guarded HTTP clients and the VAPID signer, shared by every push.

    A client (a connection pool) per push service origin, each holding at most the connections of
    PUSH_PER_ORIGIN_CONCURRENCY pushes: httpcore's pool pairs every waiting request with every
    connection each time one is handed out, so one pool for all origins would cost a worker with
    PUSH_CONCURRENCY pushes in flight more CPU than the pushes themselves. Endpoints are chosen by
    members, so the pools are bounded too: beyond twice PUSH_CONCURRENCY, idle ones are closed."""

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient | None = None, resolver: Resolver = system_resolver
    ) -> None:
        self.allow: Sequence[egress.Network] = egress.parse_networks(settings.push_allow_networks)
        self.signer = vapid.Signer.for_settings(settings)
        self._shared = client  # a caller's client serves every origin
        self._resolver = resolver
        self._clients: dict[str, httpx.AsyncClient] = {}  # by origin, least recently used first
        self._in_use: dict[str, int] = {}

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def _client(self, where: str) -> httpx.AsyncClient:
        if self._shared is not None:
            return self._shared
        client = self._clients.pop(where, None) or webhook_client(
            self.allow, timeout=limits.PUSH_TIMEOUT_SECONDS, resolver=self._resolver, keepalive=limits.PUSH_PER_ORIGIN_CONCURRENCY
        )
        self._clients[where] = client
        idle = [w for w in self._clients if not self._in_use.get(w) and w != where]
        for old in idle[: max(0, len(self._clients) - 2 * limits.PUSH_CONCURRENCY)]:
            await self._clients.pop(old).aclose()
        return client

    def request(self, target: Target, payload: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        """The headers and the encrypted body of a push (no I/O; ValueError for keys that cannot encrypt)."""
        info = {"endpoint": target.endpoint, "keys": {"p256dh": target.p256dh, "auth": target.auth}}
        try:
            body = WebPusher(info).encode(encode_payload(payload), content_encoding="aes128gcm")["body"]
        except Exception as exc:  # pywebpush and http_ece raise several kinds for a bad key
            raise ValueError(f"cannot encrypt for this subscription: {exc!r}") from exc
        headers = {
            "Authorization": self.signer.authorization(target.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(limits.PUSH_TTL_SECONDS),
            "Urgency": "high" if payload.get("kind") in URGENT_KINDS else "normal",
        }
        if name := topic(payload.get("tag")):
            headers["Topic"] = name
        return headers, body

    async def send(self, target: Target, payload: dict[str, Any]) -> Result:
        if why := push_targets.endpoint_refusal(target.endpoint, self.allow):
            return Result(REFUSED, why)
        try:
            headers, body = self.request(target, payload)
        except ValueError as exc:
            return Result(REFUSED, printable(str(exc)))
        where = push_targets.origin(target.endpoint)
        self._in_use[where] = self._in_use.get(where, 0) + 1
        try:
            client = await self._client(where)
            async with asyncio.timeout(limits.PUSH_TIMEOUT_SECONDS):
                async with client.stream("POST", target.endpoint, headers=headers, content=body) as response:
                    text = await _read_bounded(response)
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, TargetRefused):
                return Result(REFUSED, printable(str(exc)))
            return Result(RETRY, printable(f"cannot connect: {exc!r}"))
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return Result(RETRY, printable(f"no answer: {exc!r}"))
        finally:
            self._in_use[where] -= 1
            if not self._in_use[where]:
                del self._in_use[where]
        return _sorted(response.status_code, text, response.headers.get("retry-after"))


async def _read_bounded(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk[: limits.PUSH_MAX_RESPONSE_BYTES - len(data)]
        if len(data) >= limits.PUSH_MAX_RESPONSE_BYTES:
            break
    return data.decode(errors="replace")


def _sorted(status: int, text: str, retry_after: str | None) -> Result:
    detail = f"{status} {printable(text)}".strip()
    if 200 <= status < 300:
        return Result(SENT, detail)
    if status in (404, 410):
        return Result(GONE, detail)
    if status == 429 or status >= 500:
        return Result(RETRY, detail, _retry_after(retry_after))
    return Result(REFUSED, detail)
