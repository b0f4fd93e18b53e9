"""Integration tokens: a service credential for the CRM back end, bound to one org (F-ORG-11)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.secrets import tokens
from feeds_server.actions import audit
from feeds_server.actions.directory import must_get
from feeds_server.errors import Conflict
from feeds_server.store.events import append_event
from feeds_server.store.models import Integration


async def create(session: AsyncSession, actor_id: int, name: str, now: datetime) -> tuple[Integration, str]:
    """Returns the token in clear once; only its hash is kept."""
    secret = tokens.new_secret(tokens.INTEGRATION_PREFIX)
    integration = Integration(name=name.strip(), token_hash=tokens.hash_secret(secret), created_by_user_id=actor_id, created_at=now)
    session.add(integration)
    await session.flush()
    append_event(session, "integration.created", {"id": integration.id, "name": integration.name}, actor_id)
    audit.record(session, "integration.created", actor_id, ("integration", integration.id), {"name": integration.name}, now)
    return integration, secret


async def list_all(session: AsyncSession) -> list[Integration]:
    return list((await session.execute(select(Integration).order_by(Integration.id))).scalars())


async def revoke(session: AsyncSession, actor_id: int, integration_id: int, now: datetime) -> None:
    integration = await must_get(session, Integration, integration_id, "integration")
    if integration.revoked_at is not None:
        raise Conflict("already_revoked", "this integration token is already revoked")
    integration.revoked_at = now
    await session.flush()
    append_event(session, "integration.revoked", {"id": integration.id}, actor_id)
    audit.record(session, "integration.revoked", actor_id, ("integration", integration.id), {"name": integration.name}, now)
