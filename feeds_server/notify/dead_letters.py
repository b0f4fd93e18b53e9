"""Dead letters: emails, web pushes, CRM webhook calls and file previews that will not be tried again unless an operator says so.

A job of any outbox ends `failed` when the mail server, the push service or the CRM refused it for good (for a
preview: the file is a decompression bomb, broken, or too slow to decode), when its retries ran out,
when its integration was revoked, or when building or sending it raised an error
nobody planned for (a bug, a value stored before a rule existed). Such a job is set aside at once,
so one bad job never stops the worker nor holds back the jobs claimed with it. Its `last_error`
starts with the reason (`error: …`, `refused: …`, `gave_up: …`, `revoked: …`) and its
`next_attempt_at` says when it failed.

Operators see them in `/metrics` (`feeds_outbox_dead_letters`, read from the database at each
scrape) and with `feeds-server notifier --failed`, which can also put them back (`--retry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from feeds_server.store.models import Attachment, EmailJob, Org, PreviewJob, PushJob, WebhookDelivery
from feeds_server.store.scope import account_session
from feeds_server.domain.numbers import is_digits

FAILED = "failed"
ERROR = "error"  # building or sending raised an unexpected error
REFUSED = "refused"  # the mail server (5xx), the push service or the CRM (4xx) said no for good
GAVE_UP = "gave_up"  # every attempt failed
REVOKED = "revoked"  # the integration was revoked before the call went out
OTHER = "other"  # failed before reasons were written this way
REASONS = (ERROR, REFUSED, GAVE_UP, REVOKED)
OUTBOXES: dict[str, Any] = {"email": EmailJob, "push": PushJob, "webhook": WebhookDelivery, "preview": PreviewJob}
MAX_ERROR_CHARS = 2_000


def reason_text(reason: str, detail: str) -> str:
    """What `last_error` holds: the reason first, so metrics and the listing can read it back."""
    return f"{reason}: {detail}"[:MAX_ERROR_CHARS]


def reason_of(last_error: str | None) -> str:
    head = (last_error or "").split(":", 1)[0]
    return head if head in REASONS else OTHER


def unexpected(where: str, exc: BaseException) -> str:
    return reason_text(ERROR, f"{where}: {exc!r}")


@dataclass(frozen=True)
class DeadLetter:
    outbox: str
    id: int
    org: str | None  # the org's slug; None for an account's own email
    kind: str
    failed_at: datetime
    attempts: int
    error: str

    @property
    def ref(self) -> str:
        """How `--retry` names it: the outbox and the id (the two outboxes number their jobs apart)."""
        return f"{self.outbox}:{self.id}"


async def counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """(outbox, reason) -> dead letters now, one indexed scan of each outbox's failed rows."""
    out: dict[tuple[str, str], int] = {}
    for name, model in OUTBOXES.items():
        labelled = [*REASONS, OTHER]
        columns = [func.coalesce(func.sum(case((model.last_error.like(f"{r}:%"), 1), else_=0)), 0) for r in REASONS]
        row = (await session.execute(select(func.count(), *columns).where(model.status == FAILED))).one()
        total, per_reason = int(row[0]), [int(n) for n in row[1:]]
        for reason, n in zip(labelled, [*per_reason, total - sum(per_reason)], strict=True):
            out[(name, reason)] = n
    return out


async def listing(sessions: async_sessionmaker[AsyncSession]) -> list[DeadLetter]:
    """Every dead letter of every outbox, oldest failure first."""
    letters: list[DeadLetter] = []
    async with account_session(sessions) as session:
        emails = await session.execute(
            select(EmailJob.id, Org.slug, EmailJob.kind, EmailJob.next_attempt_at, EmailJob.attempts, EmailJob.last_error)
            .outerjoin(Org, Org.id == EmailJob.org_id)
            .where(EmailJob.status == FAILED)
        )
        letters += [DeadLetter("email", *row[:5], row[5] or "") for row in emails]
        hooks = await session.execute(
            # Not the payload: a listing of what went wrong must not read what may have made it go wrong.
            select(WebhookDelivery.id, Org.slug, WebhookDelivery.next_attempt_at, WebhookDelivery.attempts, WebhookDelivery.last_error)
            .outerjoin(Org, Org.id == WebhookDelivery.org_id)
            .where(WebhookDelivery.status == FAILED)
        )
        letters += [DeadLetter("webhook", row[0], row[1], "note", *row[2:4], row[4] or "") for row in hooks]
        previews = await session.execute(
            select(PreviewJob.id, Org.slug, PreviewJob.next_attempt_at, PreviewJob.attempts, PreviewJob.last_error)
            .outerjoin(Org, Org.id == PreviewJob.org_id)
            .where(PreviewJob.status == FAILED)
        )
        letters += [DeadLetter("preview", row[0], row[1], "thumbnail", *row[2:4], row[4] or "") for row in previews]
        pushes = await session.execute(
            select(PushJob.id, Org.slug, PushJob.next_attempt_at, PushJob.attempts, PushJob.last_error)
            .outerjoin(Org, Org.id == PushJob.org_id)
            .where(PushJob.status == FAILED)
        )
        letters += [DeadLetter("push", row[0], row[1], "push", *row[2:4], row[4] or "") for row in pushes]
    return sorted(letters, key=lambda d: (d.failed_at, d.outbox, d.id))


async def retry(sessions: async_sessionmaker[AsyncSession], refs: list[str], now: datetime) -> int:
    """Put dead letters back in their outbox, due now with a fresh count of attempts. `refs` are
    `email:ID`, `push:ID`, `webhook:ID`, `preview:ID` or `all`; returns how many were put back. ValueError for a bad ref."""
    wanted: dict[str, set[int] | None] = {}
    for ref in refs:
        if ref == "all":
            wanted = dict.fromkeys(OUTBOXES)
            break
        outbox, _, raw_id = ref.partition(":")
        if outbox not in OUTBOXES or not is_digits(raw_id):
            raise ValueError(f"not a dead letter's name: {ref!r} (write email:ID, push:ID, webhook:ID, preview:ID or all)")
        ids = wanted.setdefault(outbox, set())
        assert ids is not None
        ids.add(int(raw_id))
    put_back = 0
    async with account_session(sessions) as session:
        for outbox, ids in wanted.items():
            model = OUTBOXES[outbox]
            stmt = update(model).where(model.status == FAILED)
            if ids is not None:
                stmt = stmt.where(model.id.in_(sorted(ids)))
            if model is PreviewJob:  # its attachment waits for a thumbnail again
                again = select(PreviewJob.attachment_id).where(stmt.whereclause)
                await session.execute(update(Attachment).where(Attachment.id.in_(again)).values(preview_state="pending"))
            lease = "leased_until" if model is PreviewJob else "lease_until"
            result = await session.execute(stmt.values(status="pending", attempts=0, next_attempt_at=now, **{lease: None}))
            put_back += int(result.rowcount)  # type: ignore[attr-defined]
    return put_back
