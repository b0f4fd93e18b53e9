"""In-app notifications, the member's notification settings, and one-click unsubscribe (F-NOTIF-1, F-NOTIF-2)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import select
from starlette.responses import HTMLResponse, Response

from feeds_server import limits
from feeds_server.actions import notifications
from feeds_server.api.context import Ctx
from feeds_server.api.routing import PUBLIC, Routes
from feeds_server.api.schemas import Body, Query
from feeds_server.domain import permissions as perms
from feeds_server.errors import NotFound
from feeds_server.notify.emails import check_unsubscribe_token
from feeds_server.store.models import NotificationSettings
from feeds_server.store.scope import set_org

routes = Routes("notifications")
FEED = perms.FEEDS_TAB


class NotificationsQuery(Query):
    unread: bool = False
    before: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


class SettingsBody(Body):
    mention_emails: bool | None = None
    batch_window_seconds: int | None = Field(default=None, ge=0, le=limits.MAX_MENTION_BATCH_SECONDS)


def _settings_view(s: NotificationSettings) -> dict[str, Any]:
    return {"mention_emails": s.mention_emails, "batch_window_seconds": s.batch_window_seconds}


@routes.get("/api/v1/orgs/{slug}/notifications", permission=FEED, query=NotificationsQuery)
async def list_notifications(ctx: Ctx) -> dict[str, Any]:
    """The caller's notifications, newest first; `unread=true` for unread only; `before` pages back."""
    q: NotificationsQuery = ctx.query
    items = await notifications.list_for(ctx.session, ctx.me.user_id, q.unread, q.before, q.limit + 1)
    page = items[: q.limit]
    return {
        "notifications": [notifications.notification_view(n) for n in page],
        "unread": await notifications.unread_count(ctx.session, ctx.me.user_id),
        "next_before": page[-1].id if len(items) > q.limit else None,
    }


@routes.get("/api/v1/orgs/{slug}/notifications/unread-count", permission=FEED)
async def unread_count(ctx: Ctx) -> dict[str, Any]:
    """How many notifications are unread."""
    return {"unread": await notifications.unread_count(ctx.session, ctx.me.user_id)}


@routes.post("/api/v1/orgs/{slug}/notifications/{notification_id:int}/read", permission=FEED)
async def mark_read(ctx: Ctx) -> dict[str, Any]:
    """Mark one notification read (its pending email, if any, is then not sent)."""
    left = await notifications.mark_read(ctx.session, ctx.me.user_id, ctx.path["notification_id"], ctx.services.clock())
    return {"unread": left}


@routes.post("/api/v1/orgs/{slug}/notifications/read-all", permission=FEED)
async def mark_all_read(ctx: Ctx) -> dict[str, Any]:
    """Mark every notification read."""
    return {"unread": await notifications.mark_read(ctx.session, ctx.me.user_id, None, ctx.services.clock())}


@routes.get("/api/v1/orgs/{slug}/notification-settings", permission=FEED)
async def get_settings(ctx: Ctx) -> dict[str, Any]:
    """The caller's email settings in this org."""
    return {"settings": _settings_view(await notifications.get_settings(ctx.session, ctx.me.user_id))}


@routes.patch("/api/v1/orgs/{slug}/notification-settings", permission=FEED, body=SettingsBody)
async def update_settings(ctx: Ctx) -> dict[str, Any]:
    """Turn mention emails on or off; set the batching window in seconds (0 sends each at once)."""
    s = await notifications.get_settings(ctx.session, ctx.me.user_id)
    b: SettingsBody = ctx.body
    if b.mention_emails is not None:
        s.mention_emails = b.mention_emails
    if b.batch_window_seconds is not None:
        s.batch_window_seconds = b.batch_window_seconds
    await ctx.session.flush()
    return {"settings": _settings_view(s)}


async def _unsubscribe(ctx: Ctx) -> None:
    found = check_unsubscribe_token(ctx.services.settings.secret_key, ctx.path["token"])
    if found is None:
        raise NotFound("unsubscribe_link_invalid", "this unsubscribe link is not valid")
    org_id, user_id = found
    set_org(ctx.session, org_id)
    row = (await ctx.session.execute(select(NotificationSettings).where(NotificationSettings.user_id == user_id))).scalar_one_or_none()
    if row is None:
        ctx.session.add(NotificationSettings(user_id=user_id, mention_emails=False, batch_window_seconds=limits.DEFAULT_MENTION_BATCH_SECONDS))
    else:
        row.mention_emails = False
    await ctx.session.flush()


@routes.post("/api/v1/unsubscribe/{token}", access=PUBLIC)
async def unsubscribe_one_click(ctx: Ctx) -> Response:
    """RFC 8058 one-click unsubscribe: turns off mention emails for that user in that org."""
    await _unsubscribe(ctx)
    return HTMLResponse("<!doctype html><title>Unsubscribed</title><p>You will get no more mention emails from this org.</p>")


@routes.get("/api/v1/unsubscribe/{token}", access=PUBLIC)
async def unsubscribe_page(ctx: Ctx) -> Response:
    """The link opened in a browser: a button that confirms (a GET changes nothing, so link scanners cannot unsubscribe)."""
    if check_unsubscribe_token(ctx.services.settings.secret_key, ctx.path["token"]) is None:
        raise NotFound("unsubscribe_link_invalid", "this unsubscribe link is not valid")
    return HTMLResponse(
        "<!doctype html><title>Unsubscribe</title><form method=post>"
        "<p>Stop mention emails from this org?</p><button type=submit>Unsubscribe</button></form>"
    )
