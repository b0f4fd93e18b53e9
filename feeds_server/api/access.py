"""Who is calling, and may they: bearer tokens, the org in the path, membership and its permissions,
integration tokens, and IP allow-lists (F-SEC-4). Each endpoint declares its access (api/routing.py)."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from starlette.requests import Request

from feeds_server.api.context import Ctx, Member
from feeds_server.api.routing import INTEGRATION, MEMBER, PUBLIC, Endpoint
from feeds_server.domain import network
from feeds_server.domain import permissions as perms
from feeds_server.errors import Forbidden, NotFound, Unauthenticated
from feeds_server.secrets import tokens
from feeds_server.store.callers import find_caller
from feeds_server.store.models import AuthToken, Integration, Membership, Org, Profile, User
from feeds_server.store.scope import ORG_LOOKUP, allow_cross_org, set_org


async def authorize(ctx: Ctx, endpoint: Endpoint) -> None:
    if endpoint.access == PUBLIC:
        await _optional_user(ctx)
        return
    if endpoint.access == INTEGRATION:
        await _integration(ctx)
        return
    if endpoint.access == MEMBER:
        await _member(ctx, endpoint.permission, lean=ctx.opened_session is None)
        return
    await _user(ctx)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def user_for_token(ctx: Ctx, token: str) -> tuple[AuthToken, User] | None:
    """The live token and its user, or None when unknown, revoked or expired."""
    if not token.startswith(tokens.BEARER_PREFIX) or len(token) > 200:
        return None
    row = (
        await ctx.session.execute(
            select(AuthToken, User)
            .join(User, User.id == AuthToken.user_id)
            .where(AuthToken.token_hash == tokens.hash_secret(token))
        )
    ).first()
    if row is None:
        return None
    auth, user = row
    if auth.revoked_at is not None or auth.expires_at <= ctx.services.clock():
        return None
    return auth, user


async def _optional_user(ctx: Ctx) -> None:
    token = bearer_token(ctx.request)
    if token:
        found = await user_for_token(ctx, token)
        if found:
            ctx.token, ctx.user = found


async def _user(ctx: Ctx) -> None:
    token = bearer_token(ctx.request)
    if not token:
        raise Unauthenticated("unauthenticated", "sign in and send 'Authorization: Bearer <token>'")
    found = await user_for_token(ctx, token)
    if not found:
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    ctx.token, ctx.user = found


async def _org_from_path(ctx: Ctx) -> Org:
    slug = ctx.path.get("slug")
    org = (await ctx.session.execute(select(Org).where(Org.slug == slug))).scalar_one_or_none() if slug else None
    if org is None:
        raise NotFound("org_not_found", "no such org")
    set_org(ctx.session, org.id)
    ctx.org = org
    return org


def request_address(ctx: Ctx) -> str | None:
    peer = ctx.request.client.host if ctx.request.client else None
    return network.client_address(peer, ctx.request.headers.get("x-forwarded-for"), ctx.services.settings.trusted_proxies)


def check_ip(ctx: Ctx, org: Org) -> None:
    """F-SEC-4: an org that restricts access by IP refuses every request from elsewhere."""
    if org.ip_allowlist and not network.allowed(request_address(ctx), org.ip_allowlist):
        raise Forbidden("ip_not_allowed", "this org does not accept requests from your network")


# Built once: this runs on nearly every request.
_CALLER = (
    select(AuthToken, User, Org, Membership, Profile)
    .join(User, User.id == AuthToken.user_id)
    .outerjoin(Org, Org.slug == bindparam("slug"))
    .outerjoin(Membership, (Membership.org_id == Org.id) & (Membership.user_id == User.id))
    .outerjoin(Profile, Profile.id == Membership.profile_id)
    .where(AuthToken.token_hash == bindparam("token_hash"))
    .execution_options(**ORG_LOOKUP)
)


async def _member(ctx: Ctx, permission: str | None, lean: bool = False) -> None:
    """The caller's token, account, org, membership and profile, in one query (the busiest path).
    `lean`: the same query straight to the driver, outside the request's session (store/callers.py)."""
    token = bearer_token(ctx.request)
    if not token:
        raise Unauthenticated("unauthenticated", "sign in and send 'Authorization: Bearer <token>'")
    if not token.startswith(tokens.BEARER_PREFIX) or len(token) > 200:
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    params = {"token_hash": tokens.hash_secret(token), "slug": ctx.path.get("slug")}
    if lean and not ctx.services.settings.is_sqlite:
        row = await find_caller(ctx.services.engine, params["token_hash"], params["slug"])
    elif lean:
        async with ctx.services.read_sessions() as session:  # closed before the handler runs
            row = (await session.execute(_CALLER, params)).first()
    else:
        row = (await ctx.session.execute(_CALLER, params)).first()
    if row is None:
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    auth, user, org, membership, profile = row
    if auth.revoked_at is not None or auth.expires_at <= ctx.services.clock():
        raise Unauthenticated("invalid_token", "the token is unknown, revoked or expired")
    ctx.token, ctx.user = auth, user
    if org is None or membership is None or profile is None:
        # Not a member answers exactly as an org that does not exist.
        raise NotFound("org_not_found", "no such org")
    if ctx.opened_session is not None:  # else set when it opens (`_run_on_demand`)
        set_org(ctx.opened_session, org.id)
    ctx.org = org
    check_ip(ctx, org)
    ctx.member = Member(user, membership, perms.effective_permissions(profile.permissions, membership.is_super_admin))
    if permission:
        ctx.member.require(permission)


async def _integration(ctx: Ctx) -> None:
    """The token is checked before the org, so a bad token answers the same for every slug."""
    token = bearer_token(ctx.request)
    if not token or not token.startswith(tokens.INTEGRATION_PREFIX) or len(token) > 200:
        raise Unauthenticated("unauthenticated", "send the integration token as 'Authorization: Bearer <token>'")
    allow_cross_org(ctx.session)
    integration = (
        await ctx.session.execute(select(Integration).where(Integration.token_hash == tokens.hash_secret(token)))
    ).scalar_one_or_none()
    if integration is None or integration.revoked_at is not None:
        raise Unauthenticated("invalid_token", "the integration token is unknown or revoked")
    org = await _org_from_path(ctx)
    if integration.org_id != org.id:
        raise Unauthenticated("invalid_token", "the integration token is unknown or revoked")
    check_ip(ctx, org)
    ctx.integration = integration
