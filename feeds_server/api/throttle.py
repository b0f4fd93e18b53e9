"""Which request spends which rate limit (docs/operations.md, "Rate limits").

Handlers call these before doing the work they protect; a refusal is `RateLimited` (HTTP 429 with
`Retry-After`). Limits per user are checked after authentication, limits per address use the client's
address as `FEEDS_TRUSTED_PROXIES` allows it to be known.
"""

from __future__ import annotations

import hashlib
import math

from feeds_server.runtime import metrics
from feeds_server.api.context import Ctx
from feeds_server.api.access import request_address
from feeds_server.actions.credentials import sign_in_refused_email
from feeds_server.config import Settings
from feeds_server.domain.orgs import normalize_email
from feeds_server.errors import RateLimited
from feeds_server.ratelimit.limiter import Checks, Limiter, Rate


class Rates:
    """The limits in force, built once from the settings, each with its refusal counter."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits
        self.posts_per_user = Rate("posts_per_user", *settings.rate_posts_per_user)
        self.posts_per_ip = Rate("posts_per_ip", *settings.rate_posts_per_ip)
        self.uploads_per_user = Rate("uploads_per_user", *settings.rate_uploads_per_user)
        self.uploads_per_ip = Rate("uploads_per_ip", *settings.rate_uploads_per_ip)
        self.signins_per_ip = Rate("signins_per_ip", *settings.rate_signins_per_ip)
        self.signins_per_account_address = Rate("signins_per_account_address", *settings.rate_signins_per_account_address)
        self.signins_per_account = Rate("signins_per_account", *settings.rate_signins_per_account)
        # At most one "sign-ins were refused" email per account per window of the (account, address) limit.
        self.signin_alerts = Rate("signin_alerts", 1, settings.rate_signins_per_account_address[1])
        self.signups_per_ip = Rate("signups_per_ip", *settings.rate_signups_per_ip)
        self.account_emails = Rate("account_emails", *settings.rate_account_emails)
        self.reactions_per_user = Rate("reactions_per_user", *settings.rate_reactions_per_user)
        self.connections_cap = settings.ws_connections_per_user if settings.rate_limits else 0
        names = [r.name for r in vars(self).values() if isinstance(r, Rate)] + ["ws_connections_per_user"]
        self.refused = {name: metrics.RATE_LIMITED.labels(name) for name in names}


async def spend(limiter: Limiter, rates: Rates, checks: Checks) -> None:
    """Count the request against every (rate, key), or raise `RateLimited` for the first that refuses."""
    if not rates.enabled:
        return
    refused = await limiter.spend(checks)
    if refused is None:
        return
    rate, wait = refused
    rates.refused[rate.name].inc()
    retry_after = max(1, math.ceil(wait))
    raise RateLimited(
        "rate_limited", f"too many requests ({rate.requests} per {rate.seconds:g} s); retry in {retry_after} s",
        limit=rate.name, retry_after=retry_after,
    )


def _state(ctx: Ctx) -> tuple[Limiter, Rates]:
    state = ctx.request.app.state
    return state.limiter, state.rates


async def posting(ctx: Ctx) -> None:
    """A post, comment or message by the signed-in member."""
    limiter, rates = _state(ctx)
    await spend(limiter, rates, [(rates.posts_per_user, str(ctx.me.user_id)), (rates.posts_per_ip, request_address(ctx) or "-")])


async def reacting(ctx: Ctx) -> None:
    """A reaction turned on or off by the signed-in member."""
    limiter, rates = _state(ctx)
    await spend(limiter, rates, [(rates.reactions_per_user, str(ctx.me.user_id))])


async def uploading(ctx: Ctx) -> None:
    """A post that carries files (on top of `posting`)."""
    limiter, rates = _state(ctx)
    await spend(limiter, rates, [(rates.uploads_per_user, str(ctx.me.user_id)), (rates.uploads_per_ip, request_address(ctx) or "-")])


def account_key(email: str) -> str:
    """A target account as the limits know it: its email, never kept in the clear."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]


async def signing_in(ctx: Ctx, email: str) -> None:
    """Every sign-in attempt (and every check of a current password): per address, per (target
    account, address), and per target account under a ceiling far above the pair's. Guesses from one
    address stop there while the owner still signs in from theirs; when the pair's or the account's
    limit refuses, the owner is told by email, once a window (`signin_alerts`)."""
    limiter, rates = _state(ctx)
    address = request_address(ctx) or "-"
    account = account_key(email)
    checks = [(rates.signins_per_ip, address), (rates.signins_per_account_address, f"{account}|{address}"), (rates.signins_per_account, account)]
    try:
        await spend(limiter, rates, checks)
    except RateLimited as refused:
        if refused.details.get("limit") in {rates.signins_per_account_address.name, rates.signins_per_account.name}:
            await _tell_owner(ctx, email, address, account)
        raise


async def _tell_owner(ctx: Ctx, email: str, address: str, account: str) -> None:
    limiter, rates = _state(ctx)
    if rates.enabled and await limiter.spend([(rates.signin_alerts, account)]) is None:
        await sign_in_refused_email(ctx.services, email, address, ctx.services.clock())


async def signing_up(ctx: Ctx) -> None:
    """Every sign-up, per address."""
    limiter, rates = _state(ctx)
    await spend(limiter, rates, [(rates.signups_per_ip, request_address(ctx) or "-")])


async def may_email_account(ctx: Ctx, email: str) -> bool:
    """Whether the account of `email` may get one more account email now (verification sent again,
    password reset, "you already have an account"); counted either way, so asking costs the same
    whether the account exists or not."""
    limiter, rates = _state(ctx)
    if not rates.enabled:
        return True
    return await limiter.spend([(rates.account_emails, account_key(email))]) is None


async def emailing_own_account(ctx: Ctx) -> None:
    """The signed-in user asks for an account email (the verification link again)."""
    limiter, rates = _state(ctx)
    await spend(limiter, rates, [(rates.account_emails, account_key(ctx.current_user.email))])
