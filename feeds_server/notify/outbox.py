"""The email outbox as the worker sees it: claim due work safely, record what happened.

Claiming marks jobs `sending` with a lease, in a short transaction; several workers can run at
once: on PostgreSQL rows are taken with `FOR UPDATE SKIP LOCKED`, on SQLite the write lock taken at
BEGIN serializes claims. A worker that dies while sending leaves its jobs leased; when the lease
runs out another worker takes the same batch again (same batch, same Message-ID). Claiming does not
read payloads: a payload that cannot be read stops only its own batch (notify/dead_letters.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer

from feeds_server import limits
from feeds_server.domain import preferences, retry
from feeds_server.notify import dead_letters
from feeds_server.store.models import EmailJob, PushJob
from feeds_server.store.scope import account_session

log = logging.getLogger("feeds_server.notifier")


# The kinds of email that tell of notifications: a person's due ones go out together, as one email.
NOTIFICATION_KINDS = frozenset(preferences.KINDS) - {preferences.DIGEST}


@dataclass(frozen=True)
class Batch:
    """Jobs that go out as one email: a batch of one user's notifications, or one invitation."""

    batch_id: int
    org_id: int
    kind: str
    to_email: str
    user_id: int | None
    job_ids: tuple[int, ...]
    attempts: int


async def claim(sessions: async_sessionmaker[AsyncSession], now: datetime, lease_seconds: float, max_batches: int = 20) -> list[Batch]:
    """Take up to `max_batches` due batches for this worker."""
    lease_until = now + timedelta(seconds=lease_seconds)
    batches: list[Batch] = []
    async with account_session(sessions) as session:
        leaders = (
            await session.execute(
                select(EmailJob)
                .where(
                    or_(
                        (EmailJob.status == "pending") & (EmailJob.next_attempt_at <= now),
                        (EmailJob.status == "sending") & (EmailJob.lease_until < now),
                    )
                )
                .order_by(EmailJob.next_attempt_at, EmailJob.id)
                .limit(max_batches)
                .options(defer(EmailJob.payload))
                .with_for_update(skip_locked=True)
            )
        ).scalars().all()
        groups = await _batch_groups(session, list(leaders))
        rows = []
        for leader, jobs in groups:
            # A batch is named after one of its jobs (its Message-ID comes from the name). A retried
            # batch keeps its name only while it holds that job: when two workers split its jobs,
            # only one email can carry the name.
            ids = {j.id for j in jobs}
            batch_id = leader.batch_id if leader.batch_id in ids else min(ids)
            attempts = max(j.attempts for j in jobs) + 1
            rows += [{"jid": j.id, "bid": batch_id, "att": attempts} for j in jobs]
            batches.append(
                Batch(batch_id, leader.org_id, leader.kind, leader.to_email, leader.user_id, tuple(sorted(j.id for j in jobs)), attempts)
            )
        if rows:
            stmt = (
                update(EmailJob)
                .where(EmailJob.id == bindparam("jid"))
                .values(status="sending", lease_until=lease_until, batch_id=bindparam("bid"), attempts=bindparam("att"))
            )
            conn = await session.connection()
            await conn.execute(stmt, rows)
    return batches


async def _batch_groups(session: AsyncSession, leaders: list[EmailJob]) -> list[tuple[EmailJob, list[EmailJob]]]:
    """Each leader with the jobs that go out with it, gathered in two queries for all leaders.

    A re-claimed batch keeps its jobs; a new batch of notifications takes all the user's pending ones.
    """
    reclaimed = {j.batch_id for j in leaders if j.batch_id is not None and j.status == "sending"}
    users = {(j.org_id, j.user_id) for j in leaders if j.kind in NOTIFICATION_KINDS} - {
        (j.org_id, j.user_id) for j in leaders if j.batch_id in reclaimed and j.status == "sending"
    }
    by_batch: dict[int, list[EmailJob]] = {}
    if reclaimed:
        stmt = (
            select(EmailJob)
            .where(EmailJob.batch_id.in_(reclaimed), EmailJob.status == "sending")
            .options(defer(EmailJob.payload))
            .with_for_update(skip_locked=True)
        )
        for job in (await session.execute(stmt)).scalars():
            by_batch.setdefault(job.batch_id, []).append(job)  # type: ignore[arg-type]
    by_user: dict[tuple[int, int | None], list[EmailJob]] = {}
    if users:
        stmt = (
            select(EmailJob)
            .where(EmailJob.kind.in_(sorted(NOTIFICATION_KINDS)), EmailJob.status == "pending", EmailJob.user_id.in_({u for _, u in users}))
            .options(defer(EmailJob.payload))
            .with_for_update(skip_locked=True)
        )
        for job in (await session.execute(stmt)).scalars():
            if (job.org_id, job.user_id) in users:
                by_user.setdefault((job.org_id, job.user_id), []).append(job)
    out: list[tuple[EmailJob, list[EmailJob]]] = []
    taken: set[int] = set()
    for leader in leaders:
        if leader.id in taken:
            continue
        if leader.batch_id in reclaimed and leader.status == "sending":
            jobs = by_batch.get(leader.batch_id, [leader])  # type: ignore[arg-type]
        elif leader.kind in NOTIFICATION_KINDS:
            jobs = by_user.get((leader.org_id, leader.user_id), []) or [leader]
        else:
            jobs = [leader]
        jobs = [j for j in jobs if j.id not in taken]
        if not jobs:
            continue
        taken.update(j.id for j in jobs)
        out.append((leader, jobs))
    return out


async def jobs(sessions: async_sessionmaker[AsyncSession], job_ids: tuple[int, ...]) -> list[EmailJob]:
    async with account_session(sessions) as session:
        return list((await session.execute(select(EmailJob).where(EmailJob.id.in_(job_ids)).order_by(EmailJob.id))).scalars())


async def mark(
    sessions: async_sessionmaker[AsyncSession], job_ids: tuple[int, ...] | list[int], status: str, now: datetime,
    message_id: str | None = None, error: str | None = None,
) -> None:
    if not job_ids:
        return
    values: dict[str, object] = {"status": status, "lease_until": None}
    if status == "sent":
        # The payload may hold an invitation's link token: not kept once the email is out.
        values.update(sent_at=now, message_id=message_id, payload={})
    if status == dead_letters.FAILED:
        values["next_attempt_at"] = now  # a dead letter's is when it failed
    if error is not None:
        values["last_error"] = error[: dead_letters.MAX_ERROR_CHARS]
    stmt = update(EmailJob).where(EmailJob.id.in_(list(job_ids)), EmailJob.status == "sending").values(**values)
    async with account_session(sessions) as session:
        # A Core-level statement on the session's connection: recording a send is the hot path.
        conn = await session.connection()
        await conn.execute(stmt)


async def postpone(sessions: async_sessionmaker[AsyncSession], job_ids: list[int], until: datetime, why: str) -> None:
    """Give leased jobs back, due again at `until` (the end of the person's quiet hours), the
    claim's attempt not counted: waiting is not failing, and `EMAIL_MAX_ATTEMPTS` counts failures."""
    if not job_ids:
        return
    async with account_session(sessions) as session:
        await session.execute(
            update(EmailJob)
            .where(EmailJob.id.in_(job_ids), EmailJob.status == "sending")
            .values(
                status="pending", lease_until=None, next_attempt_at=until, last_error=why,
                attempts=case((EmailJob.attempts > 0, EmailJob.attempts - 1), else_=0),
            )
        )


def backoff(attempts: int) -> float:
    """Seconds before a failed email is tried again (domain/retry.py: doubling, capped, equal jitter)."""
    return retry.backoff_seconds(attempts, limits.EMAIL_RETRY_BASE_SECONDS, limits.EMAIL_RETRY_MAX_SECONDS)


async def retry_later(sessions: async_sessionmaker[AsyncSession], batch: Batch, now: datetime, error: str) -> None:
    if batch.attempts >= limits.EMAIL_MAX_ATTEMPTS:
        reason = dead_letters.reason_text(dead_letters.GAVE_UP, f"after {batch.attempts} attempts: {error}")
        await mark(sessions, batch.job_ids, dead_letters.FAILED, now, error=reason)
        return
    async with account_session(sessions) as session:
        await session.execute(
            update(EmailJob)
            .where(EmailJob.id.in_(list(batch.job_ids)), EmailJob.status == "sending")
            .values(status="pending", lease_until=None, next_attempt_at=now + timedelta(seconds=backoff(batch.attempts)), last_error=error[:2000])
        )


class SentLog:
    """Records sends right after the mail server accepted them, many per transaction.

    Each caller waits until its own send is committed; sends that complete while a commit is in
    flight are committed together in the next one (group commit), so recording stays immediate
    for the caller without a transaction per email.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._pending: list[tuple[list[int], str, datetime, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, job_ids: list[int], message_id: str, now: datetime) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((job_ids, message_id, now, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            items, self._pending = self._pending, []
            rows = [{"jid": jid, "mid": mid, "at": at} for ids, mid, at, _ in items for jid in ids]
            stmt = (
                update(EmailJob)
                .where(EmailJob.id == bindparam("jid"), EmailJob.status == "sending")
                .values(status="sent", sent_at=bindparam("at"), message_id=bindparam("mid"), lease_until=None, payload={})
            )
            try:
                async with account_session(self.sessions) as session:
                    conn = await session.connection()
                    await conn.execute(stmt, rows)
            except Exception as exc:  # the callers see it; their leases make the batches retry
                for *_, future in items:
                    future.set_exception(exc)
                continue
            for *_, future in items:
                future.set_result(None)


class Lease:
    """Keeps a claim's jobs leased while they go out (emails, or pushes with `table=PushJob`).

    Renewed every third of the lease, so a worker that is slow (a slow mail server, a long claim
    sent a few at a time) keeps its jobs and no other worker sends them too; a worker that dies
    stops renewing, and its jobs are claimed again once the lease runs out. `held()` is False when
    renewals have failed for so long that the lease may have passed to another worker: then no new
    send starts (the jobs stay leased and are claimed again later).
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime], job_ids: list[int], seconds: float, claimed_at: float,
        table: type[EmailJob] | type[PushJob] = EmailJob,
    ) -> None:
        self.sessions, self.clock, self.job_ids, self.seconds, self.table = sessions, clock, job_ids, seconds, table
        self.valid_until = claimed_at + seconds  # monotonic: taken before the claim, so never late
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "Lease":
        self._task = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def held(self) -> bool:
        """At least a third of the lease left: long enough for a send to start and finish."""
        return time.monotonic() < self.valid_until - self.seconds / 3

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            started = time.monotonic()
            jobs = self.table
            stmt = (
                update(jobs)
                .where(jobs.id.in_(self.job_ids), jobs.status == "sending")
                .values(lease_until=self.clock() + timedelta(seconds=self.seconds))
            )
            try:
                async with account_session(self.sessions) as session:
                    await session.execute(stmt)
            except Exception:  # the database may be briefly away: held() stops new sends in time
                log.warning("could not renew the lease of %d %s", len(self.job_ids), self.table.__tablename__, exc_info=True)
                continue
            self.valid_until = started + self.seconds
