"""Sign-up, sign-in, sign-out and the signed-in user's own view (`/me`)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server.actions import accounts, audit, invitations, orgs, sessions
from feeds_server.actions.unread_counts import counted, unread_by_org
from feeds_server.api import throttle
from feeds_server.api.context import Ctx, Deferred
from feeds_server.api.access import request_address
from feeds_server.api.routing import PUBLIC, USER, Routes
from feeds_server.api.schemas import Body, Email, Name, Password, Slug, Text
from feeds_server.api.views import invitation_view, my_org_view, org_view, user_view
from feeds_server.domain.orgs import normalize_email
from feeds_server.errors import Unauthenticated
from feeds_server.store.models import User

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


@routes.post("/api/v1/auth/signup", access=PUBLIC, body=SignUpBody, status=201, reads_only=True)
async def sign_up(ctx: Ctx) -> Deferred:
    """Create a login (one per email address); the answer never tells whether the address had one.

    The email sent to the address says which: a verification link, or "you already have an account"
    with a link to reset the password."""
    b: SignUpBody = ctx.body
    await throttle.signing_up(ctx)
    email, name = normalize_email(b.email), b.name.strip()
    services, now = ctx.services, ctx.services.clock()

    async def complete() -> dict[str, Any]:
        may_send = await throttle.may_email_account(ctx, email)
        await accounts.register(services, email, b.password, name, now, may_send)
        return {"signup": {"email": email, "name": name, "verification": "email_sent"}}

    return Deferred(complete)


@routes.post("/api/v1/auth/signin", access=PUBLIC, body=SignInBody, reads_only=True)
async def sign_in(ctx: Ctx) -> Deferred:
    """Exchange email and password for a bearer token; `org_slug` opens that org (F-ORG-4)."""
    b: SignInBody = ctx.body
    await throttle.signing_in(ctx, b.email)
    services, now = ctx.services, ctx.services.clock()
    address, agent = request_address(ctx), sessions.describe_client(ctx.request.headers.get("user-agent"))

    async def complete() -> dict[str, Any]:
        try:
            result = await accounts.sign_in(services, b.email, b.password, b.org_slug, now, address, agent)
        except Unauthenticated as exc:
            await audit.record_failed_sign_in(services.sessions, b.email, address, exc.code, now)
            raise
        return {
            "token": result.token,
            "token_type": "Bearer",
            "expires_at": result.expires_at,
            "user": account_view(result.user),
            "org": org_view(result.opened_org) if result.opened_org else None,
            "needs_default_org": accounts.needs_default_org(result.user) and b.org_slug is None,
        }

    return Deferred(complete)


def account_view(user: User) -> dict[str, Any]:
    """The caller's own account: as others see it, and whether its address is verified."""
    return {**user_view(user), "email_verified": user.email_verified_at is not None}


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
    """The signed-in user, their orgs (each with its unread notification count), default org and pending invitations."""
    user = ctx.current_user
    mine = await orgs.my_orgs(ctx.session, user.id)
    # Counted only where the person has the Feeds tab (actions/unread_counts.py); 0 elsewhere.
    unread = await unread_by_org(ctx.session, user.id, [m.org.id for m in mine if counted(m.profile.permissions or [], m.membership.is_super_admin)])
    pending = await invitations.pending_for_user(ctx.session, user, ctx.services.clock())
    return {
        "user": account_view(user),
        "default_org": next((org_view(m.org) for m in mine if m.org.id == user.default_org_id), None),
        "needs_default_org": accounts.needs_default_org(user),
        "orgs": [{**my_org_view(m.org, m.membership, m.profile, m.role, user.default_org_id), "unread": unread.get(m.org.id, 0)} for m in mine],
        "invitations": [invitation_view(inv, org) for inv, org in pending],
    }


@routes.put("/api/v1/me/default-org", access=USER, body=DefaultOrgBody)
async def set_default_org(ctx: Ctx) -> dict[str, Any]:
    """Make one of the user's orgs their default (F-ORG-7)."""
    org = await accounts.set_default_org(ctx.session, ctx.current_user, ctx.body.org_slug)
    return {"default_org": org_view(org), "needs_default_org": False}
