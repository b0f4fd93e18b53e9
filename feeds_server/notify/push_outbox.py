"""The push outbox as the worker sees it: claim due pushes safely, read what deciding on them needs,
record what happened.

Claiming marks jobs `sending` with a lease in one short transaction (`FOR UPDATE SKIP LOCKED` on
PostgreSQL; SQLite's write lock serializes claims), so several workers can run. A worker that dies
leaves its jobs leased; once the lease runs out another takes them again. Claiming does not read
payloads: a payload that cannot be read stops only its own job (a dead letter).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, case, delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from feeds_server import limits
from feeds_server.domain import retry
from feeds_server.notify import dead_letters
from feeds_server.store.models import Notification, NotificationSettings, Org, Presence, PushJob, PushSubscription
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.notifier")

PENDING, SENDING, SENT, SKIPPED = "pending", "sending", "sent", "skipped"


@dataclass(frozen=True)
class Work:
    """A claimed push with everything the worker decides on: where it goes, whether its
    notification is still unread, the person's settings and whether they are online now."""

    id: int
    org_id: int
    user_id: int
    subscription_id: int
    attempts: int
    payload: dict[str, Any]
    endpoint: str | None  # None: the subscription is gone
    p256dh: str
    auth: str
    subscriber_id: int | None
    notification_id: int | None
    notification_found: bool
    read: bool
    settings: NotificationSettings | None
    org_time_zone: str
    online_until: datetime | None  # the latest `live_until` of the person's presence in the org, when online
    last_error: str | None = None

    @property
    def online(self) -> bool:
        return self.online_until is not None


def _due(now: datetime) -> Any:
    return or_(
        (PushJob.status == PENDING) & (PushJob.next_attempt_at <= now),
        (PushJob.status == SENDING) & (PushJob.lease_until < now),
    )


async def claim(sessions: async_sessionmaker[AsyncSession], now: datetime, lease_seconds: float, limit: int) -> list[int]:
    """Lease up to `limit` due pushes (and ones whose worker died mid-send) to this worker."""
    async with account_session(sessions) as session:
        rows = (await session.execute(
            select(PushJob.id, PushJob.attempts).where(_due(now)).order_by(PushJob.next_attempt_at, PushJob.id)
            .limit(limit).with_for_update(skip_locked=True)
        )).all()
        if rows:
            stmt = (
                update(PushJob).where(PushJob.id == bindparam("jid"))
                .values(status=SENDING, lease_until=now + timedelta(seconds=lease_seconds), attempts=bindparam("att"))
            )
            conn = await session.connection()
            await conn.execute(stmt, [{"jid": r.id, "att": r.attempts + 1} for r in rows])
    return [r.id for r in rows]


async def load(sessions: async_sessionmaker[AsyncSession], job_ids: list[int], now: datetime) -> list[Work | tuple[int, Exception]]:
    """The claimed jobs in one query. When they cannot be read together (one holds a payload that
    cannot be loaded), each is read alone and the unreadable ones come back as (id, error)."""
    try:
        return list(await _load(sessions, job_ids, now))
    except DBAPIError:
        raise
    except Exception as exc:  # noqa: BLE001 - narrowed down to the job below
        if len(job_ids) == 1:
            return [(job_ids[0], exc)]
        log.warning("%d claimed pushes could not be read together (%r): reading them one at a time", len(job_ids), exc)
    out: list[Work | tuple[int, Exception]] = []
    for job_id in job_ids:
        out += await load(sessions, [job_id], now)
    return out


async def _load(sessions: async_sessionmaker[AsyncSession], job_ids: list[int], now: datetime) -> list[Work]:
    online = (
        select(func.max(Presence.live_until))
        .where(Presence.org_id == PushJob.org_id, Presence.user_id == PushJob.user_id, Presence.live_until > now)
        .correlate(PushJob)
        .scalar_subquery()
    )
    stmt = (
        select(
            PushJob, PushSubscription.endpoint, PushSubscription.p256dh, PushSubscription.auth, PushSubscription.user_id,
            Notification.id, Notification.read_at, NotificationSettings, Org.time_zone, online.label("online"),
        )
        .outerjoin(PushSubscription, PushSubscription.id == PushJob.subscription_id)
        .outerjoin(Notification, Notification.id == PushJob.notification_id)
        .outerjoin(NotificationSettings, (NotificationSettings.org_id == PushJob.org_id) & (NotificationSettings.user_id == PushJob.user_id))
        .outerjoin(Org, Org.id == PushJob.org_id)
        .where(PushJob.id.in_(job_ids), PushJob.status == SENDING)
        .order_by(PushJob.id)
    )
    async with account_session(sessions) as session:
        rows = (await session.execute(stmt)).all()
        session.expunge_all()
    return [
        Work(
            job.id, job.org_id, job.user_id, job.subscription_id, job.attempts, dict(job.payload or {}),
            endpoint, p256dh or "", auth or "", subscriber, job.notification_id, note_id is not None, read_at is not None,
            settings, zone or "UTC", _aware(online_until), job.last_error,
        )
        for job, endpoint, p256dh, auth, subscriber, note_id, read_at, settings, zone, online_until in rows
    ]


def _aware(at: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (UTC as written); the worker compares aware ones."""
    return at.replace(tzinfo=timezone.utc) if at is not None and at.tzinfo is None else at


async def mark(
    sessions: async_sessionmaker[AsyncSession], job_ids: list[int], status: str, now: datetime, error: str | None = None
) -> None:
    """Skipped or failed (a dead letter's `next_attempt_at` is when it failed)."""
    if not job_ids:
        return
    values: dict[str, Any] = {"status": status, "lease_until": None, "payload": {}}
    if status == dead_letters.FAILED:
        values["next_attempt_at"] = now
        values.pop("payload")  # kept so an operator can put it back
    if error is not None:
        values["last_error"] = error[: dead_letters.MAX_ERROR_CHARS]
    async with account_session(sessions) as session:
        await session.execute(update(PushJob).where(PushJob.id.in_(job_ids), PushJob.status == SENDING).values(**values))


async def postpone(sessions: async_sessionmaker[AsyncSession], work: Work, at: datetime, note: str | None = None) -> None:
    """Not yet (quiet hours began after it was queued, the person seemed
    online): due again at `at`, the attempt not counted; `note` is kept as its last_error."""
    values: dict[str, Any] = {"status": PENDING, "lease_until": None, "next_attempt_at": at, "attempts": max(work.attempts - 1, 0)}
    if note is not None:
        values["last_error"] = note
    async with account_session(sessions) as session:
        await session.execute(update(PushJob).where(PushJob.id == work.id, PushJob.status == SENDING).values(**values))


async def give_back(sessions: async_sessionmaker[AsyncSession], job_ids: list[int], at: datetime) -> None:
    """Claimed pushes that did not get a slot of their push service in time (or the worker is
    stopping): due again at `at`, the claim's attempt not counted, all in one statement."""
    if not job_ids:
        return
    async with account_session(sessions) as session:
        await session.execute(
            update(PushJob).where(PushJob.id.in_(job_ids), PushJob.status == SENDING)
            .values(status=PENDING, lease_until=None, next_attempt_at=at, attempts=case((PushJob.attempts > 0, PushJob.attempts - 1), else_=0))
        )


def backoff(attempts: int) -> float:
    """Seconds before a failed push is tried again (domain/retry.py: doubling, capped, equal jitter)."""
    return retry.backoff_seconds(attempts, limits.PUSH_RETRY_BASE_SECONDS, limits.PUSH_RETRY_MAX_SECONDS)


async def retry_later(sessions: async_sessionmaker[AsyncSession], work: Work, now: datetime, error: str, retry_after: float | None) -> None:
    if work.attempts >= limits.PUSH_MAX_ATTEMPTS:
        reason = dead_letters.reason_text(dead_letters.GAVE_UP, f"after {work.attempts} attempts: {error}")
        await mark(sessions, [work.id], dead_letters.FAILED, now, error=reason)
        return
    wait = max(backoff(work.attempts), retry_after or 0.0)
    async with account_session(sessions) as session:
        await session.execute(
            update(PushJob).where(PushJob.id == work.id, PushJob.status == SENDING)
            .values(status=PENDING, lease_until=None, next_attempt_at=now + timedelta(seconds=wait), last_error=error[: dead_letters.MAX_ERROR_CHARS])
        )


async def remove_subscription(sessions: async_sessionmaker[AsyncSession], work: Work, detail: str) -> None:
    """The push service no longer knows this browser (404/410): the subscription goes, and with it
    (the foreign key cascades) every push still waiting for it."""
    log.info("push subscription %s of org %s is gone (%s): removed", work.subscription_id, work.org_id, detail)
    async with account_session(sessions) as session:
        await session.execute(delete(PushSubscription).where(PushSubscription.id == work.subscription_id))


class Owners:
    """Whether each push's browser is still its person's, read just before sending: the checks asked
    for while one query runs are answered together by the next (as SentLog groups its writes)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._pending: list[tuple[int, asyncio.Future[int | None]]] = []
        self._reader: asyncio.Task[None] | None = None

    async def still_subscribed(self, work: Work) -> bool:
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._pending.append((work.subscription_id, future))
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())
        return await future == work.user_id

    async def _read(self) -> None:
        while self._pending:
            items, self._pending = self._pending, []
            stmt = select(PushSubscription.id, PushSubscription.user_id).where(PushSubscription.id.in_({sid for sid, _ in items}))
            try:
                async with account_session(self.sessions) as session:
                    owners: dict[int, int] = {row.id: row.user_id for row in await session.execute(stmt)}
            except Exception as exc:  # the callers see it; their leases make the pushes retry
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for sid, future in items:
                if not future.done():
                    future.set_result(owners.get(sid))


class SentLog:
    """Records pushes right after the push service accepted them, many per transaction (group
    commit, as the email outbox does): each caller waits until its own is committed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._pending: list[tuple[int, int, datetime, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, work: Work, now: datetime) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((work.id, work.subscription_id, now, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            items, self._pending = self._pending, []
            sent = (
                update(PushJob).where(PushJob.id == bindparam("jid"), PushJob.status == SENDING)
                .values(status=SENT, sent_at=bindparam("at"), lease_until=None, payload={})
            )
            last = update(PushSubscription).where(PushSubscription.id == bindparam("sid")).values(last_sent_at=bindparam("at"))
            try:
                async with account_session(self.sessions) as session:
                    conn = await session.connection()
                    await conn.execute(sent, [{"jid": jid, "at": at} for jid, _, at, _ in items])
                    subs = {sid: at for _, sid, at, _ in items}
                    await conn.execute(last, [{"sid": sid, "at": at} for sid, at in subs.items()])
            except Exception as exc:  # the callers see it; their leases make the pushes retry
                for *_, future in items:
                    future.set_exception(exc)
                continue
            for *_, future in items:
                future.set_result(None)
