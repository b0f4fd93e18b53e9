"""Sign-up, sign-in, sign-out and the signed-in user's own view (`/me`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import accounts, audit, invitations, orgs
from feeds_server.api import throttle
from feeds_server.api.context import Ctx
from feeds_server.api.dispatch import request_address
from feeds_server.api.routing import PUBLIC, USER, Routes
from feeds_server.api.schemas import Body, Email, Name, Password, Slug, Text
from feeds_server.api.views import invitation_view, my_org_view, org_view, user_view
from feeds_server.errors import Unauthenticated

routes = Routes("accounts")


class SignUpBody(Body):
    email: Email
    password: Password
    name: Name


class SignInBody(Body):
    email: Email
    password: Text = Field(max_length=1024)
    org_slug: Slug | None = None


class DefaultOrgBody(Body):
    org_slug: Slug


@routes.post("/api/v1/auth/signup", access=PUBLIC, body=SignUpBody, status=201)
async def sign_up(ctx: Ctx) -> dict[str, Any]:
    """Create a login (one per email address)."""
    b: SignUpBody = ctx.body
    user = await accounts.sign_up(ctx.session, ctx.services.passwords, b.email, b.password, b.name)
    return {"user": user_view(user)}


@routes.post("/api/v1/auth/signin", access=PUBLIC, body=SignInBody)
async def sign_in(ctx: Ctx) -> dict[str, Any]:
    """Exchange email and password for a bearer token; `org_slug` opens that org (F-ORG-4)."""
    b: SignInBody = ctx.body
    await throttle.signing_in(ctx, b.email)
    s = ctx.services.settings
    now = ctx.services.clock()
    try:
        result = await accounts.sign_in(ctx.session, ctx.services.passwords, b.email, b.password, b.org_slug, now, s.token_ttl_seconds)
    except Unauthenticated as exc:
        # The sign-in's transaction rolls back: the refusal is logged in a transaction of its own.
        address, reason = request_address(ctx), exc.code
        ctx.on_rollback(lambda: audit.record_failed_sign_in(ctx.services.sessions, b.email, address, reason, now))
        raise
    await audit.record_sign_in(ctx.session, result.user.id, now, b.org_slug)
    return {
        "token": result.token,
        "token_type": "Bearer",
        "expires_at": result.expires_at,
        "user": user_view(result.user),
        "org": org_view(result.opened_org) if result.opened_org else None,
        "needs_default_org": accounts.needs_default_org(result.user) and b.org_slug is None,
    }


@routes.post("/api/v1/auth/signout", access=USER, status=204)
async def sign_out(ctx: Ctx) -> None:
    """Revoke the token this request carries."""
    if ctx.token is None:
        raise Unauthenticated()
    await accounts.sign_out(ctx.session, ctx.token, ctx.services.clock())
    token_id = ctx.token.id
    # Live connections opened with this sign-in close on every node (F-SEC-2 of the real-time issue).
    ctx.after_commit(lambda: ctx.services.control({"control": "auth_revoked", "auth_token_id": token_id}))


@routes.get("/api/v1/me", access=USER)
async def me(ctx: Ctx) -> dict[str, Any]:
    """The signed-in user, their orgs, default org and pending invitations."""
    user = ctx.current_user
    mine = await orgs.my_orgs(ctx.session, user.id)
    pending = await invitations.pending_for_user(ctx.session, user, ctx.services.clock())
    return {
        "user": user_view(user),
        "default_org": next((org_view(m.org) for m in mine if m.org.id == user.default_org_id), None),
        "needs_default_org": accounts.needs_default_org(user),
        "orgs": [my_org_view(m.org, m.membership, m.profile, m.role, user.default_org_id) for m in mine],
        "invitations": [invitation_view(inv, org) for inv, org in pending],
    }


@routes.put("/api/v1/me/default-org", access=USER, body=DefaultOrgBody)
async def set_default_org(ctx: Ctx) -> dict[str, Any]:
    """Make one of the user's orgs their default (F-ORG-7)."""
    org = await accounts.set_default_org(ctx.session, ctx.current_user, ctx.body.org_slug)
    return {"default_org": org_view(org), "needs_default_org": False}
