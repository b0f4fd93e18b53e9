"""Web Push: the server's public key, and the browsers a member subscribed in an org."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions import push_subscriptions
from feeds_server.api.context import Ctx
from feeds_server.api.routing import PUBLIC, Routes
from feeds_server.api.schemas import Body, Text
from feeds_server.domain import egress, push_targets
from feeds_server.domain import permissions as perms
from feeds_server.errors import ValidationFailed
from feeds_server.notify import vapid

routes = Routes("push")
FEED = perms.FEEDS_TAB


class PushKeys(Body):
    # Room for the padded base64 of the raw sizes; the values are checked and kept unpadded below.
    p256dh: Text = Field(min_length=1, max_length=100)
    auth: Text = Field(min_length=1, max_length=40)


class PushSubscriptionIn(Body):
    """The browser's `PushSubscription.toJSON()`, as it is."""

    endpoint: Text = Field(min_length=1, max_length=limits.MAX_PUSH_ENDPOINT_CHARS)
    keys: PushKeys
    expirationTime: int | float | None = None  # noqa: N815 - the browser's own name


@routes.get("/api/v1/push/public-key", access=PUBLIC)
async def public_key(ctx: Ctx) -> dict[str, Any]:
    """The server's VAPID public key (base64url, uncompressed P-256): `applicationServerKey` for
    `PushManager.subscribe`; `enabled` is false while the server has no VAPID subject push services
    accept (FEEDS_VAPID_SUBJECT), so no push would go out and the client says so."""
    settings = ctx.services.settings
    try:
        vapid.subject(settings)
    except ValueError:
        return {"public_key": vapid.public_key(settings), "enabled": False}
    return {"public_key": vapid.public_key(settings), "enabled": True}


@routes.post("/api/v1/orgs/{slug}/push-subscriptions", permission=FEED, body=PushSubscriptionIn, status=201)
async def subscribe(ctx: Ctx) -> dict[str, Any]:
    """Receive pushes in this browser; the same endpoint again refreshes it (and makes it the caller's).
    Plain http, and addresses inside the operator's network, only within FEEDS_PUSH_ALLOW_NETWORKS."""
    body: PushSubscriptionIn = ctx.body
    allow = egress.parse_networks(ctx.services.settings.push_allow_networks)
    if why := push_targets.endpoint_refusal(body.endpoint, allow):
        raise ValidationFailed("push_endpoint_not_allowed", why, field="endpoint")
    if bad := push_targets.keys_refusal(body.keys.p256dh, body.keys.auth):
        raise ValidationFailed("push_keys_invalid", bad[1], field=bad[0])
    agent = ctx.request.headers.get("user-agent", "")
    agent = "".join(c for c in agent if c.isprintable())[:200] or None
    sub = await push_subscriptions.subscribe(
        ctx.session, ctx.me.user_id, body.endpoint,
        push_targets.canonical_key(body.keys.p256dh), push_targets.canonical_key(body.keys.auth), agent, ctx.services.clock()
    )
    return {"subscription": push_subscriptions.subscription_view(sub)}


@routes.get("/api/v1/orgs/{slug}/push-subscriptions", permission=FEED)
async def list_subscriptions(ctx: Ctx) -> dict[str, Any]:
    """The caller's subscribed browsers in this org."""
    subs = await push_subscriptions.list_for(ctx.session, ctx.me.user_id)
    return {"subscriptions": [push_subscriptions.subscription_view(s) for s in subs]}


@routes.delete("/api/v1/orgs/{slug}/push-subscriptions/{subscription_id:int}", permission=FEED, status=204)
async def unsubscribe(ctx: Ctx) -> None:
    """Stop pushes to one of the caller's browsers; its pushes not yet sent are dropped."""
    await push_subscriptions.unsubscribe(ctx.session, ctx.me.user_id, ctx.path["subscription_id"])
