"""Invitations: admins invite by email; invitees accept or decline within 7 days (F-ORG-5)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import invitations
from feeds_server.api.context import Ctx
from feeds_server.api.routing import USER, Routes
from feeds_server.api.schemas import Body, Email, Id, Query, Text
from feeds_server.api.views import invitation_view, membership_view, org_view
from feeds_server.domain import permissions as perms

routes = Routes("invitations")


class InviteBody(Body):
    email: Email
    role_id: Id | None = None
    profile_id: Id | None = None


class InvitationsQuery(Query):
    status: str | None = Field(default=None, pattern="^(pending|accepted|declined|revoked|replaced)$")


class LinkBody(Body):
    token: Text = Field(min_length=1, max_length=200)


@routes.post("/api/v1/orgs/{slug}/invitations", permission=perms.ADMIN, body=InviteBody, status=201)
async def invite(ctx: Ctx) -> dict[str, Any]:
    """Invite someone by email (admins). The notifier worker sends the email with the accept link."""
    b: InviteBody = ctx.body
    org, inviter = ctx.current_org, ctx.me.user
    new = await invitations.invite(ctx.session, org, inviter, b.email, b.role_id, b.profile_id, ctx.services.clock())
    return {"invitation": invitation_view(new.invitation)}


@routes.get("/api/v1/orgs/{slug}/invitations", permission=perms.ADMIN, query=InvitationsQuery)
async def list_invitations(ctx: Ctx) -> dict[str, Any]:
    """The org's invitations, newest first (admins)."""
    items = await invitations.list_org_invitations(ctx.session, ctx.query.status)
    return {"invitations": [invitation_view(i) for i in items]}


@routes.delete("/api/v1/orgs/{slug}/invitations/{invitation_id:int}", permission=perms.ADMIN, status=204)
async def revoke_invitation(ctx: Ctx) -> None:
    """Withdraw a pending invitation (admins)."""
    await invitations.revoke(ctx.session, ctx.path["invitation_id"], ctx.me.user_id, ctx.services.clock())


@routes.get("/api/v1/me/invitations", access=USER)
async def my_invitations(ctx: Ctx) -> dict[str, Any]:
    """Pending invitations to the signed-in user's email."""
    pending = await invitations.pending_for_user(ctx.session, ctx.current_user, ctx.services.clock())
    return {"invitations": [invitation_view(inv, org) for inv, org in pending]}


@routes.post("/api/v1/me/invitations/{invitation_id:int}/accept", access=USER)
async def accept(ctx: Ctx) -> dict[str, Any]:
    """Accept a pending invitation: the user joins the org and keeps their other orgs."""
    org, membership = await invitations.accept(ctx.session, ctx.current_user.id, ctx.services.clock(), invitation_id=ctx.path["invitation_id"])
    return {"org": org_view(org), "membership": membership_view(membership, ctx.current_user)}


@routes.post("/api/v1/me/invitations/{invitation_id:int}/decline", access=USER, status=204)
async def decline(ctx: Ctx) -> None:
    """Decline a pending invitation."""
    await invitations.decline(ctx.session, ctx.current_user.id, ctx.services.clock(), invitation_id=ctx.path["invitation_id"])


@routes.post("/api/v1/invitations/accept", access=USER, body=LinkBody)
async def accept_by_link(ctx: Ctx) -> dict[str, Any]:
    """Accept through the token of the invitation email's link (the only way for IP-restricted orgs)."""
    org, membership = await invitations.accept(ctx.session, ctx.current_user.id, ctx.services.clock(), link_token=ctx.body.token)
    return {"org": org_view(org), "membership": membership_view(membership, ctx.current_user)}


@routes.post("/api/v1/invitations/decline", access=USER, body=LinkBody, status=204)
async def decline_by_link(ctx: Ctx) -> None:
    """Decline through the invitation email's link."""
    await invitations.decline(ctx.session, ctx.current_user.id, ctx.services.clock(), link_token=ctx.body.token)
