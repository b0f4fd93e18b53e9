"""A person's browsers subscribed to Web Push in one org.

One row per endpoint and org: the same browser subscribed again, by the same person or by someone
else signed in on it, refreshes that row and becomes the new person's, and pushes of the previous
person still waiting for it are dropped (they are not the new person's to see). The endpoint and
keys were checked by the route (domain/push_targets.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.domain.push_targets import endpoint_hash
from feeds_server.errors import LimitExceeded, NotFound
from feeds_server.store.models import PushJob, PushSubscription
from feeds_server.store.scope import current_org


def subscription_view(sub: PushSubscription) -> dict[str, Any]:
    return {"id": sub.id, "endpoint": sub.endpoint, "created_at": sub.created_at}


async def subscribe(
    session: AsyncSession, user_id: int, endpoint: str, p256dh: str, auth: str, user_agent: str | None, now: datetime
) -> PushSubscription:
    """Keep (or refresh) this browser's subscription for the person; at most
    MAX_PUSH_SUBSCRIPTIONS_PER_MEMBER browsers per person and org."""
    digest = endpoint_hash(endpoint)
    existing = (await session.execute(select(PushSubscription).where(PushSubscription.endpoint_hash == digest))).scalar_one_or_none()
    if existing is None or existing.user_id != user_id:
        count = (await session.execute(
            select(func.count()).select_from(PushSubscription).where(PushSubscription.user_id == user_id)
        )).scalar_one()
        if count >= limits.MAX_PUSH_SUBSCRIPTIONS_PER_MEMBER:
            raise LimitExceeded(
                "too_many_push_subscriptions",
                f"at most {limits.MAX_PUSH_SUBSCRIPTIONS_PER_MEMBER} browsers per person and org; remove one first",
                limit=limits.MAX_PUSH_SUBSCRIPTIONS_PER_MEMBER,
            )
    if existing is not None and existing.user_id != user_id:
        # Those being sent too: the worker reads the owner again just before sending, and finds none.
        await session.execute(delete(PushJob).where(PushJob.subscription_id == existing.id, PushJob.status.in_(("pending", "sending"))))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = {"user_id": user_id, "endpoint": endpoint, "p256dh": p256dh, "auth": auth, "user_agent": user_agent}
    stmt = (
        dialect.insert(PushSubscription)
        .values(org_id=current_org(session), endpoint_hash=digest, created_at=now, **values)
        .on_conflict_do_update(index_elements=["org_id", "endpoint_hash"], set_={**values, "created_at": now})
        .returning(PushSubscription.id)
    )
    sub_id = (await session.execute(stmt)).scalar_one()
    return (await session.execute(
        select(PushSubscription).where(PushSubscription.id == sub_id).execution_options(populate_existing=True)
    )).scalar_one()


async def list_for(session: AsyncSession, user_id: int) -> list[PushSubscription]:
    stmt = select(PushSubscription).where(PushSubscription.user_id == user_id).order_by(PushSubscription.id)
    return list((await session.execute(stmt)).scalars())


async def unsubscribe(session: AsyncSession, user_id: int, subscription_id: int) -> None:
    """Remove one of the person's subscriptions (and its pushes not yet sent); another's is 404."""
    found = await session.execute(
        delete(PushSubscription).where(PushSubscription.id == subscription_id, PushSubscription.user_id == user_id).returning(PushSubscription.id)
    )
    if found.first() is None:
        raise NotFound("push_subscription_not_found", "no such push subscription")
