"""Orgs and everything that says who is who inside one: members, invitations, roles, profiles,
territories and integrations (F-ORG-1 … F-ORG-11)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server import limits
from feeds_server.store.base import Base, BigId, OrgOwned, utcnow


class Org(Base):
    """An organization. Not `OrgOwned` itself: it is the scope."""

    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    slug: Mapped[str] = mapped_column(String(limits.MAX_SLUG_CHARS), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    edition: Mapped[str] = mapped_column(String(32))
    trial_ends_at: Mapped[datetime | None]
    created_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Last event sequence number given out in this org (store/events.py).
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # F-SEC-4: CIDR ranges allowed to reach this org; empty means no restriction.
    ip_allowlist: Mapped[list[Any]] = mapped_column(default=list)
    # Real-time history epoch: changes when the org's history is replaced (import), so clients reload.
    rt_epoch: Mapped[str] = mapped_column(String(16), default=lambda: secrets.token_hex(4))
    # F-FEED-5: modules whose updates the admin unticked; they appear in no feed.
    disabled_modules: Mapped[list[Any]] = mapped_column(default=list)
    # F-POST-9: how long after writing a post or comment its author may edit it, in seconds;
    # None is unlimited, 0 turns editing off.
    edit_window_seconds: Mapped[int | None] = mapped_column(Integer)


class Membership(OrgOwned, Base):
    """A user's place in one org: role, profile, and whether they are the super admin."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("roles.id", ondelete="SET NULL"))
    profile_id: Mapped[int] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="RESTRICT"))
    is_super_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invitation(OrgOwned, Base):
    """An invitation by email, answerable for 7 days (F-ORG-5). The link carries a token; only its hash is kept."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(limits.MAX_EMAIL_CHARS), index=True)
    invited_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    role_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("roles.id", ondelete="SET NULL"))
    profile_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("profiles.id", ondelete="SET NULL"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    responded_at: Mapped[datetime | None]


class Role(OrgOwned, Base):
    """A node of the role tree (F-ORG-9): `parent_id` is the superior role."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    parent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("roles.id", ondelete="SET NULL"))


class Profile(OrgOwned, Base):
    """A set of permissions (`admin`, `feeds_tab`, `manage_groups`) given to members."""

    __tablename__ = "profiles"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    permissions: Mapped[list[Any]] = mapped_column(default=list)


class Territory(OrgOwned, Base):
    """A node of the territory tree (F-ORG-10)."""

    __tablename__ = "territories"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    parent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("territories.id", ondelete="SET NULL"))


class TerritoryMember(OrgOwned, Base):
    __tablename__ = "territory_members"

    territory_id: Mapped[int] = mapped_column(BigId, ForeignKey("territories.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Integration(OrgOwned, Base):
    """A service token for the CRM back end, bound to exactly one org (F-ORG-11)."""

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
