"""Mutes: silence a record, a group or a post's comment thread (notifications only; feeds unchanged)."""

from __future__ import annotations

from typing import Any

from feeds_server.actions import mutes
from feeds_server.api.context import Ctx
from feeds_server.api.posts import reader
from feeds_server.api.routing import Routes
from feeds_server.domain import permissions as perms

routes = Routes("mutes")
FEED = perms.FEEDS_TAB


@routes.get("/api/v1/orgs/{slug}/mutes", permission=FEED)
async def list_mutes(ctx: Ctx) -> dict[str, Any]:
    """The caller's mutes in this org, newest first, each with a label (name or first words)."""
    return {"mutes": await mutes.list_mutes(ctx.session, reader(ctx))}


@routes.put("/api/v1/orgs/{slug}/mutes/record/{record_id:int}", permission=FEED)
async def mute_record(ctx: Ctx) -> dict[str, Any]:
    """Hear nothing more of a record's changes or dormancy (its items stay in the feeds)."""
    return {"mute": await mutes.mute(ctx.session, reader(ctx), mutes.RECORD, ctx.path["record_id"], ctx.services.clock())}


@routes.delete("/api/v1/orgs/{slug}/mutes/record/{record_id:int}", permission=FEED, status=204)
async def unmute_record(ctx: Ctx) -> None:
    """Hear of the record again."""
    await mutes.unmute(ctx.session, reader(ctx), mutes.RECORD, ctx.path["record_id"])


@routes.put("/api/v1/orgs/{slug}/mutes/group/{group_id:int}", permission=FEED)
async def mute_group(ctx: Ctx) -> dict[str, Any]:
    """Hear nothing of a group's posts, nor of mentions that reach you only through the group (members only)."""
    return {"mute": await mutes.mute(ctx.session, reader(ctx), mutes.GROUP, ctx.path["group_id"], ctx.services.clock())}


@routes.delete("/api/v1/orgs/{slug}/mutes/group/{group_id:int}", permission=FEED, status=204)
async def unmute_group(ctx: Ctx) -> None:
    """Hear of the group again."""
    await mutes.unmute(ctx.session, reader(ctx), mutes.GROUP, ctx.path["group_id"])


@routes.put("/api/v1/orgs/{slug}/mutes/post/{post_id:int}", permission=FEED)
async def mute_post(ctx: Ctx) -> dict[str, Any]:
    """Hear nothing of a post's comment thread and reactions, except a direct @mention of you."""
    return {"mute": await mutes.mute(ctx.session, reader(ctx), mutes.POST, ctx.path["post_id"], ctx.services.clock())}


@routes.delete("/api/v1/orgs/{slug}/mutes/post/{post_id:int}", permission=FEED, status=204)
async def unmute_post(ctx: Ctx) -> None:
    """Hear of the post's thread again."""
    await mutes.unmute(ctx.session, reader(ctx), mutes.POST, ctx.path["post_id"])
