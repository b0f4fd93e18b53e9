"""Durable channel history in the database: what recovery after a reconnect reads (F-RT-2).

A channel's publications are the events listed for it in `event_channels`, offsets being the
org's event sequence numbers. Recovery answers with every publication after the client's offset,
in order, or says it cannot (epoch changed, position pruned, too many missed), never a silent gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.store.events import NewEvent
from feeds_server.store.models import ChannelHistory, Event, EventChannel, Org

if TYPE_CHECKING:
    from feeds_server.runtime.services import Services

# At most this many publications are replayed on one channel; past that the client reloads.
MAX_RECOVER = 10_000


@dataclass(frozen=True)
class Recovery:
    recovered: bool
    publications: list[tuple[int, bytes]]  # (offset, encoded data)


def publication_data(event: Event | NewEvent) -> bytes:
    """The `data` of a publication: the same bytes for every channel and connection.

    An event just written carries its payload as encoded for the database: it is placed as is (a
    record batch's payloads, ~1.4 MB, are not encoded again)."""
    payload_json = getattr(event, "payload_json", None)
    if payload_json is not None:
        head = orjson.dumps({"seq": event.seq, "type": event.type, "actor": event.actor_user_id})
        return b"".join((head[:-1], b',"payload":', payload_json, b',"at":', orjson.dumps(event.created_at), b"}"))
    return orjson.dumps(
        {"seq": event.seq, "type": event.type, "actor": event.actor_user_id, "payload": event.payload, "at": event.created_at}
    )


# Events that carry the whole state of one item (actions/reactions.py: an item's absolute reaction
# counts): a later one of the same item supersedes the earlier ones, so live delivery merges a burst
# into its last event (realtime/hub.py) and recovery passes over the superseded ones. Their offsets
# are skipped, as the offsets of other channels' events always are.
SUPERSEDING_EVENTS = frozenset({"reaction.changed"})


def superseding_key(type_: str, payload: Any) -> tuple[Any, ...] | None:
    """What a superseding event is about (its type and item), or None for any other event."""
    if type_ not in SUPERSEDING_EVENTS or not isinstance(payload, dict):
        return None
    return (type_, payload.get("post_id"), payload.get("comment_id"))


def without_superseded(events: list[Any]) -> list[Any]:
    """`events` (in order) less each superseding event that a later one of the same item replaces."""
    seen: set[tuple[Any, ...]] = set()
    kept: list[Any] = []
    for ev in reversed(events):
        key = superseding_key(ev.type, ev.payload)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        kept.append(ev)
    kept.reverse()
    return kept


def hidden_by_modules(type_: str, payload: Any, disabled_modules: list[str]) -> bool:
    """F-FEED-5: items of unticked modules never reach clients, live or recovered. An event with the
    item's view reads its module there; an item-state event (reaction.changed) names the item's
    module itself. Other events that name a module (rule.created) are not items and always go."""
    if not disabled_modules or not isinstance(payload, dict):
        return False
    post = payload.get("post")
    if isinstance(post, dict):
        module = post.get("module")
    else:
        module = payload.get("module") if type_ in SUPERSEDING_EVENTS else None
    return module is not None and module in disabled_modules


async def recover(
    session: AsyncSession, org_id: int, channel: str, since: int, disabled_modules: list[str]
) -> Recovery:
    pruned = (
        await session.execute(select(ChannelHistory.pruned_through).where(ChannelHistory.channel == channel))
    ).scalar_one_or_none() or 0
    if since < pruned:
        return Recovery(False, [])
    rows = (
        await session.execute(
            select(Event)
            .join(EventChannel, and_(EventChannel.org_id == Event.org_id, EventChannel.seq == Event.seq))
            .where(EventChannel.org_id == org_id, EventChannel.channel == channel, EventChannel.seq > since)
            .order_by(EventChannel.seq)
            .limit(MAX_RECOVER + 1)
        )
    ).scalars().all()
    if len(rows) > MAX_RECOVER:
        return Recovery(False, [])
    return Recovery(
        True, [(ev.seq, publication_data(ev)) for ev in without_superseded(list(rows)) if not hidden_by_modules(ev.type, ev.payload, disabled_modules)]
    )


async def events_between(session: AsyncSession, after: int, upto: int) -> list[Event]:
    """Events of the session's org with after < seq <= upto, in order (to fill a gap)."""
    return list(
        (await session.execute(select(Event).where(Event.seq > after, Event.seq <= upto).order_by(Event.seq))).scalars()
    )


async def latest_seq(session: AsyncSession, org_id: int) -> int:
    return (await session.execute(select(Org.event_seq).where(Org.id == org_id))).scalar_one_or_none() or 0


async def prune(session: AsyncSession, now: datetime, keep_days: int, keep_publications: int) -> int:
    """Drop a channel's history rows older than `keep_days` that are not among its newest
    `keep_publications`, and remember how far each channel was pruned. Returns rows removed."""
    cutoff = now - timedelta(days=keep_days)
    removed = 0
    channels = (await session.execute(select(EventChannel.channel).distinct())).scalars().all()
    for channel in channels:
        nth = (
            await session.execute(
                select(EventChannel.seq)
                .where(EventChannel.channel == channel)
                .order_by(EventChannel.seq.desc())
                .offset(keep_publications)
                .limit(1)
            )
        ).scalar_one_or_none()
        if nth is None:
            continue
        last_old = (
            await session.execute(
                select(func.max(EventChannel.seq)).where(
                    EventChannel.channel == channel, EventChannel.seq <= nth, EventChannel.created_at < cutoff
                )
            )
        ).scalar_one_or_none()
        if last_old is None:
            continue
        result = await session.execute(delete(EventChannel).where(EventChannel.channel == channel, EventChannel.seq <= last_old))
        removed += result.rowcount or 0  # type: ignore[attr-defined]
        mark = (await session.execute(select(ChannelHistory).where(ChannelHistory.channel == channel))).scalar_one_or_none()
        if mark is None:
            session.add(ChannelHistory(channel=channel, pruned_through=last_old))
        else:
            mark.pruned_through = max(mark.pruned_through, last_old)
    await session.flush()
    return removed


async def prune_all(services: "Services") -> int:
    """Prune every org's channel history as the settings say (at least N days or N publications)."""
    from feeds_server.store.scope import org_session

    settings = services.settings
    async with services.sessions() as session:
        org_ids = (await session.execute(select(Org.id))).scalars().all()
    removed = 0
    for org_id in org_ids:
        async with org_session(services.sessions, org_id) as session:
            removed += await prune(session, services.clock(), settings.history_days, settings.history_publications)
    return removed
