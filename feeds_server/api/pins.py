"""Pinned posts: at the top of the org feed (admins pin) or of a group's feed (its owner or an admin)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import groups, pins
from feeds_server.actions.feed_reasons import add_reasons
from feeds_server.actions.reader_marks import mark_for_reader
from feeds_server.api.context import Ctx
from feeds_server.api.posts import reader
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Query
from feeds_server.domain import permissions as perms
from feeds_server.domain.audience import group_channel

routes = Routes("pins")
FEED = perms.FEEDS_TAB


class PinsQuery(Query):
    group_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


@routes.put("/api/v1/orgs/{slug}/posts/{post_id:int}/pin", permission=FEED)
async def pin_post(ctx: Ctx) -> dict[str, Any]:
    """Pin a status post on the org feed (admins) or a group post in its group (its owner or an admin); at most 5 per place."""
    return {"pin": await pins.pin(ctx.session, reader(ctx), ctx.path["post_id"], ctx.services.clock())}


@routes.delete("/api/v1/orgs/{slug}/posts/{post_id:int}/pin", permission=FEED, status=204)
async def unpin_post(ctx: Ctx) -> None:
    """Unpin a post (whoever may pin it there); unpinning it again changes nothing."""
    await pins.unpin(ctx.session, reader(ctx), ctx.path["post_id"], ctx.services.clock())


@routes.get("/api/v1/orgs/{slug}/pins", permission=FEED, query=PinsQuery)
async def list_pins(ctx: Ctx) -> dict[str, Any]:
    """Posts pinned on the org feed, or in a group (`group_id`, members only), that the caller can see; newest pin first."""
    me = ctx.me
    group_id = ctx.query.group_id
    if group_id is not None:
        # A group's pins, as its page shows them: membership is checked, the group's channel read.
        group = await groups.group_for_member(ctx.session, group_id, me.user_id, me.membership.role_id)
        pinned = await pins.pinned_posts(ctx.session, [group_channel(group.id)], group.id)
    else:
        pinned = await pins.reader_pins(ctx.session, reader(ctx))
    await mark_for_reader(ctx.session, me.user_id, pinned)
    await add_reasons(ctx.session, me.user_id, me.membership.role_id, pinned)
    return {"pinned": pinned}
