"""Search the items a member may see: posts, private messages, record updates and comments.

The query language is domain/search_query.py; the index query, with visibility inside it, is
store/search.py. A hit is a post (`comment` null) or a comment with its post, the item's type,
and an excerpt of its text with the matched words marked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.views import comment_views, post_views
from feeds_server.domain import search_query, search_text
from feeds_server.domain.messages import plain_text
from feeds_server.store import search as index
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Comment, Group, Org, Post
from feeds_server.domain.numbers import is_digits


async def search(
    session: AsyncSession, org: Org, user_id: int, role_id: int | None, q: str, cursor: str | None, limit: int
) -> dict[str, Any]:
    """One page of hits for `q`; `next_cursor` pages on (null on the last page).

    Ranked in windows: the newest `SEARCH_RANK_WINDOW` matches the reader may see, best first, then
    the next older window, and so on. `more_older` says the current window is full and older matches
    follow it (the next cursor, once this window is read, starts the older window).
    """
    query = search_query.parse(q, user_id)
    at = search_query.decode_cursor(cursor) if cursor else None
    empty: dict[str, Any] = {"items": [], "next_cursor": None, "more_older": False}
    if query.is_empty:
        return empty
    group_ids = await _group_ids(session, org.id, query.groups) if query.groups else None
    if group_ids == []:
        return empty
    graph = await load_graph(session)
    scope = index.Scope(org_id=org.id, channels=graph.reader_channels(user_id, role_id), hidden_modules=list(org.disabled_modules or []))
    found = await index.find(session, scope, query, group_ids, at, limit + 1, limits.SEARCH_RANK_WINDOW)
    page, more = found.hits[:limit], len(found.hits) > limit
    next_cursor = None
    if more and page and found.top is not None:
        next_cursor = search_query.encode_cursor(search_query.SearchCursor(top=found.top, score=page[-1].score, item_id=page[-1].id))
    elif found.older_top is not None:
        next_cursor = search_query.encode_cursor(search_query.SearchCursor(top=found.older_top))
    return {
        "items": await _items(session, page, query),
        "next_cursor": next_cursor,
        "more_older": found.older_top is not None,
    }


async def _group_ids(session: AsyncSession, org_id: int, groups: tuple[str, ...]) -> list[int]:
    """The `in:` groups as ids: a number is an id, anything else a name (any case). Unknown ones match nothing."""
    ids = {int(g) for g in groups if is_digits(g) and len(g) <= 18}
    names = [g.lower() for g in groups if not (is_digits(g) and len(g) <= 18)]
    if names:
        found = await session.execute(select(Group.id).where(Group.org_id == org_id, func.lower(Group.name).in_(names)))
        ids.update(found.scalars())
    return sorted(ids)


async def _items(session: AsyncSession, hits: list[index.Hit], query: search_query.SearchQuery) -> list[dict[str, Any]]:
    if not hits:
        return []
    post_ids = sorted({h.post_id for h in hits})
    comment_ids = sorted({h.comment_id for h in hits if h.comment_id is not None})
    posts = list((await session.execute(select(Post).where(Post.id.in_(post_ids)))).scalars())
    comments = list((await session.execute(select(Comment).where(Comment.id.in_(comment_ids)))).scalars()) if comment_ids else []
    post_view = {v["id"]: v for v in await post_views(session, posts)}
    comment_view = {v["id"]: v for v in await comment_views(session, comments)}
    lexemes = query.lexemes()
    items = []
    for h in hits:
        post = post_view.get(h.post_id)
        comment = comment_view.get(h.comment_id) if h.comment_id is not None else None
        if post is None or (h.comment_id is not None and comment is None):
            continue  # deleted since the index was read in this same transaction: cannot happen, but never a 500
        shown = comment if comment is not None else post
        items.append({
            "type": h.kind,
            "post": post,
            "comment": comment,
            "excerpt": search_text.excerpt(plain_text(shown["segments"]), lexemes),
            "score": h.score,
        })
    return items
