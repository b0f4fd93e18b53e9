"""Appending events: the only way a change becomes visible to real time, notifications and email.

The per-org sequence comes from `orgs.event_seq`, incremented in the same transaction as the change.
The row lock that increment takes makes transactions of one org hand out numbers in commit order,
so a reader that has seen `seq = n` has seen every event below it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.store.models import Event, Org
from feeds_server.store.scope import UnscopedQuery, current_org

PENDING_KEY = "pending_events"


async def append_event(
    session: AsyncSession, type_: str, payload: dict[str, Any], actor_user_id: int | None = None
) -> Event:
    """Number and add one event; it is published after the transaction commits."""
    org_id = current_org(session)
    if org_id is None:
        raise UnscopedQuery("events belong to an org")
    result = await session.execute(
        update(Org).where(Org.id == org_id).values(event_seq=Org.event_seq + 1).returning(Org.event_seq)
    )
    seq = result.scalar_one()
    event = Event(org_id=org_id, seq=seq, type=type_, payload=payload, actor_user_id=actor_user_id)
    session.add(event)
    session.info.setdefault(PENDING_KEY, []).append(event)
    return event


def take_pending_events(session: AsyncSession) -> list[Event]:
    """Events added in the session's transaction, handed over once after commit."""
    return session.info.pop(PENDING_KEY, [])
