"""Proving an email address and changing a password: verify, send the link again, change, reset.

Each hashes or checks a password (argon2, tens of milliseconds) with no transaction open, then writes
in one short transaction that checks the password it replaces is still the stored one, so two changes
at once cannot both win, and a reset link works once. A changed password ends the account's other
sessions; a reset ends all of them (whoever knew the old password is out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions import account_mail, sessions
from feeds_server.actions.accounts import account_transaction, find_user_by_email
from feeds_server.domain import account_links
from feeds_server.errors import Conflict, Forbidden, Gone
from feeds_server.runtime.services import Services
from feeds_server.store.models import User
from feeds_server.store.scope import account_session


@dataclass(frozen=True)
class PasswordChanged:
    user: User
    ended_sessions: int


async def verify_email(services: Services, token: str, now: datetime) -> User:
    """Mark the address verified through the link sent to it. A link for an address the account no
    longer has, or of another account, is refused; a second use says the address is verified."""
    claim = account_links.read(token, account_links.VERIFY_EMAIL)
    async with account_session(services.sessions) as session:
        user = await session.get(User, claim.user_id)
        account_links.check(services.settings.secret_key, token, claim, user.email if user else None, now)
        assert user is not None
        if user.email_verified_at is not None:
            raise Gone("link_used", "this address is already verified")
        await session.execute(
            update(User).where(User.id == user.id, User.email == user.email, User.email_verified_at.is_(None)).values(email_verified_at=now)
        )
        user.email_verified_at = now
    return user


def require_unverified(user: User) -> None:
    if user.email_verified_at is not None:
        raise Conflict("email_already_verified", "this address is already verified")


async def send_verification(session: AsyncSession, user: User, now: datetime) -> None:
    """Send the verification link again (the caller checked `require_unverified` and spent the
    account's email budget)."""
    await account_mail.enqueue(session, account_mail.VERIFY_EMAIL, user, now)


async def change_password(
    services: Services, user_id: int, keep_token_id: int | None, current: str, new: str, now: datetime, address: str | None
) -> PasswordChanged:
    """Needs the current password; every session but the caller's ends."""
    async with account_session(services.sessions) as session:
        old_hash = (await session.execute(select(User.password_hash).where(User.id == user_id))).scalar_one_or_none()
    if old_hash is None or not await services.passwords.verify(old_hash, current):
        raise Forbidden("wrong_password", "the current password is not right")
    new_hash = await services.passwords.hash(new)
    async with account_transaction(services, address) as session:
        user = await _replace_hash(session, user_id, old_hash, new_hash)
        if user is None:
            raise Conflict("password_changed", "the password was changed meanwhile: sign in again")
        ended = await sessions.revoke_all(session, user_id, now, keep=keep_token_id)
    await sessions.announce(services, ended)
    return PasswordChanged(user, len(ended))


async def request_password_reset(services: Services, email: str, now: datetime, may_send: bool) -> None:
    """Send a reset link if the address has an account (and its email budget allows): the caller
    answers the same either way."""
    async with account_session(services.sessions) as session:
        user = await find_user_by_email(session, email)
        if user is not None and may_send:
            await account_mail.enqueue(session, account_mail.PASSWORD_RESET, user, now)


async def reset_password(services: Services, token: str, new: str, now: datetime, address: str | None) -> PasswordChanged:
    """Set a new password through a reset link (signed over the password it replaces: single use,
    `limits.PASSWORD_RESET_TTL`). The link came to the account's address, which it so verifies;
    every session of the account ends."""
    claim = account_links.read(token, account_links.RESET_PASSWORD)
    async with account_session(services.sessions) as session:
        user = await session.get(User, claim.user_id)
    old_hash = user.password_hash if user else None
    account_links.check(services.settings.secret_key, token, claim, reset_state(old_hash) if user else None, now)
    new_hash = await services.passwords.hash(new)
    async with account_transaction(services, address) as session:
        changed = await _replace_hash(session, claim.user_id, old_hash, new_hash)
        if changed is None:
            raise account_links.invalid_link()  # used by a reset that won the race
        if changed.email_verified_at is None:
            changed.email_verified_at = now
        ended = await sessions.revoke_all(session, claim.user_id, now)
    await sessions.announce(services, ended)
    return PasswordChanged(changed, len(ended))


async def sign_in_refused_email(services: Services, email: str, address: str, now: datetime) -> None:
    """Tell the owner of `email` (if it has an account) that sign-ins from `address` were refused."""
    async with account_session(services.sessions) as session:
        user = await find_user_by_email(session, email)
        if user is not None:
            await account_mail.enqueue(session, account_mail.SIGN_IN_REFUSED, user, now, {"address": address})


def reset_state(password_hash: str | None) -> str:
    """What a reset link is signed over: the password it replaces (none, for a sample account)."""
    return password_hash or "-"


async def _replace_hash(session: AsyncSession, user_id: int, old_hash: str | None, new_hash: str) -> User | None:
    """The user with the new hash, if `old_hash` was still theirs (else None)."""
    user = (await session.execute(select(User).where(User.id == user_id).with_for_update())).scalar_one_or_none()
    if user is None or user.password_hash != old_hash:
        return None
    user.password_hash = new_hash
    await session.flush()
    return user
