"""An account's own emails, written to the outbox in the transaction of what they tell of.

They name no org (`email_jobs.org_id` is NULL, migration 0010): the row is inserted as a plain
statement, which row-level security lets an account-level transaction write. No link is stored: the
notifier worker signs each one when it writes the email (notify/account_emails.py), so the outbox
holds no secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.store.models import EmailJob, User
from feeds_server.store.scope import allow_cross_org

VERIFY_EMAIL = "verify_email"
PASSWORD_RESET = "password_reset"
ACCOUNT_EXISTS = "account_exists"
SIGN_IN_REFUSED = "signin_refused"
KINDS = frozenset({VERIFY_EMAIL, PASSWORD_RESET, ACCOUNT_EXISTS, SIGN_IN_REFUSED})


async def enqueue(session: AsyncSession, kind: str, user: User, now: datetime, payload: dict[str, Any] | None = None) -> None:
    assert kind in KINDS, kind
    allow_cross_org(session)
    await session.execute(
        insert(EmailJob).values(
            org_id=None, kind=kind, user_id=user.id, to_email=user.email, payload=payload or {}, status="pending",
            attempts=0, created_at=now, next_attempt_at=now,
        )
    )
