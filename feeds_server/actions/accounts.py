"""Accounts: sign-up, sign-in, sign-out, default org (F-ORG-6, F-ORG-7).

Passwords are hashed and checked with no transaction open (argon2 takes tens of milliseconds by
design, and on SQLite an open write transaction holds the database's one write lock): the API's
sign-up and sign-in read what they need, let go of the database, hash, then write in a short
transaction of their own (`register`, `sign_in`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.secrets import tokens
from feeds_server.actions import account_mail, audit
from feeds_server.domain.orgs import normalize_email
from feeds_server.errors import Conflict, NotFound, Unauthenticated
from feeds_server.secrets.passwords import Passwords
from feeds_server.runtime.services import Services
from feeds_server.store.models import AuthToken, Membership, Org, User
from feeds_server.store.scope import account_session, allow_cross_org


@dataclass(frozen=True)
class SignIn:
    token: str
    expires_at: datetime
    user: User
    opened_org: Org | None


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == normalize_email(email)))).scalar_one_or_none()


async def create_user(session: AsyncSession, email: str, name: str, password_hash: str | None, verified_at: datetime | None = None) -> User:
    """One login per email address (the unique key refuses a second one)."""
    user = User(email=normalize_email(email), name=name.strip(), password_hash=password_hash, email_verified_at=verified_at)
    session.add(user)
    await session.flush()
    return user


async def sign_up(
    session: AsyncSession, passwords: Passwords, email: str, password: str, name: str, verified_at: datetime | None = None
) -> User:
    """A login made by a script (the demo, benchmarks), which says so when the address is taken. The
    API's sign-up is `register`."""
    if await find_user_by_email(session, email):
        raise Conflict("email_taken", "an account with this email already exists", field="email")
    return await create_user(session, email, name, await passwords.hash(password), verified_at)


async def register(services: Services, email: str, password: str, name: str, now: datetime, send_exists_email: bool) -> None:
    """Sign-up as the API does it: it answers the same whether the address has an account or not,
    and takes the same time (a hash, then one short transaction, either way); the email says the
    rest. A new account gets a verification email; the owner of an existing one is told, with a link
    to reset their password (unless `send_exists_email` is False: too many emails to them lately)."""
    password_hash = await services.passwords.hash(password)
    for _ in range(2):
        try:
            async with account_session(services.sessions) as session:
                user = await find_user_by_email(session, email)
                if user is None:
                    user = await create_user(session, email, name, password_hash)
                    kind = account_mail.VERIFY_EMAIL
                elif send_exists_email:
                    kind = account_mail.ACCOUNT_EXISTS
                else:
                    return
                await account_mail.enqueue(session, kind, user, now)
            return
        except IntegrityError:
            continue  # the same address signed up at the same moment: it has an account now


async def issue_token(
    session: AsyncSession, user: User, now: datetime, ttl_seconds: int, address: str | None = None, user_agent: str | None = None
) -> tuple[str, AuthToken]:
    secret = tokens.new_secret(tokens.BEARER_PREFIX)
    row = AuthToken(
        user_id=user.id, token_hash=tokens.hash_secret(secret), created_at=now, expires_at=now + timedelta(seconds=ttl_seconds),
        address=address, user_agent=user_agent,
    )
    session.add(row)
    await session.flush()
    return secret, row


async def sign_in(
    services: Services,
    email: str,
    password: str,
    org_slug: str | None,
    now: datetime,
    address: str | None = None,
    user_agent: str | None = None,
) -> SignIn:
    """Check the password and issue a token. Through an org's slug, that org is opened (F-ORG-4).

    The stored hash is read, then checked with no transaction open; the token is written in a short
    transaction that first makes sure the password did not change meanwhile."""
    async with account_session(services.sessions) as session:
        found = (
            await session.execute(select(User.id, User.password_hash).where(User.email == normalize_email(email)))
        ).first()
    stored_hash = found.password_hash if found else None
    if not await services.passwords.verify(stored_hash, password) or found is None:
        raise Unauthenticated("invalid_credentials", "wrong email or password")
    async with account_transaction(services, address) as session:
        user = await session.get(User, found.id)
        if user is None or user.password_hash != stored_hash:
            raise Unauthenticated("invalid_credentials", "wrong email or password")
        opened = await _org_to_open(session, user, org_slug)
        secret, row = await issue_token(session, user, now, services.settings.token_ttl_seconds, address, user_agent)
        await audit.record_sign_in(session, user.id, now, org_slug)
    return SignIn(secret, row.expires_at, user, opened)


@asynccontextmanager
async def account_transaction(services: Services, address: str | None) -> AsyncIterator[AsyncSession]:
    """A short account-level transaction outside the request's own, whose audit entries carry the
    request's address."""
    async with services.sessions() as session:
        audit.bind_address(session, lambda: address)
        allow_cross_org(session)
        try:
            async with session.begin():
                yield session
        finally:
            audit.unbind_address(session)


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
