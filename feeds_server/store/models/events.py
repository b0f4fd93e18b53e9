"""The event log: every change to feed data, numbered per org, written in the change's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, PrimaryKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server.store.base import Base, BigId, OrgOwned, utcnow


class Event(OrgOwned, Base):
    """One change. `seq` increases strictly within an org, in commit order (store/events.py)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("org_id", "seq"),)

    # No foreign key to the org, no index on the org alone (migration 0005): events are written after
    # the org row is updated in the same transaction, so the org exists; deleting it deletes them.
    # Nothing reads them by time (migration 0009 dropped that index).
    org_id: Mapped[int] = mapped_column(BigId, nullable=False)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    # `json`, not `jsonb` (migration 0008): written once, read whole, never queried inside.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channels: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventChannel(OrgOwned, Base):
    """Which real-time channels an event was published on; recovery reads a channel's history here."""

    __tablename__ = "event_channels"
    __table_args__ = (PrimaryKeyConstraint("org_id", "channel", "seq"),)

    org_id: Mapped[int] = mapped_column(BigId, nullable=False)  # as in `Event`
    channel: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelHistory(OrgOwned, Base):
    """How far a channel's history was pruned: recovering from an older position is refused."""

    __tablename__ = "channel_history"
    __table_args__ = (PrimaryKeyConstraint("org_id", "channel"),)

    channel: Mapped[str] = mapped_column(String(40))
    pruned_through: Mapped[int] = mapped_column(BigInteger, default=0)
