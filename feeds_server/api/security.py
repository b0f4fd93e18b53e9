"""The org's IP allow-list (F-SEC-4). Admins only."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import audit
from feeds_server.api.context import Ctx
from feeds_server.api.access import request_address
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Text
from feeds_server.domain import network
from feeds_server.domain import permissions as perms
from feeds_server.errors import Conflict
from feeds_server.store.events import append_event

routes = Routes("security")


class AllowlistBody(Body):
    ranges: list[Text] = Field(max_length=network.MAX_RANGES, description="CIDR ranges; empty lifts the restriction")


@routes.get("/api/v1/orgs/{slug}/ip-allowlist", permission=perms.ADMIN)
async def get_allowlist(ctx: Ctx) -> dict[str, Any]:
    """The ranges allowed to reach this org (empty: no restriction) and the caller's address as seen."""
    return {"ranges": list(ctx.current_org.ip_allowlist or []), "your_address": request_address(ctx)}


@routes.put("/api/v1/orgs/{slug}/ip-allowlist", permission=perms.ADMIN, body=AllowlistBody)
async def set_allowlist(ctx: Ctx) -> dict[str, Any]:
    """Restrict the org to these ranges. A list that would shut out the admin making the change is refused."""
    ranges = network.parse_ranges(ctx.body.ranges)
    here = request_address(ctx)
    if ranges and not network.allowed(here, ranges):
        raise Conflict("would_lock_you_out", f"your address {here} is not in the new list", your_address=here)
    org = ctx.current_org
    org.ip_allowlist = ranges
    await ctx.session.flush()
    append_event(ctx.session, "org.ip_allowlist_changed", {"ranges": ranges}, ctx.me.user_id)
    audit.record(ctx.session, "org.ip_allowlist_changed", ctx.me.user_id, ("org", org.id), {"ranges": ranges})
    return {"ranges": ranges, "your_address": here}
