"""Orgs and their members (F-ORG-1 … F-ORG-7)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions import edits, erasure, orgs
from feeds_server.actions.sample import load_sample_data
from feeds_server.api.context import Ctx
from feeds_server.api.routing import MEMBER, USER, Routes
from feeds_server.api.schemas import Body, Id, Name, PageQuery, Slug, Text
from feeds_server.api.views import membership_view, org_view
from feeds_server.domain import permissions as perms
from feeds_server.domain.orgs import EDITIONS
from feeds_server.errors import ValidationFailed
from feeds_server.domain.numbers import is_digits

routes = Routes("orgs")


class CreateOrgBody(Body):
    name: Name
    slug: Slug
    time_zone: Text = Field(default="UTC", max_length=64)
    load_sample_data: bool = False


class UpdateOrgBody(Body):
    name: Name | None = None
    time_zone: Text | None = Field(default=None, max_length=64)
    # F-POST-9: seconds after writing during which authors may edit; null is unlimited, 0 turns editing off.
    edit_window_seconds: int | None = Field(default=None, ge=0, le=limits.MAX_EDIT_WINDOW_SECONDS)


class SlugBody(Body):
    slug: Slug


class EditionBody(Body):
    edition: Text = Field(max_length=32)


class MembersQuery(PageQuery):
    q: str | None = Field(default=None, max_length=limits.MAX_NAME_CHARS)


class UpdateMemberBody(Body):
    role_id: Id | None = None
    profile_id: Id | None = None
    clear_role: bool = False


@routes.post("/api/v1/orgs", access=USER, body=CreateOrgBody, status=201)
async def create_org(ctx: Ctx) -> dict[str, Any]:
    """Create an org; the creator becomes its super admin (F-ORG-2, F-ORG-3)."""
    b: CreateOrgBody = ctx.body
    now = ctx.services.clock()
    org, membership = await orgs.create_org(ctx.session, ctx.current_user.id, b.name, b.slug, b.time_zone, now)
    if b.load_sample_data:
        await load_sample_data(ctx.session, org, ctx.current_user, ctx.services.passwords, now)
    return {"org": org_view(org), "membership": membership_view(membership, ctx.current_user)}


@routes.get("/api/v1/orgs/{slug}")
async def get_org(ctx: Ctx) -> dict[str, Any]:
    """The org and the caller's place in it."""
    me = ctx.me
    return {"org": org_view(ctx.current_org), "membership": membership_view(me.membership, me.user, me.permissions)}


@routes.patch("/api/v1/orgs/{slug}", permission=perms.ADMIN, body=UpdateOrgBody)
async def update_org(ctx: Ctx) -> dict[str, Any]:
    """Rename the org, change its time zone or its edit window (admins)."""
    b: UpdateOrgBody = ctx.body
    org = ctx.current_org
    window_given = "edit_window_seconds" in b.model_fields_set
    if b.name is not None or b.time_zone is not None or not window_given:
        org = await orgs.update_org(ctx.session, org, ctx.me.user_id, b.name, b.time_zone)
    if window_given:
        org = await edits.set_edit_window(ctx.session, org, ctx.me.user_id, b.edit_window_seconds)
    return {"org": org_view(org)}


@routes.put("/api/v1/orgs/{slug}/slug", permission=perms.SUPER_ADMIN, body=SlugBody)
async def change_slug(ctx: Ctx) -> dict[str, Any]:
    """Change the access URL slug (super admin only); the old slug stops working at once (F-ORG-4)."""
    org = await orgs.change_slug(ctx.session, ctx.current_org, ctx.me.user_id, ctx.body.slug)
    return {"org": org_view(org)}


@routes.put("/api/v1/orgs/{slug}/edition", permission=perms.SUPER_ADMIN, body=EditionBody)
async def set_edition(ctx: Ctx) -> dict[str, Any]:
    """Change the org's edition (super admin only)."""
    if ctx.body.edition not in EDITIONS:
        raise ValidationFailed("invalid_edition", f"unknown edition {ctx.body.edition!r}", field="edition", allowed=sorted(EDITIONS))
    org = await orgs.set_edition(ctx.session, ctx.current_org, ctx.me.user_id, ctx.body.edition)
    return {"org": org_view(org)}


@routes.delete("/api/v1/orgs/{slug}", permission=perms.SUPER_ADMIN, status=204)
async def delete_org(ctx: Ctx) -> None:
    """Delete the org and all its data (super admin only); its live connections close."""
    org_id = ctx.current_org.id
    keys = await erasure.org_file_keys(ctx.session)
    await orgs.delete_org(ctx.session, ctx.current_org)
    services = ctx.services

    async def close_connections() -> None:
        await services.control({"control": "org_deleted", "org_id": org_id})
        await erasure.delete_files(services, keys)  # the files and thumbnails, once nothing refers to them

    ctx.after_commit(close_connections)


@routes.get("/api/v1/orgs/{slug}/members", query=MembersQuery)
async def list_members(ctx: Ctx) -> dict[str, Any]:
    """Members by user id; `q` matches the start of a name or email (mention autocomplete)."""
    q: MembersQuery = ctx.query
    after = _int_cursor(q.cursor)
    rows = await orgs.list_members(ctx.session, q.q, after, q.limit + 1)
    page = rows[: q.limit]
    return {
        "members": [membership_view(m, u) for m, u in page],
        "next_cursor": str(page[-1][1].id) if len(rows) > q.limit else None,
    }


@routes.get("/api/v1/orgs/{slug}/members/{user_id:int}")
async def get_member(ctx: Ctx) -> dict[str, Any]:
    """One member."""
    membership, user = await orgs.get_member(ctx.session, ctx.path["user_id"])
    return {"member": membership_view(membership, user)}


@routes.patch("/api/v1/orgs/{slug}/members/{user_id:int}", permission=perms.ADMIN, body=UpdateMemberBody)
async def update_member(ctx: Ctx) -> dict[str, Any]:
    """Give a member another role or profile (admins)."""
    b: UpdateMemberBody = ctx.body
    membership, user = await orgs.update_member(ctx.session, ctx.me.user_id, ctx.path["user_id"], b.role_id, b.profile_id, b.clear_role)
    return {"member": membership_view(membership, user)}


@routes.delete("/api/v1/orgs/{slug}/members/{user_id:int}", permission=perms.ADMIN, status=204)
async def remove_member(ctx: Ctx) -> None:
    """Remove a member (admins). The super admin cannot be removed."""
    await orgs.remove_member(ctx.session, ctx.current_org, ctx.me.user_id, ctx.path["user_id"])


@routes.delete("/api/v1/orgs/{slug}/membership", access=MEMBER, status=204)
async def leave_org(ctx: Ctx) -> None:
    """Leave the org (any member but the super admin)."""
    await orgs.remove_member(ctx.session, ctx.current_org, ctx.me.user_id, ctx.me.user_id)


def _int_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not is_digits(cursor) or len(cursor) > 19:
        raise ValidationFailed("invalid_cursor", "the cursor is not one this server gave out", field="cursor")
    return int(cursor)
