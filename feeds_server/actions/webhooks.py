"""Notes back to the CRM (F-FOLLOW-10): a comment on a record item becomes a signed webhook call.

The delivery row is written with the comment (an outbox), so a committed comment is always sent;
delivery retries with exponential backoff and jitter until the CRM answers 2xx. Each call carries
`X-Feeds-Timestamp` and `X-Feeds-Signature: sha256=HEX`, the HMAC-SHA256 of "TIMESTAMP.BODY" with
the integration's webhook secret (docs/records.md shows how to check it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.directory import must_get
from feeds_server.services import Services
from feeds_server.store.models import Integration, IntegrationWebhook, Post, User, WebhookDelivery
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.webhooks")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


async def set_webhook(session: AsyncSession, integration_id: int, url: str) -> tuple[IntegrationWebhook, str]:
    """Set (or replace) the integration's webhook URL; a new secret is made and shown once."""
    await must_get(session, Integration, integration_id, "integration")
    hook = (await session.execute(select(IntegrationWebhook).where(IntegrationWebhook.integration_id == integration_id))).scalar_one_or_none()
    secret = secrets.token_urlsafe(32)
    if hook is None:
        hook = IntegrationWebhook(integration_id=integration_id, url=url, secret=secret)
        session.add(hook)
    else:
        hook.url, hook.secret = url, secret
    await session.flush()
    return hook, secret


async def enqueue_note(session: AsyncSession, post: Post, comment: dict[str, Any], author_id: int, now: datetime) -> None:
    """Queue the comment as a note for every live integration with a webhook."""
    record = (post.data or {}).get("record")
    if post.kind != "record" or not record:
        return
    hooks = (
        await session.execute(
            select(IntegrationWebhook.integration_id)
            .join(Integration, Integration.id == IntegrationWebhook.integration_id)
            .where(Integration.revoked_at.is_(None))
        )
    ).scalars().all()
    author = (await session.execute(select(User.email, User.name).where(User.id == author_id))).first()
    payload = {
        "type": "note.created",
        "record": {"module": record["module"], "crm_id": record["crm_id"]},
        "note": {"text": comment["body"], "comment_id": comment["id"], "created_at": comment["created_at"]},
        "author": {"email": author[0], "name": author[1]} if author else None,
    }
    for integration_id in hooks:
        session.add(WebhookDelivery(integration_id=integration_id, payload=payload, status="pending", next_attempt_at=now, created_at=now))


def _backoff(attempts: int) -> float:
    ceiling = min(3600.0, 2.0 * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.random() * ceiling / 2


async def deliver_webhooks(services: Services, burst: bool = False, stop: asyncio.Event | None = None, client: httpx.AsyncClient | None = None) -> int:
    """Send due deliveries until stopped (or, with `burst`, until none is due). Returns how many succeeded."""
    own_client = client is None
    client = client or httpx.AsyncClient(timeout=10)
    delivered = 0
    try:
        while stop is None or not stop.is_set():
            due = await _claim(services)
            for delivery, hook in due:
                delivered += await _deliver(services, client, delivery, hook)
            if not due:
                if burst:
                    return delivered
                await asyncio.sleep(1.0)
    finally:
        if own_client:
            await client.aclose()
    return delivered


async def _claim(services: Services) -> list[tuple[WebhookDelivery, IntegrationWebhook]]:
    now = services.clock()
    async with account_session(services.sessions) as session:
        rows = (
            await session.execute(
                select(WebhookDelivery, IntegrationWebhook)
                .join(IntegrationWebhook, IntegrationWebhook.integration_id == WebhookDelivery.integration_id)
                .where(
                    or_(
                        (WebhookDelivery.status == "pending") & (WebhookDelivery.next_attempt_at <= now),
                        (WebhookDelivery.status == "sending") & (WebhookDelivery.lease_until < now),
                    )
                )
                .order_by(WebhookDelivery.id)
                .limit(50)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
        for delivery, _ in rows:
            delivery.status, delivery.lease_until = "sending", now + timedelta(seconds=60)
            delivery.attempts += 1
        return [(d, h) for d, h in rows]


async def _deliver(services: Services, client: httpx.AsyncClient, delivery: WebhookDelivery, hook: IntegrationWebhook) -> int:
    body = orjson.dumps({**delivery.payload, "delivery_id": delivery.id})
    ts = str(int(time.time()))
    headers = {"content-type": "application/json", "x-feeds-timestamp": ts, "x-feeds-signature": sign(hook.secret, ts, body),
               "x-feeds-delivery": str(delivery.id)}
    try:
        response = await client.post(hook.url, content=body, headers=headers)
        ok, error = response.is_success, f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok, error = False, repr(exc)
    now = services.clock()
    values: dict[str, Any]
    if ok:
        values = {"status": "delivered", "delivered_at": now, "lease_until": None}
    elif delivery.attempts >= limits.WEBHOOK_MAX_ATTEMPTS:
        values = {"status": "failed", "last_error": error, "lease_until": None}
        log.warning("webhook delivery %s failed for good: %s", delivery.id, error)
    else:
        values = {"status": "pending", "last_error": error, "lease_until": None, "next_attempt_at": now + timedelta(seconds=_backoff(delivery.attempts))}
    async with account_session(services.sessions) as session:
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values))
    return 1 if ok else 0
