"""The notifier worker (`feeds-server notifier`): sends the outbox's emails.

For each claimed batch: drop notifications whose item was deleted or already read, whose kind
the person no longer gets by email, or that their mutes now hold back ("muted"), and every one of
a person no longer in the org ("not a member"); set aside those of a snoozed person (skipped, "snoozed") and
give back those that fall in the person's quiet hours (due again when they end); render one email
listing the rest; send it; record it as sent straight after the mail server accepted it. The one window where an email can go out twice is between that acceptance and that
record (a crash there): the retry carries the same Message-ID, so receiving systems can drop it.

One bad job never stops the worker: a batch whose email cannot be built, or whose sending raises an
error nobody planned for, is set aside as a dead letter with the reason (notify/dead_letters.py),
while the other batches of its claim go out, each once; a round that fails as a whole (the database
away) is tried again after a pause.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from datetime import datetime
from typing import Any

import aiosmtplib
from dataclasses import replace
from email.message import Message

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased

from feeds_server.actions.notifications import Mutes, members_and_mutes, muted_now
from feeds_server.domain import notification_text, reasons
from feeds_server.domain.preferences import EMAIL, Preferences
from feeds_server.notify import account_emails, dead_letters, outbox
from feeds_server.notify.emails import invitation_email_from_payload, notification_email, sender, unsubscribe_token
from feeds_server.notify.mailer import Mailer
from feeds_server.runtime.services import Services
from feeds_server.store.models import Comment, EmailJob, Notification, NotificationSettings, Org, Post, User
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.notifier")

POLL_SECONDS = 1.0
ROUND_RETRY_SECONDS = 5.0
CLAIM_BATCHES = 64
# Why a job was skipped at send time (its `last_error`).
NOT_A_MEMBER = "not a member"
MUTED = "muted"


class PermanentFailure(Exception):
    """The mail server refused for good (5xx): recorded, not retried."""


class TransientFailure(Exception):
    """Try again later (connection refused, timeouts, 4xx)."""


async def run(services: Services, burst: bool = False, stop: asyncio.Event | None = None) -> int:
    """Send until stopped; with `burst`, until nothing is due (tests drain the outbox this way)."""
    sender(services.settings.mail_from)  # a FEEDS_MAIL_FROM that is not an address stops the worker here, not each email
    sent_log = outbox.SentLog(services.sessions)
    sent = 0
    while stop is None or not stop.is_set():
        try:
            done = await _round(services, sent_log)
        except Exception:
            if burst:
                raise
            log.exception("a round of the notifier failed; trying again in %.0f s", ROUND_RETRY_SECONDS)
            await _sleep(ROUND_RETRY_SECONDS, stop)
            continue
        if done is not None:
            sent += done
        elif burst:
            return sent
        else:
            await _sleep(POLL_SECONDS, stop)
    return sent


async def _round(services: Services, sent_log: outbox.SentLog) -> int | None:
    """Claim due batches and send them: how many emails went out, or None when nothing was due."""
    lease_seconds = services.settings.notifier_lease_seconds
    claimed_at = time.monotonic()
    batches = await outbox.claim(services.sessions, services.clock(), lease_seconds, max_batches=CLAIM_BATCHES)
    if not batches:
        return None
    job_ids = [j for b in batches for j in b.job_ids]
    async with outbox.Lease(services.sessions, services.clock, job_ids, lease_seconds, claimed_at) as lease:
        # Batches of one claim go out concurrently: each is one recipient, independent of the others.
        composed = await _compose_all(services, batches)
        return sum(await asyncio.gather(*(_process(services, b, c, sent_log, lease) for b, c in zip(batches, composed))))


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def _process(
    services: Services,
    batch: outbox.Batch,
    composed: tuple[Message | None, list[int], list[int]] | Exception,
    sent_log: outbox.SentLog,
    lease: outbox.Lease,
) -> int:
    """Send one batch; what goes wrong stays within it, so the claim's other batches go out once each."""
    try:
        return await _send_batch(services, batch, composed, sent_log, lease)
    except Exception:  # its outcome could not be recorded (the database away): its lease brings it back
        log.exception("the outcome of email batch %s was not recorded; it is claimed again when its lease runs out", batch.batch_id)
        return 0


async def _dead_letter(services: Services, batch: outbox.Batch, job_ids: tuple[int, ...] | list[int], where: str, exc: Exception) -> None:
    log.error("email batch %s (%s, org %s) set aside as a dead letter: %s: %r", batch.batch_id, batch.kind, batch.org_id, where, exc, exc_info=exc)
    await outbox.mark(services.sessions, job_ids, dead_letters.FAILED, services.clock(), error=dead_letters.unexpected(where, exc))


async def _send_batch(
    services: Services,
    batch: outbox.Batch,
    composed: tuple[Message | None, list[int], list[int]] | Exception,
    sent_log: outbox.SentLog,
    lease: outbox.Lease,
) -> int:
    now = services.clock()
    if isinstance(composed, Exception):
        await _dead_letter(services, batch, batch.job_ids, "compose", composed)
        return 0
    message, keep, skip = composed
    if skip:
        await outbox.mark(services.sessions, skip, "skipped", now)
    if message is None:
        return 0
    if not lease.held():  # another worker may have these jobs by now: let it send them
        log.warning("lease of batch %s ran out before sending; it will be claimed again", batch.batch_id)
        return 0
    try:
        await send(services.mailer, message)
    except PermanentFailure as exc:
        log.warning("email to %s refused for good: %s", batch.to_email, exc)
        await outbox.mark(services.sessions, keep, dead_letters.FAILED, now, error=dead_letters.reason_text(dead_letters.REFUSED, str(exc)))
        return 0
    except TransientFailure as exc:
        log.info("email to %s will be retried: %s", batch.to_email, exc)
        await outbox.retry_later(services.sessions, replace(batch, job_ids=tuple(keep)), services.clock(), str(exc))
        return 0
    except Exception as exc:  # the message cannot be written out, or a bug: the mail server has not accepted it
        await _dead_letter(services, batch, keep, "send", exc)
        return 0
    await sent_log.record(keep, str(message["Message-ID"]), services.clock())
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


Composed = tuple[Message | None, list[int], list[int]]  # (message, job ids it sends, job ids skipped)


async def _compose_all(services: Services, batches: list[outbox.Batch]) -> list[Composed | Exception]:
    """Render every claimed batch with a handful of queries in all (not a handful per email).

    When the claim's rows cannot be read together (one holds a value that cannot be loaded), each
    batch is read on its own, so only the batch that holds it fails. A database error fails the round.
    """
    from feeds_server.notify import digest_email  # digests read their content for the whole claim at once

    if any(b.kind == digest_email.KIND for b in batches):
        return await digest_email.compose_mixed(services, batches, _compose_all)
    try:
        return await _compose_claim(services, batches)
    except DBAPIError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported per batch by _process
        if len(batches) == 1:
            return [exc]
        log.warning("the %d batches of a claim could not be read together (%r): reading them one at a time", len(batches), exc)
    return [(await _compose_all(services, [batch]))[0] for batch in batches]


async def _compose_claim(services: Services, batches: list[outbox.Batch]) -> list[Composed | Exception]:
    job_ids = [j for b in batches for j in b.job_ids]
    author = aliased(User)
    async with account_session(services.sessions) as session:
        rows = (
            await session.execute(
                select(EmailJob, Notification, Post.id, Comment.id, author.name)
                .outerjoin(Notification, Notification.id == EmailJob.notification_id)
                .outerjoin(Post, Post.id == Notification.post_id)
                .outerjoin(Comment, Comment.id == Notification.comment_id)
                .outerjoin(author, author.id == Notification.actor_id)
                .where(EmailJob.id.in_(job_ids))
                .order_by(EmailJob.id)
            )
        ).all()
        user_ids = {b.user_id for b in batches if b.user_id is not None}
        org_ids = {b.org_id for b in batches}
        users = {u.id: u for u in (await session.execute(select(User).where(User.id.in_(user_ids)))).scalars()}
        orgs_ = {o.id: o for o in (await session.execute(select(Org).where(Org.id.in_(org_ids)))).scalars()}
        prefs = {
            (p.org_id, p.user_id): p
            for p in (await session.execute(select(NotificationSettings).where(NotificationSettings.user_id.in_(user_ids)))).scalars()
        }
        members, mutes = await members_and_mutes(session, {(b.org_id, b.user_id) for b in batches if b.kind in outbox.NOTIFICATION_KINDS and b.user_id})
    by_job = {row[0].id: row for row in rows}
    now = services.clock()
    held = _Held()
    out: list[Composed | Exception] = []
    for batch in batches:
        try:
            if batch.kind in outbox.NOTIFICATION_KINDS and (batch.org_id, batch.user_id) not in members:
                held.skip(NOT_A_MEMBER, batch.job_ids)  # they left (or were removed from) the org since
                out.append((None, [], []))
                continue
            mine = [by_job[j] for j in batch.job_ids if j in by_job]
            out.append(_compose(services, batch, mine, users, orgs_, prefs, now, held, mutes.get(batch.org_id, Mutes())))
        except Exception as exc:  # noqa: BLE001 - reported per batch by _process
            out.append(exc)
    await held.apply(services, now)
    return out


class _Held:
    """Jobs of a claim that wait: the person is snoozed (skipped, with why) or in quiet hours
    (postponed to their end). Decided at send time, since the person may have changed their mind."""

    def __init__(self) -> None:
        self.snoozed: list[int] = []
        self.until: dict[datetime, list[int]] = {}
        self.skipped: dict[str, list[int]] = {}

    def skip(self, why: str, job_ids: tuple[int, ...] | list[int]) -> None:
        self.skipped.setdefault(why, []).extend(job_ids)

    async def apply(self, services: Services, now: datetime) -> None:
        if self.snoozed:
            await outbox.mark(services.sessions, self.snoozed, "skipped", now, error="snoozed")
        for why, ids in self.skipped.items():
            await outbox.mark(services.sessions, ids, "skipped", now, error=why)
        for until, ids in sorted(self.until.items()):
            await outbox.postpone(services.sessions, ids, until, "quiet hours")


def _compose(
    services: Services, batch: outbox.Batch, rows: list, users: dict, orgs_: dict, prefs: dict,  # type: ignore[type-arg]
    now: datetime, held: _Held, mutes: Mutes,
) -> Composed:
    if batch.kind == "invitation":
        return invitation_email_from_payload(services.settings, rows[0][0]), list(batch.job_ids), []
    if batch.kind in account_emails.KINDS:
        message = account_emails.compose(services.settings, rows[0][0], users.get(batch.user_id))
        return (message, list(batch.job_ids), []) if message is not None else (None, [], list(batch.job_ids))
    org, user = orgs_.get(batch.org_id), users.get(batch.user_id)
    if org is None or user is None:
        return None, [], list(batch.job_ids)
    pref = Preferences.of(prefs.get((batch.org_id, batch.user_id)), org.time_zone)
    keep, skip, items = [], [], []
    for job, note, post_id, comment_id, author_name in rows:
        # Deleted item (the notification went with it), read in the app already, or a role mention.
        gone = note is None or (note.post_id is not None and post_id is None) or (note.comment_id is not None and comment_id is None)
        if gone or note.read_at is not None or (note.reason or {}).get("code") == reasons.MENTIONED_VIA_ROLE:
            skip.append(job.id)
            continue
        if muted_now(mutes, note):  # muted since it was queued
            held.skip(MUTED, [job.id])
            continue
        at = pref.send_at(note.kind, EMAIL, now)
        if at is None:
            (held.snoozed if pref.wants(note.kind, EMAIL) and pref.snoozed(now) else skip).append(job.id)
            continue
        if at > now:
            held.until.setdefault(at, []).append(job.id)
            continue
        items.append(_item(note, post_id, author_name))
        keep.append(job.id)
    if not items:
        return None, [], skip
    token = unsubscribe_token(services.settings.secret_key, org.id, user.id)
    message = notification_email(services.settings, org, user, items, f"<mention.{org.id}.{user.id}.{batch.batch_id}@feeds.local>", token)
    return message, keep, skip


def _item(note: Notification, post_id: int | None, author_name: str | None) -> dict[str, Any]:
    """One line of a notification email: what it is, its excerpt, and where it leads."""
    data = note.data or {}
    return {
        "kind": note.kind,
        "author": author_name or "Someone",
        "headline": notification_text.headline(note.kind, author_name, data, note.reason),
        "excerpt": data.get("excerpt", ""),
        "post_id": post_id,
        "comment_id": note.comment_id,
    }
