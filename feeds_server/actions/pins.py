"""Pins: a few posts held at the top of the org feed (by admins) or of a group's feed (by its owner
or an admin). The place follows from the post (domain/pins.py). Each pin and unpin is an event on
the post's audience channels, so it arrives live and is recovered like any other, and a line in the
audit log. Deleting a post or a group takes its pins with it (the `post.deleted` or `group.deleted`
event tells clients)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions import audit
from feeds_server.actions.posts import Reader, visible_post
from feeds_server.actions.views import post_views
from feeds_server.domain.pins import PinPlace, check_may_pin, place_of
from feeds_server.errors import Conflict
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Group, Pin, Post, PostAudience, User
from feeds_server.store.scope import current_org

PINNED, UNPINNED = "post.pinned", "post.unpinned"


def _at(place: PinPlace) -> Any:
    return Pin.group_id.is_(None) if place.group_id is None else Pin.group_id == place.group_id


async def _may_pin(session: AsyncSession, actor: Reader, place: PinPlace) -> None:
    owner = None
    if place.group_id is not None and not actor.is_admin:
        owner = (await session.execute(select(Group.created_by_user_id).where(Group.id == place.group_id))).scalar_one_or_none()
    check_may_pin(place, actor.user_id, actor.is_admin, owner)


async def _lock_place(session: AsyncSession, place: PinPlace) -> None:
    """Two pins at once in one place wait for each other, so the cap holds and a post is pinned
    once, on PostgreSQL (a lock held to the end of the transaction). SQLite serves one node with
    one writer; two pins in the same instant there are not serialised."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = f"pins:{current_org(session)}:{place.group_id or 0}"
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


async def pin(session: AsyncSession, actor: Reader, post_id: int, now: datetime) -> dict[str, Any]:
    """Pin a post where it belongs; pinning it again changes nothing. A sixth pin in one place is 409."""
    post, channels = await visible_post(session, actor, post_id)
    place = place_of(post.kind, post.group_id)
    await _may_pin(session, actor, place)
    await _lock_place(session, place)
    existing = (await session.execute(select(Pin).where(Pin.post_id == post.id))).scalar_one_or_none()
    if existing is not None:
        return (await _pin_infos(session, [existing]))[existing.post_id]
    count = (await session.execute(select(func.count()).select_from(Pin).where(_at(place)))).scalar_one()
    if count >= limits.MAX_PINS_PER_PLACE:
        raise Conflict(
            "too_many_pins", f"{limits.MAX_PINS_PER_PLACE} posts are pinned there already: unpin one first",
            limit=limits.MAX_PINS_PER_PLACE, group_id=place.group_id,
        )
    row = Pin(post_id=post.id, group_id=place.group_id, pinned_by_user_id=actor.user_id, created_at=now)
    session.add(row)
    await session.flush()
    info = (await _pin_infos(session, [row]))[post.id]
    view = (await post_views(session, [post]))[0]
    append_event(session, PINNED, {"post_id": post.id, "group_id": place.group_id, "pin": info, "post": view}, actor.user_id, channels)
    audit.record(session, PINNED, actor.user_id, ("post", post.id), {"group_id": place.group_id}, now)
    return info


async def unpin(session: AsyncSession, actor: Reader, post_id: int, now: datetime) -> None:
    """Unpin a post (the same people who may pin it); a post that is not pinned is left as it is."""
    post, channels = await visible_post(session, actor, post_id)
    place = place_of(post.kind, post.group_id)
    await _may_pin(session, actor, place)
    gone = (await session.execute(select(Pin.post_id).where(Pin.post_id == post.id))).first()
    if gone is None:
        return
    await session.execute(delete(Pin).where(Pin.post_id == post.id))
    append_event(session, UNPINNED, {"post_id": post.id, "group_id": place.group_id}, actor.user_id, channels)
    audit.record(session, UNPINNED, actor.user_id, ("post", post.id), {"group_id": place.group_id}, now)


async def pinned_posts(session: AsyncSession, channels: Sequence[str], group_id: int | None = None) -> list[dict[str, Any]]:
    """The posts pinned on the org feed (or in a group) that a reader of `channels` can see, newest
    pin first, each view with its `pin` (when, by whom). Visibility is a condition of the query."""
    place = PinPlace(group_id)
    seen = select(PostAudience.post_id).where(PostAudience.post_id == Pin.post_id, PostAudience.channel.in_(list(channels)))
    stmt = (
        select(Pin)
        .where(_at(place), seen.exists())
        .order_by(Pin.created_at.desc(), Pin.post_id.desc())
        .limit(limits.MAX_PINS_PER_PLACE)
    )
    rows = list((await session.execute(stmt)).scalars())
    if not rows:
        return []
    found = {p.id: p for p in (await session.execute(select(Post).where(Post.id.in_([r.post_id for r in rows])))).scalars()}
    rows = [r for r in rows if r.post_id in found]
    infos = await _pin_infos(session, rows)
    views = await post_views(session, [found[r.post_id] for r in rows])
    for view in views:
        view["pin"] = infos[view["id"]]
    return views


async def reader_pins(session: AsyncSession, reader: Reader) -> list[dict[str, Any]]:
    """The org feed's pins that one member can see: `pinned_posts` over every channel they read."""
    graph = await load_graph(session)
    return await pinned_posts(session, graph.reader_channels(reader.user_id, reader.role_id), None)


async def _pin_infos(session: AsyncSession, rows: Sequence[Pin]) -> dict[int, dict[str, Any]]:
    users = {r.pinned_by_user_id for r in rows if r.pinned_by_user_id is not None}
    names = dict((await session.execute(select(User.id, User.name).where(User.id.in_(users)))).all()) if users else {}
    return {
        r.post_id: {
            "post_id": r.post_id,
            "group_id": r.group_id,
            "pinned_at": r.created_at,
            "pinned_by": None if r.pinned_by_user_id is None else {"id": r.pinned_by_user_id, "name": names.get(r.pinned_by_user_id, "(deleted)")},
        }
        for r in rows
    }
