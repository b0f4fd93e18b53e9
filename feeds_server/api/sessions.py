"""The signed-in user's sessions: list them, end one, sign out everywhere (actions/sessions.py)."""

from __future__ import annotations

from typing import Any

from feeds_server.actions import sessions
from feeds_server.api.context import Ctx
from feeds_server.api.routing import USER, Routes
from feeds_server.store.models import AuthToken

routes = Routes("accounts")


def session_view(token: AuthToken, current: AuthToken | None) -> dict[str, Any]:
    return {
        "id": token.id,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "address": token.address,
        "user_agent": token.user_agent,
        "current": current is not None and token.id == current.id,
    }


@routes.get("/api/v1/me/sessions", access=USER, reads_only=True)
async def list_sessions(ctx: Ctx) -> dict[str, Any]:
    """The account's live sessions (sign-ins not signed out nor expired), newest first."""
    live = await sessions.live(ctx.session, ctx.current_user.id, ctx.services.clock())
    return {"sessions": [session_view(t, ctx.token) for t in live]}


@routes.delete("/api/v1/me/sessions/{session_id:int}", access=USER, status=204)
async def end_session(ctx: Ctx) -> None:
    """End one of the account's sessions; its live connections close."""
    token_id = ctx.path["session_id"]
    await sessions.revoke_one(ctx.session, ctx.current_user.id, token_id, ctx.services.clock())
    services = ctx.services
    ctx.after_commit(lambda: sessions.announce(services, [token_id]))


@routes.post("/api/v1/auth/signout-everywhere", access=USER, status=204)
async def sign_out_everywhere(ctx: Ctx) -> None:
    """End every session of the account, this one included; every live connection closes."""
    ended = await sessions.revoke_all(ctx.session, ctx.current_user.id, ctx.services.clock())
    services = ctx.services
    ctx.after_commit(lambda: sessions.announce(services, ended))
