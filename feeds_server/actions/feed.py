"""Feed views: a user's wall and a group's feed, newest first, filtered, keyset-paginated (F-FEED-1 … F-FEED-3, F-FEED-5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.views import post_views
from feeds_server.domain import cursors
from feeds_server.store.models import Org, Post, PostAudience


@dataclass(frozen=True)
class FeedFilter:
    module: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None
    limit: int = 25


async def feed_page(session: AsyncSession, org: Org, channels: list[str], flt: FeedFilter) -> dict[str, Any]:
    """One page of the posts visible through `channels`.

    Each channel is one index range scan (org, channel, created_at, post) limited to a page; the
    union of those few small results is merged, so the cost does not grow with the org's history.
    Items of modules the admin unticked are left out (F-FEED-5).
    """
    position = cursors.decode(flt.cursor) if flt.cursor else None
    hidden = list(org.disabled_modules or [])
    if flt.module is not None and flt.module in hidden:
        return {"items": [], "next_cursor": None}
    per_channel = []
    for channel in channels:
        q = select(PostAudience.post_id, PostAudience.created_at).where(
            PostAudience.org_id == org.id, PostAudience.channel == channel
        )
        if flt.module is not None:
            q = q.where(PostAudience.module == flt.module)
        elif hidden:
            q = q.where(or_(PostAudience.module.is_(None), PostAudience.module.not_in(hidden)))
        if flt.since is not None:
            q = q.where(PostAudience.created_at >= flt.since)
        if flt.until is not None:
            q = q.where(PostAudience.created_at < flt.until)
        if position is not None:
            q = q.where(tuple_(PostAudience.created_at, PostAudience.post_id) < tuple_(*position))
        per_channel.append(
            q.order_by(PostAudience.created_at.desc(), PostAudience.post_id.desc()).limit(flt.limit + 1).subquery().select()
        )
    merged = union_all(*per_channel).subquery()
    stmt = (
        select(merged.c.post_id, func.max(merged.c.created_at).label("at"))
        .group_by(merged.c.post_id)
        .order_by(func.max(merged.c.created_at).desc(), merged.c.post_id.desc())
        .limit(flt.limit + 1)
    )
    rows = (await session.execute(stmt)).all()
    page, more = rows[: flt.limit], len(rows) > flt.limit
    posts = await _posts_in_order(session, [r.post_id for r in page])
    return {
        "items": await post_views(session, posts),
        "next_cursor": cursors.encode(page[-1].at, page[-1].post_id) if more and page else None,
    }


async def _posts_in_order(session: AsyncSession, ids: list[int]) -> list[Post]:
    if not ids:
        return []
    found = {p.id: p for p in (await session.execute(select(Post).where(Post.id.in_(ids)))).scalars()}
    return [found[i] for i in ids if i in found]
