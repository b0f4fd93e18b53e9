"""Connection tokens for the real-time endpoint (docs/realtime.md)."""

from __future__ import annotations

import time
from typing import Any

from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.domain import permissions as perms
from feeds_server.realtime import conn_tokens
from feeds_server.realtime.endpoint import PATH

routes = Routes("realtime")


@routes.post("/api/v1/orgs/{slug}/realtime/token", permission=perms.FEEDS_TAB)
async def connection_token(ctx: Ctx) -> dict[str, Any]:
    """A short-lived token for the WebSocket `connect` command, bound to this org, user and sign-in."""
    assert ctx.token is not None
    settings = ctx.services.settings
    expires = int(time.time()) + settings.connection_token_ttl_seconds
    claims = conn_tokens.ConnectionClaims(ctx.me.user_id, ctx.current_org.id, ctx.token.id, expires)
    ws_base = settings.public_url.replace("https://", "wss://").replace("http://", "ws://")
    return {
        "token": conn_tokens.mint(settings.secret_key, claims),
        "expires_at": expires,
        "url": ws_base + PATH,
    }
