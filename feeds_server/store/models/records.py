"""CRM records as the feed knows them, who follows them, auto-follow rules, and the note webhook outbox
(F-FOLLOW-1 … F-FOLLOW-10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server import limits
from feeds_server.store.base import Base, BigId, OrgOwned, utcnow


class Record(OrgOwned, Base):
    """What the server keeps of a CRM record: enough for business cards, rules and dormancy."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("org_id", "module", "crm_id"),
        Index("ix_records_dormant", "org_id", "last_activity_at", "id"),
        Index("ix_records_owner", "org_id", "owner_id", "last_activity_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    module: Mapped[str] = mapped_column(String(64))
    crm_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    owner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    creator_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    territory_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("territories.id", ondelete="SET NULL"))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_post_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class Follow(OrgOwned, Base):
    """A user follows a record: by hand, as its owner, or through an auto-follow rule."""

    __tablename__ = "follows"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "record_id", "user_id"),
        Index("ix_follows_user", "org_id", "user_id", "module", "record_id"),
    )

    record_id: Mapped[int] = mapped_column(BigId, ForeignKey("records.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    module: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecordEventSeen(OrgOwned, Base):
    """CRM event ids already applied: a replayed batch creates nothing twice."""

    __tablename__ = "record_events_seen"
    __table_args__ = (PrimaryKeyConstraint("org_id", "event_id"),)

    event_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutoFollowRule(OrgOwned, Base):
    __tablename__ = "auto_follow_rules"
    __table_args__ = (Index("ix_rules_module", "org_id", "module"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    creator_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    description: Mapped[str] = mapped_column(String(limits.MAX_DESCRIPTION_CHARS), default="")
    module: Mapped[str] = mapped_column(String(64))
    criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)
    followers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntegrationWebhook(OrgOwned, Base):
    """Where an integration wants notes sent back (F-FOLLOW-10), and the key that signs them."""

    __tablename__ = "integration_webhooks"

    integration_id: Mapped[int] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))


class WebhookDelivery(OrgOwned, Base):
    """A note to send to the CRM, written with the comment that caused it (an outbox)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    integration_id: Mapped[int] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
