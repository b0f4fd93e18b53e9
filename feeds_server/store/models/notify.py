"""In-app notifications, per-member notification settings, and the email outbox (F-NOTIF-1 … F-NOTIF-3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server.store.base import Base, BigId, OrgOwned, utcnow


class Notification(OrgOwned, Base):
    """Something the user should know about: a mention, or a change to a record they own or follow."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user", "org_id", "user_id", "id"),)

    # No foreign keys, no index on the org alone (migration 0005): rows are written only by the
    # server, in the transaction of what they tell of; a deleted org, user, post or comment takes
    # them with it, and a deleted actor is set to null (triggers, as the foreign keys did).
    org_id: Mapped[int] = mapped_column(BigId, nullable=False)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(BigId)
    post_id: Mapped[int | None] = mapped_column(BigId)
    comment_id: Mapped[int | None] = mapped_column(BigId)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class NotificationSettings(OrgOwned, Base):
    """A member's email preferences in one org (absent row = defaults)."""

    __tablename__ = "notification_settings"
    __table_args__ = (PrimaryKeyConstraint("org_id", "user_id"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    mention_emails: Mapped[bool] = mapped_column(Boolean, default=True)
    batch_window_seconds: Mapped[int] = mapped_column(Integer, default=60)


class EmailJob(OrgOwned, Base):
    """One email to send, written in the transaction of what caused it (the transactional outbox).

    Mention jobs of one user that fall due together go out as one email (batching); `status` moves
    pending → sending (leased to one worker) → sent, or to skipped / failed.
    """

    __tablename__ = "email_jobs"
    __table_args__ = (
        Index("ix_email_jobs_due", "status", "next_attempt_at"),
        Index("ix_email_jobs_user", "org_id", "user_id", "status"),
    )

    # No org for an account's own emails (verification, password reset …: notify/account_emails.py):
    # those rows are written and read only by account-level sessions, which row-level security lets
    # see every row; an org's session never sees them.
    org_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=True, index=True)  # type: ignore[assignment]
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # mention | invitation | an account email's kind
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    to_email: Mapped[str] = mapped_column(String(254))
    notification_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("notifications.id", ondelete="SET NULL"))
    invitation_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("invitations.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    batch_id: Mapped[int | None] = mapped_column(BigId)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
