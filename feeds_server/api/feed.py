"""The feed wall (F-FEED-1, F-FEED-2) and the org's feed module preferences (F-FEED-5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions import modules
from feeds_server.actions.feed import FeedFilter, feed_page
from feeds_server.actions.feed_reasons import add_reasons
from feeds_server.actions.pins import pinned_posts
from feeds_server.actions.reader_marks import mark_for_reader
from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, TimeRangeQuery
from feeds_server.domain import permissions as perms
from feeds_server.store.graph import load_graph

routes = Routes("feed")


class FeedQuery(TimeRangeQuery):
    module: str | None = Field(default=None, min_length=1, max_length=64)
    since: datetime | None = Field(default=None, alias="from")
    until: datetime | None = Field(default=None, alias="to")
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


def feed_filter(q: FeedQuery) -> FeedFilter:
    return FeedFilter(module=q.module, since=q.since, until=q.until, cursor=q.cursor, limit=q.limit)


class ModulesBody(Body):
    modules: dict[str, bool] = Field(max_length=500)


@routes.get("/api/v1/orgs/{slug}/feed", permission=perms.FEEDS_TAB, query=FeedQuery, reads_only=True)
async def wall(ctx: Ctx) -> dict[str, Any]:
    """The caller's feed, newest first: `module`, `from`, `to` filter; `cursor` pages back."""
    me = ctx.me
    graph = await load_graph(ctx.session)
    channels = graph.reader_channels(me.user_id, me.membership.role_id)
    page = await feed_page(ctx.session, ctx.current_org, channels, feed_filter(ctx.query))
    if ctx.query.cursor is None:  # the first page carries the posts pinned on the org feed
        page["pinned"] = await pinned_posts(ctx.session, channels)
    shown = [*page["items"], *page.get("pinned", ())]
    await mark_for_reader(ctx.session, me.user_id, shown)
    await add_reasons(ctx.session, me.user_id, me.membership.role_id, shown, graph.groups_of(me.user_id, me.membership.role_id))
    return page


@routes.get("/api/v1/orgs/{slug}/feed-modules", permission=perms.ADMIN)
async def get_modules(ctx: Ctx) -> dict[str, Any]:
    """Which modules produce feed updates (admins)."""
    return {"modules": await modules.module_settings(ctx.session, ctx.current_org)}


@routes.put("/api/v1/orgs/{slug}/feed-modules", permission=perms.ADMIN, body=ModulesBody)
async def set_modules(ctx: Ctx) -> dict[str, Any]:
    """Tick or untick modules org-wide (admins). Unticked modules vanish from every feed, live and in history."""
    settings = await modules.set_modules(ctx.session, ctx.current_org, ctx.me.user_id, ctx.body.modules)
    return {"modules": settings}
