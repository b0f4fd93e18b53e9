"""The notifier worker (`feeds-server notifier`): sends the outbox's emails.

For each claimed batch: drop mentions whose item was deleted or already read, or whose user turned
mention emails off; render one email; send it; record it as sent straight after the mail server
accepted it. The one window where an email can go out twice is between that acceptance and that
record (a crash there): the retry carries the same Message-ID, so receiving systems can drop it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import aiosmtplib
from sqlalchemy import select

from feeds_server.notify import outbox
from feeds_server.notify.emails import invitation_email_from_payload, mention_email, unsubscribe_token
from feeds_server.notify.mailer import Mailer
from feeds_server.services import Services
from feeds_server.store.models import Comment, EmailJob, Notification, NotificationSettings, Org, Post, User
from feeds_server.store.scope import org_session

log = logging.getLogger("feeds_server.notifier")

POLL_SECONDS = 1.0


class PermanentFailure(Exception):
    """The mail server refused for good (5xx): recorded, not retried."""


class TransientFailure(Exception):
    """Try again later (connection refused, timeouts, 4xx)."""


async def run(services: Services, burst: bool = False, stop: asyncio.Event | None = None) -> int:
    """Send until stopped; with `burst`, until nothing is due (tests drain the outbox this way)."""
    lease_seconds = services.settings.notifier_lease_seconds
    sent = 0
    while stop is None or not stop.is_set():
        batches = await outbox.claim(services.sessions, services.clock(), lease_seconds)
        for batch in batches:
            sent += await _process(services, batch)
        if not batches:
            if burst:
                return sent
            await _sleep(POLL_SECONDS, stop)
    return sent


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def _process(services: Services, batch: outbox.Batch) -> int:
    now = services.clock()
    try:
        message, keep, skip = await _compose(services, batch)
    except Exception as exc:  # a rendering bug must not wedge the outbox
        log.exception("could not compose batch %s", batch.batch_id)
        await outbox.mark(services.sessions, batch.job_ids, "failed", now, error=f"compose: {exc}")
        return 0
    await outbox.mark(services.sessions, skip, "skipped", now)
    if message is None:
        return 0
    try:
        await send(services.mailer, message)
    except PermanentFailure as exc:
        log.warning("email to %s refused for good: %s", batch.to_email, exc)
        await outbox.mark(services.sessions, keep, "failed", now, error=str(exc))
        return 0
    except TransientFailure as exc:
        log.info("email to %s will be retried: %s", batch.to_email, exc)
        await outbox.retry_later(services.sessions, outbox.Batch(**{**batch.__dict__, "job_ids": tuple(keep)}), services.clock(), str(exc))
        return 0
    await outbox.mark(services.sessions, keep, "sent", services.clock(), message_id=str(message["Message-ID"]))
    return 1


async def send(mailer: Mailer, message) -> None:  # type: ignore[no-untyped-def]
    """Send, sorting failures into transient (retry) and permanent (record, stop)."""
    try:
        await mailer.send(message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        raise (PermanentFailure if codes and all(c >= 500 for c in codes) else TransientFailure)(str(exc)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise (PermanentFailure if exc.code >= 500 else TransientFailure)(f"{exc.code} {exc.message}") from exc
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
        raise TransientFailure(repr(exc)) from exc


async def _compose(services: Services, batch: outbox.Batch):  # type: ignore[no-untyped-def]
    """(message or None, job ids sent by it, job ids skipped)."""
    if batch.kind == "invitation":
        jobs = await outbox.jobs(services.sessions, batch.job_ids)
        return invitation_email_from_payload(services.settings, jobs[0]), list(batch.job_ids), []
    async with org_session(services.sessions, batch.org_id) as session:
        org = (await session.execute(select(Org).where(Org.id == batch.org_id))).scalar_one()
        user = (await session.execute(select(User).where(User.id == batch.user_id))).scalar_one_or_none()
        prefs = (await session.execute(select(NotificationSettings).where(NotificationSettings.user_id == batch.user_id))).scalar_one_or_none()
        rows = (
            await session.execute(
                select(EmailJob, Notification)
                .outerjoin(Notification, Notification.id == EmailJob.notification_id)
                .where(EmailJob.id.in_(batch.job_ids))
                .order_by(EmailJob.id)
            )
        ).all()
        keep, skip, items = [], [], []
        for job, note in rows:
            # Deleted item (the notification went with it), read in the app already, or emails turned off.
            if note is None or note.read_at is not None or user is None or (prefs is not None and not prefs.mention_emails):
                skip.append(job.id)
                continue
            post = (await session.execute(select(Post).where(Post.id == note.post_id))).scalar_one_or_none()
            if post is None or (note.comment_id and (await session.execute(select(Comment.id).where(Comment.id == note.comment_id))).first() is None):
                skip.append(job.id)
                continue
            author = (await session.execute(select(User.name).where(User.id == note.actor_id))).scalar_one_or_none() or "Someone"
            items.append({"author": author, "excerpt": note.data.get("excerpt", ""), "post_id": post.id, "comment_id": note.comment_id})
            keep.append(job.id)
    if not items or user is None:
        return None, [], skip
    token = unsubscribe_token(services.settings.secret_key, org.id, user.id)
    message = mention_email(services.settings, org, user, items, f"<mention.{org.id}.{user.id}.{batch.batch_id}@feeds.local>", token)
    return message, keep, skip

