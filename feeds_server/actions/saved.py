"""Saved items: posts a person bookmarks for later, private to them.

Saving needs the post to be visible; the list shows only what the person can still see, checked
inside the query (someone who left a group keeps the row, but its posts drop out of the list and
come back if they rejoin). The live event goes to the person's own channel alone, so their other
tabs update and nobody else learns of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.posts import Reader, visible_post
from feeds_server.actions.views import post_views
from feeds_server.domain import cursors
from feeds_server.domain.audience import user_channel
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Org, Post, PostAudience, SavedItem
from feeds_server.store.scope import current_org

SAVED, UNSAVED = "post.saved", "post.unsaved"


async def save(session: AsyncSession, reader: Reader, post_id: int, now: datetime) -> dict[str, Any]:
    """Save a post the reader can see (404 otherwise). Saving it again changes nothing."""
    post, _ = await visible_post(session, reader, post_id)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # A concurrent save of the same post inserts nothing here: only the request that wrote the row tells the other tabs.
    stmt = (
        dialect.insert(SavedItem)
        .values(org_id=current_org(session), user_id=reader.user_id, post_id=post.id, created_at=now)
        .on_conflict_do_nothing()
        .returning(SavedItem.post_id)
    )
    if (await session.execute(stmt)).first() is not None:
        append_event(session, SAVED, {"post_id": post.id, "saved_at": now}, reader.user_id, [user_channel(reader.user_id)])
        return {"post_id": post.id, "saved_at": now}
    saved_at = (await session.execute(
        select(SavedItem.created_at).where(SavedItem.user_id == reader.user_id, SavedItem.post_id == post.id)
    )).scalar_one()
    return {"post_id": post.id, "saved_at": saved_at}


async def unsave(session: AsyncSession, reader: Reader, post_id: int) -> None:
    """Remove a saved post. A post saved once and no longer visible can still be removed; an
    unknown post, or one the reader never saved and cannot see, is 404."""
    found = (await session.execute(
        select(SavedItem.post_id).where(SavedItem.user_id == reader.user_id, SavedItem.post_id == post_id)
    )).first()
    if found is None:
        await visible_post(session, reader, post_id)
        return
    await session.execute(delete(SavedItem).where(SavedItem.user_id == reader.user_id, SavedItem.post_id == post_id))
    append_event(session, UNSAVED, {"post_id": post_id}, reader.user_id, [user_channel(reader.user_id)])


async def saved_page(session: AsyncSession, org: Org, reader: Reader, cursor: str | None, limit: int) -> dict[str, Any]:
    """The reader's saved posts, newest saved first, keyset-paginated by (saved at, post id).

    Visibility is a condition of the query, so a page is never cut before posts the reader may no
    longer see are left out; items of modules the admin unticked are left out too (F-FEED-5).
    """
    graph = await load_graph(session)
    channels = graph.reader_channels(reader.user_id, reader.role_id)
    seen = select(PostAudience.post_id).where(PostAudience.post_id == SavedItem.post_id, PostAudience.channel.in_(channels))
    hidden = list(org.disabled_modules or [])
    if hidden:
        seen = seen.where(or_(PostAudience.module.is_(None), PostAudience.module.not_in(hidden)))
    stmt = (
        select(SavedItem.post_id, SavedItem.created_at)
        .where(SavedItem.user_id == reader.user_id, seen.exists())
        .order_by(SavedItem.created_at.desc(), SavedItem.post_id.desc())
        .limit(limit + 1)
    )
    if cursor:
        stmt = stmt.where(tuple_(SavedItem.created_at, SavedItem.post_id) < tuple_(*cursors.decode(cursor)))
    rows = (await session.execute(stmt)).all()
    page, more = rows[:limit], len(rows) > limit
    found = {p.id: p for p in (await session.execute(select(Post).where(Post.id.in_([r.post_id for r in page])))).scalars()} if page else {}
    kept = [r for r in page if r.post_id in found]
    views = await post_views(session, [found[r.post_id] for r in kept])
    for view, row in zip(views, kept):
        view["saved_at"] = row.created_at
    return {
        "items": views,
        "next_cursor": cursors.encode(page[-1].created_at, page[-1].post_id) if more and page else None,
    }


async def saved_post_ids(session: AsyncSession, user_id: int, post_ids: Sequence[int]) -> set[int]:
    """Which of these posts the user saved (the `saved` mark of REST answers, actions/reader_marks.py)."""
    if not post_ids:
        return set()
    rows = await session.execute(
        select(SavedItem.post_id).where(SavedItem.user_id == user_id, SavedItem.post_id.in_(set(post_ids)))
    )
    return set(rows.scalars())
