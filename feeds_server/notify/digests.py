"""Queueing digests: each person who chose one gets an email job per period, never two.

The notifier runs `schedule` about once a minute. Its one query reads the settings rows whose next
digest is due (`digest_due_at`, an index of the rows that chose a digest), so a minute with nothing
due costs one index probe. For each, in one transaction for the whole batch: an `email_jobs` row of
kind `digest` named `digest:ORG:USER:<period end>` (a unique key: a second worker, or a worker
killed after its commit and started again, cannot queue the same period twice), and the person's
`digest_sent_until` (the period's end) and `digest_due_at` (the next boundary) moved on. What the
email says is read when it is sent (notify/digest_email.py), so it is never stale.

A row the scheduler has not seen yet (`digest_due_at` NULL: the digest was just turned on, or its
hour, day or zone changed) is scheduled from what it knows: turned on now, so the first digest
covers the time since (or one period, if shorter). A row that cannot be planned (a frequency this
version does not know, channels that cannot be read) is logged and looked at again an hour later,
so it never holds back the rest of the batch.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.domain import digest_periods
from feeds_server.domain.preferences import DIGEST, DIGEST_OFF, EMAIL, Preferences, zone
from feeds_server.runtime.services import Services
from feeds_server.store.models import EmailJob, Membership, NotificationSettings, Org, User
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.notifier")

KIND = "digest"
ROUND_RETRY_SECONDS = 5.0
# A row the scheduler cannot plan is moved this far on, so it neither holds back the rows after it
# nor is read again every minute; a change of the digest setting schedules it afresh at once.
SKIPPED_ROW_RETRY = timedelta(hours=1)


def dedupe_key(org_id: int, user_id: int, period_end: datetime) -> str:
    return f"digest:{org_id}:{user_id}:{digest_periods.iso_utc(period_end)}"


def reset_schedule(row: NotificationSettings, turned_on: bool, now: datetime | None = None) -> None:
    """For the settings route: the digest's frequency, hour, day or zone changed, so the next one
    is worked out again by the scheduler; a digest just turned on covers the time since `now` (or,
    without it, since the scheduler first sees it)."""
    row.digest_due_at = None
    if turned_on:
        row.digest_sent_until = now


@dataclass(frozen=True)
class Plan:
    """What the scheduler does with one person's row: queue a period (or not), and when to look again."""

    period: tuple[datetime, datetime] | None
    sent_until: datetime | None
    due_at: datetime
    send_at: datetime | None  # when the job is due (quiet hours); None: nothing to queue


def plan(row: Any, org_time_zone: str, now: datetime) -> Plan:
    """Pure: the decision for one settings row at `now`."""
    tz = zone(row.time_zone, org_time_zone)
    freq, hour, weekday = row.digest, row.digest_hour, row.digest_weekday
    sent = row.digest_sent_until
    if row.digest_due_at is None and sent is None:
        # Just turned on: the first period runs from now.
        return Plan(None, now, digest_periods.next_boundary(now, freq, hour, weekday, tz), None)
    due = row.digest_due_at if row.digest_due_at is not None else digest_periods.next_boundary(sent, freq, hour, weekday, tz)  # type: ignore[arg-type]
    if due > now:
        return Plan(None, sent, due, None)
    end = digest_periods.latest_boundary(now, freq, hour, weekday, tz)
    following = digest_periods.next_boundary(end, freq, hour, weekday, tz)
    if sent is not None and end <= sent:  # the schedule moved earlier than the last period's end
        return Plan(None, sent, digest_periods.next_boundary(sent, freq, hour, weekday, tz), None)
    period = digest_periods.period_ending(end, sent, freq, hour, weekday, tz)
    send_at = Preferences.of(row, org_time_zone).send_at(DIGEST, EMAIL, now)
    return Plan(period, end, following, send_at)


async def schedule(services: Services, now: datetime | None = None) -> int:
    """Queue every digest due at `now`; how many jobs were queued."""
    queued = 0
    while True:
        n, more = await _schedule_batch(services, now or services.clock())
        queued += n
        if not more:
            return queued


async def _schedule_batch(services: Services, now: datetime) -> tuple[int, bool]:
    ns = NotificationSettings
    stmt = (
        select(ns, Org.time_zone, User.email, Membership.id)
        .join(Org, Org.id == ns.org_id)
        .join(User, User.id == ns.user_id)
        .outerjoin(Membership, (Membership.org_id == ns.org_id) & (Membership.user_id == ns.user_id))
        .where(ns.digest != DIGEST_OFF, or_(ns.digest_due_at.is_(None), ns.digest_due_at <= now))
        .limit(limits.DIGEST_SCHEDULE_BATCH)
        .with_for_update(of=ns, skip_locked=True)
    )
    async with account_session(services.sessions) as session:
        rows = (await session.execute(stmt)).all()
        jobs: list[dict[str, Any]] = []
        moves: list[dict[str, Any]] = []
        for row, org_tz, email, membership in rows:
            try:
                p = plan(row, org_tz, now)
            except Exception:  # noqa: BLE001 - one unreadable row (an unknown frequency, bad channels) skips only itself
                log.exception("digest of user %s in org %s cannot be planned (schedule %r); looking again in %s",
                              row.user_id, row.org_id, row.digest, SKIPPED_ROW_RETRY)
                moves.append({"o": row.org_id, "u": row.user_id, "sent": row.digest_sent_until, "due": now + SKIPPED_ROW_RETRY})
                continue
            if p.period is not None and p.send_at is not None and membership is not None:
                start, end = p.period
                jobs.append({
                    "org_id": row.org_id, "kind": KIND, "user_id": row.user_id, "to_email": email, "notification_id": None,
                    "invitation_id": None, "dedupe_key": dedupe_key(row.org_id, row.user_id, end), "status": "pending",
                    "attempts": 0, "created_at": now, "next_attempt_at": p.send_at,
                    "payload": {"period_start": start.isoformat(), "period_end": end.isoformat(), "frequency": row.digest},
                })
            moves.append({"o": row.org_id, "u": row.user_id, "sent": p.sent_until, "due": p.due_at})
        queued = await _insert_jobs(session, jobs)
        if moves:
            table = ns.__table__
            stmt = (
                update(table)
                .where(table.c.org_id == bindparam("o"), table.c.user_id == bindparam("u"))
                .values(digest_sent_until=bindparam("sent"), digest_due_at=bindparam("due"))
            )
            conn = await session.connection()
            await conn.execute(stmt, moves)
    return queued, len(rows) >= limits.DIGEST_SCHEDULE_BATCH


async def _insert_jobs(session: AsyncSession, jobs: list[dict[str, Any]]) -> int:
    """The jobs, each once per period (a key already taken is a period already queued); how many were new."""
    if not jobs:
        return 0
    table = EmailJob.__table__
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(jobs).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.id)
    return len((await session.execute(stmt)).all())


async def run(services: Services, burst: bool = False, stop: asyncio.Event | None = None) -> int:
    """The notifier's periodic work: digests every minute, dormancy notices every few minutes.

    With `burst`, one pass of each (tests and `notifier --burst`)."""
    from feeds_server.notify import dormancy

    queued = 0
    loop = asyncio.get_running_loop()
    next_dormancy = 0.0
    while stop is None or not stop.is_set():
        try:
            queued += await schedule(services)
            if loop.time() >= next_dormancy:
                await dormancy.notify_dormant(services)
                next_dormancy = loop.time() + limits.DORMANCY_STEP_SECONDS
        except Exception:
            if burst:
                raise
            log.exception("scheduling digests or dormancy notices failed; trying again in %.0f s", ROUND_RETRY_SECONDS)
            await _sleep(ROUND_RETRY_SECONDS, stop)
            continue
        if burst:
            break
        await _sleep(limits.DIGEST_SCHEDULE_SECONDS, stop)
    return queued


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    try:
        await asyncio.wait_for(stop.wait() if stop else asyncio.sleep(seconds), timeout=seconds)
    except TimeoutError:
        pass
