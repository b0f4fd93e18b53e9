"""Emoji reactions on posts (messages and record updates too) and on comments. Needs the Feeds tab."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions import reactions
from feeds_server.api import throttle
from feeds_server.api.context import Ctx
from feeds_server.api.posts import reader
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Query, Text
from feeds_server.domain import permissions as perms

routes = Routes("reactions")
FEED = perms.FEEDS_TAB


# The emoji is checked by the action (domain/emoji.py), after the item: its error names the rule.
class ReactionBody(Body):
    emoji: Text = Field(max_length=4 * limits.MAX_REACTION_EMOJI_CHARS)
    on: bool


class ReactionsQuery(Query):
    emoji: str | None = Field(default=None, max_length=4 * limits.MAX_REACTION_EMOJI_CHARS)
    after: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


async def _toggle(ctx: Ctx, post_id: int | None, comment_id: int | None) -> dict[str, Any]:
    body: ReactionBody = ctx.body
    return await reactions.toggle(ctx.session, reader(ctx), post_id, comment_id, body.emoji, body.on, ctx.services.clock())


async def _who(ctx: Ctx, post_id: int | None, comment_id: int | None) -> dict[str, Any]:
    q: ReactionsQuery = ctx.query
    return await reactions.who_reacted(ctx.session, reader(ctx), post_id, comment_id, q.emoji, q.after, q.limit)


@routes.put("/api/v1/orgs/{slug}/posts/{post_id:int}/reactions", permission=FEED, checks=(throttle.reacting,), body=ReactionBody)
async def react_to_post(ctx: Ctx) -> dict[str, Any]:
    """Turn one's emoji on a post on (`"on": true`) or off; answers the post's counts and one's own emojis."""
    return await _toggle(ctx, ctx.path["post_id"], None)


@routes.get("/api/v1/orgs/{slug}/posts/{post_id:int}/reactions", permission=FEED, query=ReactionsQuery)
async def post_reactions(ctx: Ctx) -> dict[str, Any]:
    """Who reacted to a post, oldest first (`emoji` for one emoji's people); `after` pages on."""
    return await _who(ctx, ctx.path["post_id"], None)


@routes.put("/api/v1/orgs/{slug}/comments/{comment_id:int}/reactions", permission=FEED, checks=(throttle.reacting,), body=ReactionBody)
async def react_to_comment(ctx: Ctx) -> dict[str, Any]:
    """Turn one's emoji on a comment on or off; answers the comment's counts and one's own emojis."""
    return await _toggle(ctx, None, ctx.path["comment_id"])


@routes.get("/api/v1/orgs/{slug}/comments/{comment_id:int}/reactions", permission=FEED, query=ReactionsQuery)
async def comment_reactions(ctx: Ctx) -> dict[str, Any]:
    """Who reacted to a comment, oldest first (`emoji` for one emoji's people); `after` pages on."""
    return await _who(ctx, None, ctx.path["comment_id"])
