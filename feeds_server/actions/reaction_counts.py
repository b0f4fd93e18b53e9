"""Reaction counts and a reader's own reactions for many items at once: one query for a whole page
of posts and their comments, not one per item (actions/views.py, actions/reader_marks.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.store.models import Reaction


async def counts_of_items(
    session: AsyncSession, post_ids: Sequence[int], comment_ids: Sequence[int]
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[dict[str, Any]]]]:
    """Counts of many posts' own reactions and many comments', in one query: (by post, by comment)."""
    if not post_ids and not comment_ids:
        return {}, {}
    where = (Reaction.post_id.in_(list(post_ids)) & Reaction.comment_id.is_(None)) | Reaction.comment_id.in_(list(comment_ids))
    rows = await session.execute(
        select(Reaction.post_id, Reaction.comment_id, Reaction.emoji, func.count(), func.min(Reaction.id))
        .where(where)
        .group_by(Reaction.post_id, Reaction.comment_id, Reaction.emoji)
        .order_by(func.min(Reaction.id))
    )
    posts: dict[int, list[dict[str, Any]]] = {}
    comments: dict[int, list[dict[str, Any]]] = {}
    for post_id, comment_id, emoji, n, _ in rows:
        target = posts.setdefault(post_id, []) if comment_id is None else comments.setdefault(comment_id, [])
        target.append({"emoji": emoji, "count": n})
    return posts, comments


async def mine_of_items(
    session: AsyncSession, user_id: int, post_ids: Sequence[int], comment_ids: Sequence[int]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """The reader's emojis on many posts and comments, in one query: (by post, by comment)."""
    if not post_ids and not comment_ids:
        return {}, {}
    where = (Reaction.post_id.in_(list(post_ids)) & Reaction.comment_id.is_(None)) | Reaction.comment_id.in_(list(comment_ids))
    rows = await session.execute(
        select(Reaction.post_id, Reaction.comment_id, Reaction.emoji).where(where, Reaction.user_id == user_id).order_by(Reaction.id)
    )
    posts: dict[int, list[str]] = {}
    comments: dict[int, list[str]] = {}
    for post_id, comment_id, emoji in rows:
        (posts.setdefault(post_id, []) if comment_id is None else comments.setdefault(comment_id, [])).append(emoji)
    return posts, comments
