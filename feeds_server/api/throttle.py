"""Which request spends which rate limit (docs/operations.md, "Rate limits").

Handlers call these before doing the work they protect; a refusal is `RateLimited` (HTTP 429 with
`Retry-After`). Limits per user are checked after authentication, limits per address use the client's
address as `FEEDS_TRUSTED_PROXIES` allows it to be known.
"""

from __future__ import annotations

import hashlib
import math

from feeds_server import metrics
from feeds_server.api.context import Ctx
from feeds_server.api.dispatch import request_address
from feeds_server.config import Settings
from feeds_server.errors import RateLimited
from feeds_server.ratelimit import Checks, Limiter, Rate


class Rates:
    """The limits in force, built once from the settings, each with its refusal counter."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits
        self.posts_per_user = Rate("posts_per_user", *settings.rate_posts_per_user)
        self.posts_per_ip = Rate("posts_per_ip", *settings.rate_posts_per_ip)
        self.uploads_per_user = Rate("uploads_per_user", *settings.rate_uploads_per_user)
        self.uploads_per_ip = Rate("uploads_per_ip", *settings.rate_uploads_per_ip)
        self.signins_per_ip = Rate("signins_per_ip", *settings.rate_signins_per_ip)
        self.signins_per_email = Rate("signins_per_email", *settings.rate_signins_per_email)
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


async def uploading(ctx: Ctx) -> None:
    """A post that carries files (on top of `posting`)."""
    limiter, rates = _state(ctx)
    await spend(limiter, rates, [(rates.uploads_per_user, str(ctx.me.user_id)), (rates.uploads_per_ip, request_address(ctx) or "-")])


async def signing_in(ctx: Ctx, email: str) -> None:
    """Every sign-in attempt, per address and per target account (the email, never stored in the clear)."""
    limiter, rates = _state(ctx)
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    await spend(limiter, rates, [(rates.signins_per_ip, request_address(ctx) or "-"), (rates.signins_per_email, account)])
