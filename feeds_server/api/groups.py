"""Groups: list, create (needs `manage_groups`), the group page (feed + resolved members) (F-FEED-3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from sqlalchemy import select

from feeds_server.actions import groups
from feeds_server.actions.feed import FeedFilter, feed_page
from feeds_server.actions.feed_reasons import add_reasons
from feeds_server.actions.groups import SourceRef
from feeds_server.actions.pins import pinned_posts
from feeds_server.actions.reader_marks import mark_for_reader
from feeds_server.api.context import Ctx
from feeds_server.api.feed import FeedQuery, feed_filter
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Description, Id, Name
from feeds_server.api.views import user_view
from feeds_server.domain import permissions as perms
from feeds_server.domain.audience import group_channel
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Group, User

routes = Routes("groups")
FEED = perms.FEEDS_TAB

SourceKind = Literal["user", "role", "role_and_subordinates", "group"]


class Source(Body):
    type: SourceKind
    id: Id


class GroupBody(Body):
    name: Name
    description: Description = ""
    sources: list[Source] = Field(default_factory=list, max_length=500)


class UpdateGroupBody(Body):
    name: Name | None = None
    description: Description | None = None
    sources: list[Source] | None = Field(default=None, max_length=500)


def _refs(sources: list[Source]) -> list[SourceRef]:
    return [SourceRef(s.type, s.id) for s in sources]


def _group_view(group: Group, sources: list[SourceRef] | None = None, is_member: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "created_by": group.created_by_user_id,
        "created_at": group.created_at,
    }
    if sources is not None:
        out["sources"] = [{"type": s.kind, "id": s.ref_id} for s in sources]
    if is_member is not None:
        out["is_member"] = is_member
    return out


@routes.get("/api/v1/orgs/{slug}/groups", permission=FEED)
async def list_groups(ctx: Ctx) -> dict[str, Any]:
    """Every group of the org (so it can be mentioned), with whether the caller is a member."""
    graph = await load_graph(ctx.session)
    me = ctx.me
    return {
        "groups": [
            _group_view(g, is_member=graph.in_group(g.id, me.user_id, me.membership.role_id))
            for g in await groups.list_groups(ctx.session)
        ]
    }


@routes.post("/api/v1/orgs/{slug}/groups", permission=perms.MANAGE_GROUPS, body=GroupBody, status=201, idempotent=True)
async def create_group(ctx: Ctx) -> dict[str, Any]:
    """Create a group from users, roles, roles & subordinates and other groups (needs `manage_groups`)."""
    ctx.me.require(FEED)
    b: GroupBody = ctx.body
    group = await groups.create_group(ctx.session, ctx.me.user_id, b.name, b.description, _refs(b.sources))
    return {"group": _group_view(group, await groups.sources_of(ctx.session, group.id))}


@routes.get("/api/v1/orgs/{slug}/groups/{group_id:int}", permission=FEED)
async def get_group(ctx: Ctx) -> dict[str, Any]:
    """The group page's header: the group, its sources and its resolved members (members only)."""
    graph = await load_graph(ctx.session, with_members=True)
    me = ctx.me
    group = await groups.group_for_member(ctx.session, ctx.path["group_id"], me.user_id, me.membership.role_id, graph)
    member_ids = sorted(graph.group_members(group.id))
    users = (await ctx.session.execute(select(User).where(User.id.in_(member_ids)).order_by(User.name))).scalars()
    return {
        "group": _group_view(group, await groups.sources_of(ctx.session, group.id), True),
        "members": [user_view(u) for u in users],
    }


@routes.get("/api/v1/orgs/{slug}/groups/{group_id:int}/feed", permission=FEED, query=FeedQuery)
async def group_feed(ctx: Ctx) -> dict[str, Any]:
    """The group's feed (members only), newest first, with the same filters and cursor as the wall."""
    me = ctx.me
    graph = await load_graph(ctx.session)
    group = await groups.group_for_member(ctx.session, ctx.path["group_id"], me.user_id, me.membership.role_id, graph)
    flt: FeedFilter = feed_filter(ctx.query)
    page = await feed_page(ctx.session, ctx.current_org, [group_channel(group.id)], flt)
    if flt.cursor is None:  # the first page carries the posts pinned in the group
        page["pinned"] = await pinned_posts(ctx.session, [group_channel(group.id)], group.id)
    await mark_for_reader(ctx.session, me.user_id, [*page["items"], *page.get("pinned", ())])
    await add_reasons(ctx.session, me.user_id, me.membership.role_id, [*page["items"], *page.get("pinned", ())], graph.groups_of(me.user_id, me.membership.role_id))
    return page


@routes.patch("/api/v1/orgs/{slug}/groups/{group_id:int}", permission=perms.MANAGE_GROUPS, body=UpdateGroupBody)
async def update_group(ctx: Ctx) -> dict[str, Any]:
    """Rename a group or change its sources (its creator or an admin). Membership changes apply at once."""
    me = ctx.me
    group = await groups.group_to_manage(ctx.session, ctx.path["group_id"], me.user_id, me.membership.role_id, me.permissions)
    b: UpdateGroupBody = ctx.body
    group = await groups.update_group(ctx.session, group, me.user_id, b.name, b.description, _refs(b.sources) if b.sources is not None else None)
    return {"group": _group_view(group, await groups.sources_of(ctx.session, group.id))}


@routes.delete("/api/v1/orgs/{slug}/groups/{group_id:int}", permission=perms.MANAGE_GROUPS, status=204)
async def delete_group(ctx: Ctx) -> None:
    """Delete a group and its posts (its creator or an admin)."""
    me = ctx.me
    group = await groups.group_to_manage(ctx.session, ctx.path["group_id"], me.user_id, me.membership.role_id, me.permissions)
    await groups.delete_group(ctx.session, group, me.user_id)

