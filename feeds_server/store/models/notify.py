"""In-app notifications, what each member chose to hear of and how, mutes, and the email and push
outboxes (F-NOTIF-1 … F-NOTIF-3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server.store.base import Base, BigId, JsonDoc, OrgOwned, utcnow


class Notification(OrgOwned, Base):
    """Something the user should know about: a mention, or a change to a record they own or follow."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user", "org_id", "user_id", "id"),
        Index(
            "ix_notifications_record", "org_id", "user_id", "record_id", "id",
            postgresql_where=text("record_id IS NOT NULL"), sqlite_where=text("record_id IS NOT NULL"),
        ),
    )

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
    # Why this person got it ({"code": "follower_rule", "rule_id": …}: domain/reasons.py).
    reason: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    # A record change's record: a burst of changes to it merges into one unread notification.
    record_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]


class NotificationSettings(OrgOwned, Base):
    """What a member chose to hear of in one org, and how (absent row = defaults: domain/preferences.py).

    `mention_emails` is the mention kind's email channel (kept as its own column: one-click
    unsubscribe turns it off); `channels` overrides the defaults of every other kind and channel.
    """

    __tablename__ = "notification_settings"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "user_id"),
        Index("ix_notification_settings_digest_due", "digest_due_at", postgresql_where=text("digest <> 'off'"), sqlite_where=text("digest <> 'off'")),
        Index(
            "ix_notification_settings_dormant", "org_id", "dormant_days",
            postgresql_where=text("dormant_days IS NOT NULL"), sqlite_where=text("dormant_days IS NOT NULL"),
        ),
        # Who chose group posts at all (off by default): actions/notifications.py `group_posts_chosen`.
        Index(
            "ix_notification_settings_group_post", "org_id",
            postgresql_where=text("channels ? 'group_post'"), sqlite_where=text("""channels LIKE '%"group_post"%'"""),
        ),
    )

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    mention_emails: Mapped[bool] = mapped_column(Boolean, default=True)
    batch_window_seconds: Mapped[int] = mapped_column(Integer, default=60)
    channels: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    snooze_until: Mapped[datetime | None]
    quiet_start_minute: Mapped[int | None] = mapped_column(Integer)
    quiet_end_minute: Mapped[int | None] = mapped_column(Integer)
    time_zone: Mapped[str | None] = mapped_column(String(64))  # None: the org's
    digest: Mapped[str] = mapped_column(String(8), default="off", server_default="off")
    digest_hour: Mapped[int] = mapped_column(Integer, default=8, server_default="8")
    digest_weekday: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    digest_sent_until: Mapped[datetime | None]
    # When the next digest falls due (None: not yet scheduled; notify/digests.py sets it).
    digest_due_at: Mapped[datetime | None]
    dormant_days: Mapped[int | None] = mapped_column(Integer)
    # When dormancy was turned on or its days changed: only records that go quiet after it are told.
    dormant_since: Mapped[datetime | None]
    record_merge_seconds: Mapped[int] = mapped_column(Integer, default=60, server_default="60")


class Mute(OrgOwned, Base):
    """A member silenced a record, a group or a post's comment thread (`target_kind`)."""

    __tablename__ = "mutes"
    __table_args__ = (PrimaryKeyConstraint("org_id", "user_id", "target_kind", "target_id"),)

    org_id: Mapped[int] = mapped_column(BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    target_kind: Mapped[str] = mapped_column(String(8))  # record | group | post
    target_id: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DormancyNotice(OrgOwned, Base):
    """A follower was told a record went dormant; the record's `last_activity_at` names the crossing,
    so each crossing is told once."""

    __tablename__ = "dormancy_notices"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "record_id", "user_id", "last_activity_at"),
        Index("ix_dormancy_notices_user", "org_id", "user_id", "created_at"),
    )

    org_id: Mapped[int] = mapped_column(BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False)
    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    last_activity_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PushSubscription(OrgOwned, Base):
    """A browser's Web Push subscription (RFC 8030, keys of RFC 8291) for one member in one org.

    One row per endpoint and org: a browser subscribed again by someone else is theirs from then on.
    """

    __tablename__ = "push_subscriptions"
    __table_args__ = (
        Index("uq_push_subscriptions_endpoint", "org_id", "endpoint_hash", unique=True),
        Index("ix_push_subscriptions_user", "org_id", "user_id"),
    )

    org_id: Mapped[int] = mapped_column(BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(Text)
    endpoint_hash: Mapped[str] = mapped_column(String(64))
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sent_at: Mapped[datetime | None]


class PushJob(OrgOwned, Base):
    """One push to one subscription, written in the transaction of the notification (the outbox).

    `status` moves pending → sending (leased) → sent, or to skipped (the person was online, muted,
    or the notification was read) / failed; never queued twice for a notification and subscription.
    """

    __tablename__ = "push_jobs"
    __table_args__ = (
        Index("ix_push_jobs_due", "status", "next_attempt_at"),
        Index("ix_push_jobs_user", "org_id", "user_id", "status"),
        Index(
            "uq_push_jobs_notification", "org_id", "notification_id", "subscription_id", unique=True,
            postgresql_where=text("notification_id IS NOT NULL"), sqlite_where=text("notification_id IS NOT NULL"),
        ),
    )

    org_id: Mapped[int] = mapped_column(BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(BigId, ForeignKey("push_subscriptions.id", ondelete="CASCADE"), index=True)
    notification_id: Mapped[int | None] = mapped_column(BigId)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class Presence(OrgOwned, Base):
    """A member has a live connection to `node` until `live_until` (renewed by the node while it lasts)."""

    __tablename__ = "presence"
    __table_args__ = (PrimaryKeyConstraint("org_id", "user_id", "node"),)

    org_id: Mapped[int] = mapped_column(BigId, nullable=False)
    user_id: Mapped[int] = mapped_column(BigId)
    node: Mapped[str] = mapped_column(String(64))
    live_until: Mapped[datetime]


class EmailJob(OrgOwned, Base):
    """One email to send, written in the transaction of what caused it (the transactional outbox).

    Mention jobs of one user that fall due together go out as one email (batching); `status` moves
    pending → sending (leased to one worker) → sent, or to skipped / failed.
    """

    __tablename__ = "email_jobs"
    __table_args__ = (
        Index("ix_email_jobs_due", "status", "next_attempt_at"),
        Index("ix_email_jobs_user", "org_id", "user_id", "status"),
        Index("uq_email_jobs_dedupe_key", "dedupe_key", unique=True),
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
    # Unique when set: a digest is queued once per person and period (`digest:ORG:USER:PERIOD-END`).
    dedupe_key: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    batch_id: Mapped[int | None] = mapped_column(BigId)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    message_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
