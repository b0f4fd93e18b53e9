"""Roles, profiles and territories of an org (F-ORG-9, F-ORG-10). Members read; admins change."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import directory
from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Id, Name
from feeds_server.api.views import profile_view, role_view, territory_view
from feeds_server.domain import permissions as perms
from feeds_server.store.models import Profile, Role, Territory

routes = Routes("directory")


class NodeBody(Body):
    name: Name
    parent_id: Id | None = None


class UpdateNodeBody(Body):
    name: Name | None = None
    parent_id: Id | None = None


class ProfileBody(Body):
    name: Name
    permissions: list[str] = Field(default_factory=list, max_length=16)


class UpdateProfileBody(Body):
    name: Name | None = None
    permissions: list[str] | None = Field(default=None, max_length=16)


def _parent_change(body: UpdateNodeBody) -> object:
    # An explicit `"parent_id": null` makes the node a root; leaving it out keeps the parent.
    return body.parent_id if "parent_id" in body.model_fields_set else directory.UNSET


def _tree_routes(path: str, model: type[Role] | type[Territory], what: str, view: Any) -> None:
    plural = f"{what}s" if what != "territory" else "territories"

    async def list_nodes(ctx: Ctx) -> dict[str, Any]:
        return {plural: [view(n) for n in await directory.list_nodes(ctx.session, model)]}

    async def create(ctx: Ctx) -> dict[str, Any]:
        b: NodeBody = ctx.body
        node = await directory.create_node(ctx.session, model, what, ctx.me.user_id, b.name, b.parent_id)
        return {what: view(node)}

    async def get(ctx: Ctx) -> dict[str, Any]:
        node = await directory.must_get(ctx.session, model, ctx.path["node_id"], what)
        out = {what: view(node)}
        if model is Territory:
            out["member_ids"] = await directory.territory_members(ctx.session, node.id)
        return out

    async def update(ctx: Ctx) -> dict[str, Any]:
        b: UpdateNodeBody = ctx.body
        node = await directory.update_node(ctx.session, model, what, ctx.me.user_id, ctx.path["node_id"], b.name, _parent_change(b))
        return {what: view(node)}

    async def delete(ctx: Ctx) -> None:
        await directory.delete_node(ctx.session, model, what, ctx.me.user_id, ctx.path["node_id"])

    item = f"{path}/{{node_id:int}}"
    routes.get(path, summary=f"List the org's {plural} (a tree by parent_id).")(list_nodes)
    routes.post(path, permission=perms.ADMIN, body=NodeBody, status=201, summary=f"Create a {what} (admins).")(create)
    routes.get(item, summary=f"One {what}.")(get)
    routes.patch(item, permission=perms.ADMIN, body=UpdateNodeBody, summary=f"Rename or move a {what} (admins).")(update)
    routes.delete(item, permission=perms.ADMIN, status=204, summary=f"Delete a {what}; its children move up (admins).")(delete)


_tree_routes("/api/v1/orgs/{slug}/roles", Role, "role", role_view)
_tree_routes("/api/v1/orgs/{slug}/territories", Territory, "territory", territory_view)


@routes.put("/api/v1/orgs/{slug}/territories/{node_id:int}/members/{user_id:int}", permission=perms.ADMIN, status=204)
async def add_territory_member(ctx: Ctx) -> None:
    """Put a member in a territory (admins)."""
    await directory.add_territory_member(ctx.session, ctx.me.user_id, ctx.path["node_id"], ctx.path["user_id"])


@routes.delete("/api/v1/orgs/{slug}/territories/{node_id:int}/members/{user_id:int}", permission=perms.ADMIN, status=204)
async def remove_territory_member(ctx: Ctx) -> None:
    """Take a member out of a territory (admins)."""
    await directory.remove_territory_member(ctx.session, ctx.me.user_id, ctx.path["node_id"], ctx.path["user_id"])


@routes.get("/api/v1/orgs/{slug}/profiles")
async def list_profiles(ctx: Ctx) -> dict[str, Any]:
    """The org's profiles and their permissions."""
    return {"profiles": [profile_view(p) for p in await directory.list_profiles(ctx.session)], "permissions": sorted(perms.PROFILE_PERMISSIONS)}


@routes.post("/api/v1/orgs/{slug}/profiles", permission=perms.ADMIN, body=ProfileBody, status=201)
async def create_profile(ctx: Ctx) -> dict[str, Any]:
    """Create a profile (admins)."""
    profile = await directory.create_profile(ctx.session, ctx.me.user_id, ctx.body.name, ctx.body.permissions)
    return {"profile": profile_view(profile)}


@routes.get("/api/v1/orgs/{slug}/profiles/{profile_id:int}")
async def get_profile(ctx: Ctx) -> dict[str, Any]:
    """One profile."""
    return {"profile": profile_view(await directory.must_get(ctx.session, Profile, ctx.path["profile_id"], "profile"))}


@routes.patch("/api/v1/orgs/{slug}/profiles/{profile_id:int}", permission=perms.ADMIN, body=UpdateProfileBody)
async def update_profile(ctx: Ctx) -> dict[str, Any]:
    """Rename a profile or change its permissions (admins). Taking `feeds_tab` away hides the feed at once."""
    b: UpdateProfileBody = ctx.body
    profile = await directory.update_profile(ctx.session, ctx.me.user_id, ctx.path["profile_id"], b.name, b.permissions)
    return {"profile": profile_view(profile)}


@routes.delete("/api/v1/orgs/{slug}/profiles/{profile_id:int}", permission=perms.ADMIN, status=204)
async def delete_profile(ctx: Ctx) -> None:
    """Delete a profile no member has (admins)."""
    await directory.delete_profile(ctx.session, ctx.me.user_id, ctx.path["profile_id"])
