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
        Index("ix_records_module_activity", "org_id", "module", "last_activity_at"),
    )

    # No index on the org alone (migration 0009): the unique key begins with it.
    org_id: Mapped[int] = mapped_column(BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    module: Mapped[str] = mapped_column(String(limits.MAX_MODULE_CHARS))
    crm_id: Mapped[str] = mapped_column(String(limits.MAX_CRM_ID_CHARS))
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    owner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    creator_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    territory_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("territories.id", ondelete="SET NULL"))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The fields shown on the business card, in order (JSONB does not keep the order of `fields`).
    key_fields: Mapped[list[Any]] = mapped_column(default=list)
    last_post_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class Follow(OrgOwned, Base):
    """A user follows a record: by hand, as its owner, or through an auto-follow rule.

    `last_activity_at` copies the record's, so "dormant records" and "followed by me" are index range
    scans over one user's follows, whatever the size of the org (F-FOLLOW-8, F-FOLLOW-9).
    """

    __tablename__ = "follows"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "record_id", "user_id"),
        Index("ix_follows_user_module", "org_id", "user_id", "module", "record_id"),
        Index("ix_follows_dormant", "org_id", "user_id", "last_activity_at", "record_id"),
        Index("ix_follows_dormant_module", "org_id", "user_id", "module", "last_activity_at", "record_id"),
    )

    # No foreign keys (migration 0006): follows are written only by the server, which locks the
    # record and the user as the keys' checks did; a deleted org, record or user takes its follows
    # with it (a trigger). No index on the org alone: the ones above all begin with it (0005).
    org_id: Mapped[int] = mapped_column(BigId, nullable=False)
    record_id: Mapped[int] = mapped_column(BigId)
    user_id: Mapped[int] = mapped_column(BigId)
    module: Mapped[str] = mapped_column(String(limits.MAX_MODULE_CHARS))
    source: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[int | None] = mapped_column(BigId)  # the auto-follow rule of a follow by rule
    # The fields this follow cares about (None: every field); edits of other fields pass it by.
    fields: Mapped[list[Any] | None]
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecordEventSeen(OrgOwned, Base):
    """CRM event ids already applied: a replayed batch creates nothing twice."""

    __tablename__ = "record_events_seen"
    __table_args__ = (PrimaryKeyConstraint("org_id", "event_id"),)

    # No index on the org alone (migration 0009): the primary key begins with it.
    org_id: Mapped[int] = mapped_column(BigId, ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False)
    event_id: Mapped[str] = mapped_column(String(limits.MAX_CRM_ID_CHARS))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AutoFollowRule(OrgOwned, Base):
    """F-FOLLOW-4: criteria on a module's records, and who follows a record that matches.

    `version` grows with every edit; compiled criteria are cached by (id, version).
    """

    __tablename__ = "auto_follow_rules"
    __table_args__ = (Index("ix_rules_module", "org_id", "module"), Index("ix_rules_creator", "org_id", "creator_id", "module"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    creator_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    description: Mapped[str] = mapped_column(String(limits.MAX_DESCRIPTION_CHARS), default="")
    module: Mapped[str] = mapped_column(String(limits.MAX_MODULE_CHARS))
    criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)
    followers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fields: Mapped[list[Any] | None]  # given to its follows: None, every field
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntegrationWebhook(OrgOwned, Base):
    """Where an integration wants notes sent back (F-FOLLOW-10), and the key that signs them."""

    __tablename__ = "integration_webhooks"

    integration_id: Mapped[int] = mapped_column(BigId, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(limits.MAX_WEBHOOK_URL_CHARS))
    secret: Mapped[str] = mapped_column(String(128))


class WebhookDelivery(OrgOwned, Base):
    """A note to send to the CRM, written with the comment that caused it (an outbox).

    `status` moves pending → sending (leased to one worker until `lease_until`) → delivered, or to
    failed when the CRM refuses it for good or the integration is revoked.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_due", "status", "next_attempt_at"), Index("ix_webhook_integration", "org_id", "integration_id", "status"))

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
