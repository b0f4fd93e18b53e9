"""Notes back to the CRM (F-FOLLOW-10): a comment on a record item becomes a signed webhook call.

The delivery row is written in the comment's transaction (an outbox), so a committed comment is
always sent. `deliver_webhooks` claims due rows with a lease, sends them, and retries failures with
exponential backoff and equal jitter (domain/retry.py). Each call carries `X-Feeds-Timestamp` and
`X-Feeds-Signature: sha256=HEX`, the HMAC-SHA256 of "TIMESTAMP.BODY" under the integration's
webhook secret, so the CRM can check where it came from and refuse replays (docs/records.md).

A delivery that cannot be read, built or sent for a reason nobody planned for (a bug, a value
stored before a rule existed) is set aside as a dead letter with the reason
(notify/dead_letters.py), and the loop goes on with the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions import audit
from feeds_server.actions.directory import must_get
from feeds_server.domain import egress, retry
from feeds_server.errors import NotFound
from feeds_server.notify import dead_letters
from feeds_server.notify.webhook_client import webhook_client
from feeds_server.runtime.services import Services
from feeds_server.store.events import append_event
from feeds_server.store.models import Integration, IntegrationWebhook, Post, User, WebhookDelivery
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.webhooks")

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", dead_letters.FAILED
ROUND_RETRY_SECONDS = 5.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff_seconds(attempts: int) -> float:
    """Seconds before a failed delivery is tried again (domain/retry.py: doubling, capped, equal jitter)."""
    return retry.backoff_seconds(attempts, limits.WEBHOOK_RETRY_BASE_SECONDS, limits.WEBHOOK_RETRY_MAX_SECONDS)


def is_permanent(status: int) -> bool:
    """A 4xx other than timeouts and rate limits will not change by retrying."""
    return 400 <= status < 500 and status not in (408, 409, 425, 429)


# --- configuration (admins) -------------------------------------------------------------------
async def get_webhook(session: AsyncSession, integration_id: int) -> IntegrationWebhook:
    await must_get(session, Integration, integration_id, "integration")
    hook = (await session.execute(select(IntegrationWebhook).where(IntegrationWebhook.integration_id == integration_id))).scalar_one_or_none()
    if hook is None:
        raise NotFound("webhook_not_found", "this integration has no webhook")
    return hook


async def set_webhook(session: AsyncSession, actor_id: int, integration_id: int, url: str) -> tuple[IntegrationWebhook, str]:
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
    append_event(session, "integration.webhook_set", {"id": integration_id, "url": url}, actor_id)
    audit.record(session, "integration.webhook_set", actor_id, ("integration", integration_id), {"url": audit.url_without_credentials(url)})
    return hook, secret


async def remove_webhook(session: AsyncSession, actor_id: int, integration_id: int) -> None:
    hook = await get_webhook(session, integration_id)
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.integration_id == integration_id, WebhookDelivery.status != DELIVERED))
    await session.delete(hook)
    append_event(session, "integration.webhook_removed", {"id": integration_id}, actor_id)
    audit.record(session, "integration.webhook_removed", actor_id, ("integration", integration_id))


async def webhook_view(session: AsyncSession, hook: IntegrationWebhook) -> dict[str, Any]:
    rows = await session.execute(
        select(WebhookDelivery.status, func.count()).where(WebhookDelivery.integration_id == hook.integration_id).group_by(WebhookDelivery.status)
    )
    counts = {PENDING: 0, DELIVERED: 0, FAILED: 0} | {(PENDING if status == SENDING else status): n for status, n in rows}
    return {"integration_id": hook.integration_id, "url": hook.url, "deliveries": counts}


async def retry_failed(session: AsyncSession, integration_id: int, now: datetime) -> int:
    await get_webhook(session, integration_id)
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.integration_id == integration_id, WebhookDelivery.status == FAILED)
        .values(status=PENDING, attempts=0, next_attempt_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- the outbox ---------------------------------------------------------------------------------
async def enqueue_note(session: AsyncSession, post: Post, comment: dict[str, Any], author_id: int, now: datetime) -> None:
    """Queue a comment on a record item as a note, for every live integration with a webhook."""
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
    if not hooks:
        return
    author = (await session.execute(select(User.email, User.name).where(User.id == author_id))).first()
    payload = {
        "type": "note.created",
        "record": {"module": record["module"], "crm_id": record["crm_id"]},
        "note": {"text": comment["body"], "comment_id": comment["id"], "created_at": comment["created_at"].isoformat()},
        "author": {"email": author[0], "name": author[1]} if author else None,
    }
    for integration_id in hooks:
        session.add(WebhookDelivery(integration_id=integration_id, payload=payload, status=PENDING, next_attempt_at=now, created_at=now))


# --- the delivery loop ----------------------------------------------------------------------------
async def deliver_webhooks(
    services: Services, burst: bool = False, stop: asyncio.Event | None = None, client: httpx.AsyncClient | None = None
) -> int:
    """Send due deliveries until stopped (or, with `burst`, until none is due). Returns how many succeeded."""
    own_client = client is None
    allow = egress.parse_networks(services.settings.webhook_allow_networks)
    client = client or webhook_client(allow, timeout=limits.WEBHOOK_TIMEOUT_SECONDS)
    delivered = 0
    try:
        while stop is None or not stop.is_set():
            try:
                due = await _claim(services)
            except Exception:
                if burst:
                    raise
                log.exception("claiming webhook deliveries failed; trying again in %.0f s", ROUND_RETRY_SECONDS)
                await _pause(ROUND_RETRY_SECONDS, stop)
                continue
            results = await asyncio.gather(*(_deliver(services, client, d, url, secret) for d, url, secret in due), return_exceptions=True)
            for (delivery, _, _), result in zip(due, results):
                if isinstance(result, BaseException):  # its outcome was not recorded: its lease brings it back
                    log.error("the outcome of webhook delivery %s was not recorded: %r", delivery.id, result, exc_info=result)
            delivered += sum(r for r in results if isinstance(r, int))
            if due:
                continue
            if burst:
                break
            await _pause(1.0, stop)
    finally:
        if own_client:
            await client.aclose()
    return delivered


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    try:
        await asyncio.wait_for(stop.wait() if stop else asyncio.sleep(seconds), timeout=seconds)
    except TimeoutError:
        pass


async def _claim(services: Services) -> list[tuple[WebhookDelivery, str, str]]:
    """Lease due deliveries (and ones whose worker died mid-send) to this worker.

    When the due rows cannot be loaded together (one holds a payload that cannot be read), the ones
    that cannot be read are set aside as dead letters and the claim is made again without them.
    """
    try:
        return await _claim_rows(services)
    except DBAPIError:
        raise
    except Exception as exc:  # noqa: BLE001 - narrowed down to the rows by _set_aside_unreadable
        log.warning("due webhook deliveries could not be loaded together (%r): setting aside those that cannot be read", exc)
        await _set_aside_unreadable(services)
        return await _claim_rows(services)


def _due(now: datetime) -> Any:
    """Pending and due, or leased to a worker whose lease ran out (it died mid-send)."""
    return or_(
        (WebhookDelivery.status == PENDING) & (WebhookDelivery.next_attempt_at <= now),
        (WebhookDelivery.status == SENDING) & (WebhookDelivery.lease_until < now),
    )


async def _set_aside_unreadable(services: Services) -> None:
    now = services.clock()
    async with account_session(services.sessions) as session:
        stmt = select(WebhookDelivery.id).where(_due(now)).order_by(WebhookDelivery.id).limit(limits.WEBHOOK_CLAIM_BATCH)
        ids = (await session.execute(stmt)).scalars().all()
    for delivery_id in ids:
        try:
            async with account_session(services.sessions) as session:
                await session.execute(select(WebhookDelivery.payload).where(WebhookDelivery.id == delivery_id))
        except DBAPIError:
            raise
        except Exception as exc:  # noqa: BLE001 - this row is the one
            log.error("webhook delivery %s set aside as a dead letter: its row cannot be read: %r", delivery_id, exc)
            async with account_session(services.sessions) as session:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery_id)
                    .values(status=FAILED, lease_until=None, next_attempt_at=now, last_error=dead_letters.unexpected("read", exc))
                )


async def _claim_rows(services: Services) -> list[tuple[WebhookDelivery, str, str]]:
    now = services.clock()
    async with account_session(services.sessions) as session:
        rows = (
            await session.execute(
                select(WebhookDelivery, IntegrationWebhook.url, IntegrationWebhook.secret, Integration.revoked_at)
                .join(IntegrationWebhook, IntegrationWebhook.integration_id == WebhookDelivery.integration_id)
                .join(Integration, Integration.id == WebhookDelivery.integration_id)
                .where(_due(now))
                .order_by(WebhookDelivery.id)
                .limit(limits.WEBHOOK_CLAIM_BATCH)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
        claimed = []
        for delivery, url, secret, revoked_at in rows:
            if revoked_at is not None:
                delivery.status, delivery.lease_until, delivery.next_attempt_at = FAILED, None, now
                delivery.last_error = dead_letters.reason_text(dead_letters.REVOKED, "the integration was revoked")
                continue
            delivery.status, delivery.lease_until = SENDING, now + timedelta(seconds=limits.WEBHOOK_LEASE_SECONDS)
            delivery.attempts += 1
            claimed.append((delivery, url, secret))
        return claimed


async def _deliver(services: Services, client: httpx.AsyncClient, delivery: WebhookDelivery, url: str, secret: str) -> int:
    permanent, dead = False, None
    try:
        body = orjson.dumps({**delivery.payload, "delivery_id": delivery.id})
        timestamp = str(int(time.time()))  # wall-clock time: the CRM compares it with its own clock
        headers = {
            "content-type": "application/json", "x-feeds-timestamp": timestamp, "x-feeds-signature": sign(secret, timestamp, body),
            "x-feeds-delivery": str(delivery.id), "user-agent": "feeds-server-webhook",
        }
        response = await client.post(url, content=body, headers=headers)
        ok, error, permanent = response.is_success, f"HTTP {response.status_code}", is_permanent(response.status_code)
    except httpx.HTTPError as exc:
        # Only "failed" is stored where the org admin reads it: why a connection failed (refused
        # target, closed port, timeout) would map the network around the server. The log keeps it.
        ok, error = False, "failed"
        log.warning("webhook delivery %s could not be sent: %s: %s", delivery.id, type(exc).__name__, str(exc)[:500])
    except Exception as exc:  # a payload that cannot be encoded, a stored URL httpx cannot read, a bug: not retried by itself
        ok, error, dead = False, "failed", dead_letters.unexpected("send", exc)
        log.error("webhook delivery %s set aside as a dead letter: %r", delivery.id, exc, exc_info=exc)
    now = services.clock()
    values: dict[str, Any]
    if ok:
        values = {"status": DELIVERED, "delivered_at": now, "lease_until": None, "last_error": None}
    elif dead or permanent or delivery.attempts >= limits.WEBHOOK_MAX_ATTEMPTS:
        reason = dead or dead_letters.reason_text(dead_letters.REFUSED if permanent else dead_letters.GAVE_UP, error)
        values = {"status": FAILED, "last_error": reason, "lease_until": None, "next_attempt_at": now}
        log.warning("webhook delivery %s failed for good after %d attempts: %s", delivery.id, delivery.attempts, reason)
    else:
        values = {"status": PENDING, "last_error": error, "lease_until": None, "next_attempt_at": now + timedelta(seconds=backoff_seconds(delivery.attempts))}
    async with account_session(services.sessions) as session:
        await session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery.id, WebhookDelivery.status == SENDING).values(**values)
        )
    return 1 if ok else 0
