"""Accounts: sign-up, sign-in, sign-out, default org (F-ORG-6, F-ORG-7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import tokens
from feeds_server.domain.orgs import normalize_email
from feeds_server.errors import Conflict, NotFound, Unauthenticated
from feeds_server.passwords import Passwords
from feeds_server.store.models import AuthToken, Membership, Org, User
from feeds_server.store.scope import allow_cross_org


@dataclass(frozen=True)
class SignIn:
    token: str
    expires_at: datetime
    user: User
    opened_org: Org | None


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == normalize_email(email)))).scalar_one_or_none()


async def sign_up(session: AsyncSession, passwords: Passwords, email: str, password: str, name: str) -> User:
    """One login per email address."""
    email = normalize_email(email)
    if await find_user_by_email(session, email):
        raise Conflict("email_taken", "an account with this email already exists", field="email")
    user = User(email=email, name=name.strip(), password_hash=await passwords.hash(password))
    session.add(user)
    await session.flush()
    return user


async def issue_token(session: AsyncSession, user: User, now: datetime, ttl_seconds: int) -> tuple[str, AuthToken]:
    secret = tokens.new_secret(tokens.BEARER_PREFIX)
    row = AuthToken(
        user_id=user.id, token_hash=tokens.hash_secret(secret), created_at=now, expires_at=now + timedelta(seconds=ttl_seconds)
    )
    session.add(row)
    await session.flush()
    return secret, row


async def sign_in(
    session: AsyncSession,
    passwords: Passwords,
    email: str,
    password: str,
    org_slug: str | None,
    now: datetime,
    ttl_seconds: int,
) -> SignIn:
    """Check the password and issue a token. Through an org's slug, that org is opened (F-ORG-4)."""
    user = await find_user_by_email(session, email)
    if not await passwords.verify(user.password_hash if user else None, password) or user is None:
        raise Unauthenticated("invalid_credentials", "wrong email or password")
    opened = await _org_to_open(session, user, org_slug)
    secret, row = await issue_token(session, user, now, ttl_seconds)
    return SignIn(secret, row.expires_at, user, opened)


async def _org_to_open(session: AsyncSession, user: User, org_slug: str | None) -> Org | None:
    allow_cross_org(session)
    if org_slug:
        org = await org_of_member(session, user.id, org_slug)
        if org is None:
            raise NotFound("org_not_found", "no such org, or you are not a member of it")
        return org
    if user.default_org_id is None:
        return None
    return await session.get(Org, user.default_org_id)


async def org_of_member(session: AsyncSession, user_id: int, slug: str) -> Org | None:
    allow_cross_org(session)
    return (
        await session.execute(
            select(Org).join(Membership, Membership.org_id == Org.id).where(Org.slug == slug, Membership.user_id == user_id)
        )
    ).scalar_one_or_none()


async def sign_out(session: AsyncSession, token: AuthToken, now: datetime) -> None:
    token.revoked_at = now
    await session.flush()


async def set_default_org(session: AsyncSession, user: User, slug: str) -> Org:
    """The user picks their default org among their orgs; clears the "pick a new default" state."""
    org = await org_of_member(session, user.id, slug)
    if org is None:
        raise NotFound("org_not_found", "no such org, or you are not a member of it")
    user.default_org_id = org.id
    user.default_org_lost = False
    await session.flush()
    return org


async def count_memberships(session: AsyncSession, user_id: int) -> int:
    allow_cross_org(session)
    return (await session.execute(select(func.count()).select_from(Membership).where(Membership.user_id == user_id))).scalar_one()


def needs_default_org(user: User) -> bool:
    """F-ORG-7: removed from (or lost) the default org, so the client must ask for a new one."""
    return user.default_org_lost and user.default_org_id is None
