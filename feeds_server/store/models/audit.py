"""The audit log: sign-ins and admin actions, one org's rows listed to that org's admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server.store.base import Base, BigId, OrgOwned, utcnow


class AuditEntry(OrgOwned, Base):
    """Who did what, when and from where, in one org. `details` never holds a secret (actions/audit.py).

    Sign-ins belong to an account, not an org: each is written once for every org the user is a
    member of at that moment, so an org's admins see their own members' sign-ins and nothing else.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_time", "org_id", "created_at", "id"),
        Index("ix_audit_log_action", "org_id", "action", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(BigId)
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
