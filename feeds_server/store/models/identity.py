"""Logins and their bearer tokens. These rows belong to a person, not to an org."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server import limits
from feeds_server.store.base import Base, BigId, utcnow


class User(Base):
    """One login: one email address and one password, member of up to 10 orgs (F-ORG-1)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(limits.MAX_EMAIL_CHARS), unique=True)
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # F-ORG-7: the default org; `default_org_lost` says the user must pick a new one. No foreign key
    # (orgs already point at users): deleting an org clears this in actions/orgs.py.
    default_org_id: Mapped[int | None] = mapped_column(BigId)
    default_org_lost: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the owner of the address proved it (a verification or reset link, an invitation link sent
    # there). Until then the account sees no invitation addressed to it (actions/invitations.py).
    email_verified_at: Mapped[datetime | None]


class AuthToken(Base):
    """A bearer token. Only its SHA-256 is stored; revoked on sign-out, refused after `expires_at`."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Where the sign-in came from, for the owner's list of sessions (GET /api/v1/me/sessions).
    address: Mapped[str | None] = mapped_column(String(limits.MAX_ADDRESS_CHARS))
    user_agent: Mapped[str | None] = mapped_column(String(limits.MAX_USER_AGENT_CHARS))
