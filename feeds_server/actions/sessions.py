"""An account's sessions (its live bearer tokens): list them, end one, end all but one, end all.

Ending a session revokes its token; the caller then closes its live connections on every node with
one `auth_revoked` control message per token (`announce`), as sign-out does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.errors import NotFound
from feeds_server.runtime.services import Services
from feeds_server.store.models import AuthToken


def describe_client(user_agent: str | None) -> str | None:
    """A user agent as kept and shown: printable characters only, trimmed to a bounded length."""
    if not user_agent:
        return None
    kept = "".join(ch if ch.isprintable() else " " for ch in user_agent)
    return " ".join(kept.split())[: limits.MAX_USER_AGENT_CHARS] or None


async def live(session: AsyncSession, user_id: int, now: datetime) -> list[AuthToken]:
    """The user's tokens that still work, newest first."""
    stmt = (
        select(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None), AuthToken.expires_at > now)
        .order_by(AuthToken.id.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def revoke_one(session: AsyncSession, user_id: int, token_id: int, now: datetime) -> None:
    """End one of the user's own sessions; anyone else's answers as one that does not exist."""
    result = await session.execute(
        update(AuthToken)
        .where(AuthToken.id == token_id, AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None), AuthToken.expires_at > now)
        .values(revoked_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("session_not_found", "no such session")


async def revoke_all(session: AsyncSession, user_id: int, now: datetime, keep: int | None = None) -> list[int]:
    """End every live session of the user but `keep`; the ids of those ended."""
    stmt = select(AuthToken.id).where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(AuthToken.id != keep)
    ids = list((await session.execute(stmt)).scalars())
    if ids:
        await session.execute(update(AuthToken).where(AuthToken.id.in_(ids)).values(revoked_at=now))
    return ids


async def announce(services: Services, token_ids: list[int]) -> None:
    """Close the live connections of revoked tokens, on every node."""
    for token_id in token_ids:
        await services.control({"control": "auth_revoked", "auth_token_id": token_id})
