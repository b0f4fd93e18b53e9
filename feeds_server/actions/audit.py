"""The audit log: sign-ins and admin actions, written in the transaction of what they record.

`record` is the one helper actions call. It stamps the row with the session's org and with the
address of the request being served (the API binds it to the session), and drops anything that
looks like a secret from `details`: the log is read by admins and must never hold a token or a
password.

Sign-ins belong to an account, not to an org. Each one is written once for every org the user is a
member of at that moment, so each org's admins see their own members' sign-ins (including the ones
made while they were members of the org) and nothing of other orgs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from feeds_server.domain import cursors
from feeds_server.domain.orgs import normalize_email
from feeds_server.store.base import utcnow
from feeds_server.store.models import AuditEntry, Membership, User
from feeds_server.store.scope import CROSS_ORG, UnscopedQuery, allow_cross_org, current_org

log = logging.getLogger("feeds_server.audit")

ADDRESS_KEY = "audit_address"

SIGN_IN = "auth.signin"
SIGN_IN_FAILED = "auth.signin_failed"

# Keys whose values never go into the log, at any depth of `details`.
_SECRET_WORDS = ("token", "password", "secret", "hash")


def bind_address(session: AsyncSession, address: Callable[[], str | None]) -> None:
    """Called by the API for each request: where the request came from, computed only if recorded."""
    session.info[ADDRESS_KEY] = address


def unbind_address(session: AsyncSession) -> None:
    """Called when the request ends: the hook refers to the request."""
    session.info.pop(ADDRESS_KEY, None)


def _address(session: AsyncSession) -> str | None:
    address = session.info.get(ADDRESS_KEY)
    return address() if address is not None else None


def without_secrets(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: without_secrets(v) for k, v in value.items() if not any(w in str(k).lower() for w in _SECRET_WORDS)}
    if isinstance(value, (list, tuple)):
        return [without_secrets(v) for v in value]
    return value


def url_without_credentials(url: str) -> str:
    """A URL as the log keeps it: no user info, query or fragment, which may carry a key."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def record(
    session: AsyncSession,
    action: str,
    actor_id: int | None,
    target: tuple[str, int | None] | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    org_id: int | None = None,
) -> AuditEntry:
    """Add one row to the org's audit log, in the caller's transaction.

    `actor_id` is None for what an operator did on the command line (`details["via"]` says so).
    """
    org_id = org_id if org_id is not None else current_org(session)
    if org_id is None:
        raise UnscopedQuery("audit rows belong to an org")
    target_type, target_id = target if target is not None else (None, None)
    entry = AuditEntry(
        org_id=org_id,
        action=action,
        actor_user_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        ip=_address(session),
        details=without_secrets(dict(details or {})),
        created_at=at or utcnow(),
    )
    session.add(entry)
    return entry


async def _orgs_of(session: AsyncSession, user_id: int) -> list[int]:
    allow_cross_org(session)
    stmt = select(Membership.org_id).where(Membership.user_id == user_id).order_by(Membership.org_id).execution_options(**CROSS_ORG)
    return list((await session.execute(stmt)).scalars())


async def record_sign_in(session: AsyncSession, user_id: int, at: datetime, opened_org: str | None = None) -> None:
    """A successful sign-in, once in each of the user's orgs (an account-level session)."""
    for org_id in await _orgs_of(session, user_id):
        record(session, SIGN_IN, user_id, ("user", user_id), {"org_slug": opened_org} if opened_org else {}, at, org_id)
    await session.flush()


async def record_failed_sign_in(sessions: async_sessionmaker[AsyncSession], email: str, address: str | None, reason: str, at: datetime) -> None:
    """A refused sign-in of an existing account, in a transaction of its own (the sign-in's rolled back).

    An unknown address belongs to no org, so no org's log gets it. A failure to log is itself logged:
    the caller still gets its refusal, not a server error.
    """
    try:
        async with sessions() as session:
            bind_address(session, lambda: address)
            allow_cross_org(session)
            async with session.begin():
                user_id = (await session.execute(select(User.id).where(User.email == normalize_email(email)))).scalar_one_or_none()
                if user_id is None:
                    return
                for org_id in await _orgs_of(session, user_id):
                    record(session, SIGN_IN_FAILED, user_id, ("user", user_id), {"reason": reason}, at, org_id)
    except Exception:
        log.exception("could not write a refused sign-in to the audit log")


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None
    limit: int = 25


async def page(session: AsyncSession, flt: AuditFilter) -> dict[str, Any]:
    """The org's log, newest first. `action` is one action, or a family ending in `.*` (`member.*`)."""
    stmt = (
        select(AuditEntry, User.name, User.email)
        .outerjoin(User, User.id == AuditEntry.actor_user_id)
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .limit(flt.limit + 1)
    )
    if flt.action is not None:
        if flt.action.endswith(".*"):
            prefix = flt.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(AuditEntry.action.like(prefix + "%", escape="\\"))
        else:
            stmt = stmt.where(AuditEntry.action == flt.action)
    if flt.since is not None:
        stmt = stmt.where(AuditEntry.created_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(AuditEntry.created_at < flt.until)
    if flt.cursor:
        stmt = stmt.where(tuple_(AuditEntry.created_at, AuditEntry.id) < tuple_(*cursors.decode(flt.cursor)))
    rows = (await session.execute(stmt)).all()
    shown = rows[: flt.limit]
    last = shown[-1][0] if shown else None
    return {
        "entries": [entry_view(e, name, email) for e, name, email in shown],
        "next_cursor": cursors.encode(last.created_at, last.id) if last is not None and len(rows) > flt.limit else None,
    }


def entry_view(entry: AuditEntry, actor_name: str | None, actor_email: str | None) -> dict[str, Any]:
    actor = None if entry.actor_user_id is None else {"id": entry.actor_user_id, "name": actor_name, "email": actor_email}
    return {
        "id": entry.id,
        "action": entry.action,
        "actor": actor,
        "target": None if entry.target_type is None else {"type": entry.target_type, "id": entry.target_id},
        "ip": entry.ip,
        "details": entry.details or {},
        "at": entry.created_at,
    }


async def forget_sign_ins(session: AsyncSession, user_id: int) -> None:
    """Erasure: a person's sign-ins (addresses) go; the admin actions they took stay, anonymised."""
    await session.execute(delete(AuditEntry).where(AuditEntry.actor_user_id == user_id, AuditEntry.action.in_([SIGN_IN, SIGN_IN_FAILED])))
