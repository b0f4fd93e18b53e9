"""Integration tokens for the CRM back end, one org each (F-ORG-11). Admins only."""

from __future__ import annotations

from typing import Any

from feeds_server.actions import integrations
from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Body, Name
from feeds_server.api.views import integration_view
from feeds_server.domain import permissions as perms

routes = Routes("integrations")


class IntegrationBody(Body):
    name: Name


@routes.get("/api/v1/orgs/{slug}/integrations", permission=perms.ADMIN)
async def list_integrations(ctx: Ctx) -> dict[str, Any]:
    """The org's integrations (tokens are never shown again)."""
    return {"integrations": [integration_view(i) for i in await integrations.list_all(ctx.session)]}


@routes.post("/api/v1/orgs/{slug}/integrations", permission=perms.ADMIN, body=IntegrationBody, status=201)
async def create_integration(ctx: Ctx) -> dict[str, Any]:
    """Create an integration; the response carries its token, shown this once."""
    integration, secret = await integrations.create(ctx.session, ctx.me.user_id, ctx.body.name, ctx.services.clock())
    return {"integration": integration_view(integration), "token": secret}


@routes.delete("/api/v1/orgs/{slug}/integrations/{integration_id:int}", permission=perms.ADMIN, status=204)
async def revoke_integration(ctx: Ctx) -> None:
    """Revoke an integration token; the CRM back end using it is refused from then on."""
    await integrations.revoke(ctx.session, ctx.me.user_id, ctx.path["integration_id"], ctx.services.clock())
