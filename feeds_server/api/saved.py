"""Saved items: a person's private bookmarks of posts (needs the Feeds tab)."""

from __future__ import annotations

from typing import Any

from feeds_server.actions import saved
from feeds_server.actions.feed_reasons import add_reasons
from feeds_server.actions.reader_marks import mark_for_reader
from feeds_server.api.context import Ctx
from feeds_server.api.posts import reader
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import PageQuery
from feeds_server.domain import permissions as perms

routes = Routes("saved")
FEED = perms.FEEDS_TAB


@routes.put("/api/v1/orgs/{slug}/posts/{post_id:int}/saved", permission=FEED)
async def save_post(ctx: Ctx) -> dict[str, Any]:
    """Save a post one can see, for oneself alone; saving it again changes nothing."""
    return {"saved": await saved.save(ctx.session, reader(ctx), ctx.path["post_id"], ctx.services.clock())}


@routes.delete("/api/v1/orgs/{slug}/posts/{post_id:int}/saved", permission=FEED, status=204)
async def unsave_post(ctx: Ctx) -> None:
    """Remove a post from one's saved items; removing it again changes nothing."""
    await saved.unsave(ctx.session, reader(ctx), ctx.path["post_id"])


@routes.get("/api/v1/orgs/{slug}/saved", permission=FEED, query=PageQuery)
async def list_saved(ctx: Ctx) -> dict[str, Any]:
    """One's saved posts that one can still see, newest saved first; `cursor` pages back."""
    q: PageQuery = ctx.query
    page = await saved.saved_page(ctx.session, ctx.current_org, reader(ctx), q.cursor, q.limit)
    await mark_for_reader(ctx.session, ctx.me.user_id, page["items"])
    await add_reasons(ctx.session, ctx.me.user_id, ctx.me.membership.role_id, page["items"])
    return page
