"""What one reader sees on items that nobody else does (their own reactions, whether they saved a
post), added to REST answers only: the views published live are the same for every subscriber
(actions/views.py), so these marks cannot be in them. Clients that apply a live event keep the
marks they had, and learn of their own changes from the answers to their own requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.reaction_counts import mine_of_items
from feeds_server.actions.saved import saved_post_ids


async def mark_for_reader(
    session: AsyncSession, user_id: int, posts: Sequence[dict[str, Any]] = (), comments: Sequence[dict[str, Any]] = ()
) -> None:
    """Add the reader's marks, in place, to post views (with their latest comments) and to comment views."""
    every_comment = [*comments, *(c for p in posts for c in p.get("latest_comments", ()))]
    if not posts and not every_comment:
        return
    mine_on_posts, mine_on_comments = await mine_of_items(session, user_id, [p["id"] for p in posts], [c["id"] for c in every_comment])
    for p in posts:
        p["my_reactions"] = mine_on_posts.get(p["id"], [])
    for c in every_comment:
        c["my_reactions"] = mine_on_comments.get(c["id"], [])
    if posts:
        saved = await saved_post_ids(session, user_id, [p["id"] for p in posts])
        for p in posts:
            p["saved"] = p["id"] in saved
