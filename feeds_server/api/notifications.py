"""In-app notifications, what the member chose to hear of and how, and one-click unsubscribe (F-NOTIF-1, F-NOTIF-2)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import Field
from starlette.responses import HTMLResponse, Response

from feeds_server import limits
from feeds_server.actions import notifications
from feeds_server.api.context import Ctx
from feeds_server.api.routing import PUBLIC, Routes
from feeds_server.api.schemas import Body, Query
from feeds_server.domain import permissions as perms
from feeds_server.domain.orgs import check_time_zone
from feeds_server.domain.preferences import check_channels
from feeds_server.errors import NotFound, ValidationFailed
from feeds_server.notify.emails import check_digest_unsubscribe_token, check_unsubscribe_token
from feeds_server.store.scope import set_org

routes = Routes("notifications")
FEED = perms.FEEDS_TAB


class NotificationsQuery(Query):
    unread: bool = False
    before: int | None = Field(default=None, ge=1, le=2**63 - 1)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


class QuietHoursBody(Body):
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)


class DigestBody(Body):
    frequency: Literal["off", "daily", "weekly"] | None = None
    hour: int | None = Field(default=None, ge=0, le=23)
    weekday: int | None = Field(default=None, ge=0, le=6)


class SettingsBody(Body):
    """Partial: only the fields given change; `null` clears snooze, quiet hours, the zone, dormancy."""

    mention_emails: bool | None = None
    batch_window_seconds: int | None = Field(default=None, ge=0, le=limits.MAX_MENTION_BATCH_SECONDS)
    channels: dict[str, dict[str, bool]] | None = None
    snooze_until: str | None = Field(default=None, max_length=64)
    quiet_hours: QuietHoursBody | None = None
    time_zone: str | None = Field(default=None, min_length=1, max_length=limits.MAX_TIME_ZONE_CHARS)
    digest: DigestBody | None = None
    dormant_days: int | None = Field(default=None, ge=limits.MIN_DORMANT_DAYS, le=limits.MAX_DORMANT_DAYS)
    record_merge_seconds: int | None = Field(default=None, ge=0, le=limits.MAX_RECORD_MERGE_SECONDS)


def _changes(b: SettingsBody) -> dict[str, Any]:
    """The body as `notifications.update_settings` takes it, each value checked where it enters."""
    changes: dict[str, Any] = {}
    for name in b.model_fields_set:
        value = getattr(b, name)
        if name == "channels" and value is not None:
            try:
                value = check_channels(value)
            except ValueError as exc:
                raise ValidationFailed("invalid_channels", str(exc), field="channels") from None
        elif name == "snooze_until" and value is not None:
            value = _aware(value)
        elif name == "quiet_hours" and value is not None:
            try:
                value = (notifications.parse_hhmm(value.start), notifications.parse_hhmm(value.end))
            except ValueError as exc:
                raise ValidationFailed("invalid_quiet_hours", str(exc), field="quiet_hours") from None
            if value[0] == value[1]:
                raise ValidationFailed("invalid_quiet_hours", "quiet hours must end at another time than they start", field="quiet_hours")
        elif name == "time_zone" and value is not None:
            check_time_zone(value)
        elif name == "digest" and value is not None:
            value = value.model_dump(exclude_none=True)
        changes[name] = value
    return changes


def _aware(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("invalid_snooze_until", "expected an ISO 8601 date and time", field="snooze_until") from None
    if when.tzinfo is None:
        raise ValidationFailed("invalid_snooze_until", "give the time with its offset (Z or +01:00)", field="snooze_until")
    try:
        return when.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 with an offset: outside what UTC can hold
        raise ValidationFailed("invalid_snooze_until", "expected a time between years 1 and 9999 in UTC", field="snooze_until") from None


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
    """What the caller hears of in this org, on which channel and when; mutes are listed apart."""
    row = await notifications.get_settings(ctx.session, ctx.me.user_id)
    return {"settings": notifications.settings_view(row, ctx.org.time_zone)}


@routes.patch("/api/v1/orgs/{slug}/notification-settings", permission=FEED, body=SettingsBody)
async def update_settings(ctx: Ctx) -> dict[str, Any]:
    """Change some settings: channels per kind, snooze, quiet hours, zone, digest, dormancy, windows."""
    row = await notifications.update_settings(ctx.session, ctx.me.user_id, _changes(ctx.body), ctx.services.clock())
    return {"settings": notifications.settings_view(row, ctx.org.time_zone)}


async def _unsubscribe(ctx: Ctx) -> None:
    found = check_unsubscribe_token(ctx.services.settings.secret_key, ctx.path["token"])
    if found is None:
        raise NotFound("unsubscribe_link_invalid", "this unsubscribe link is not valid")
    org_id, user_id = found
    set_org(ctx.session, org_id)
    await notifications.unsubscribe(ctx.session, user_id)


@routes.post("/api/v1/unsubscribe/{token}", access=PUBLIC)
async def unsubscribe_one_click(ctx: Ctx) -> Response:
    """RFC 8058 one-click unsubscribe: turns off notification emails (mentions and every other kind) for that user in that org."""
    await _unsubscribe(ctx)
    return HTMLResponse("<!doctype html><title>Unsubscribed</title><p>You will get no more notification emails from this org. Choose again in its notification settings.</p>")


@routes.get("/api/v1/unsubscribe/{token}", access=PUBLIC)
async def unsubscribe_page(ctx: Ctx) -> Response:
    """The link opened in a browser: a button that confirms (a GET changes nothing, so link scanners cannot unsubscribe)."""
    if check_unsubscribe_token(ctx.services.settings.secret_key, ctx.path["token"]) is None:
        raise NotFound("unsubscribe_link_invalid", "this unsubscribe link is not valid")
    return HTMLResponse(
        "<!doctype html><title>Unsubscribe</title><form method=post>"
        "<p>Stop notification emails from this org?</p><button type=submit>Unsubscribe</button></form>"
    )


def _digest_token(ctx: Ctx) -> tuple[int, int]:
    found = check_digest_unsubscribe_token(ctx.services.settings.secret_key, ctx.path["token"])
    if found is None:
        raise NotFound("unsubscribe_link_invalid", "this unsubscribe link is not valid")
    return found


@routes.post("/api/v1/unsubscribe/digest/{token}", access=PUBLIC)
async def unsubscribe_digest_one_click(ctx: Ctx) -> Response:
    """RFC 8058 one-click unsubscribe from the digest: turns that user's digest off in that org, nothing else."""
    org_id, user_id = _digest_token(ctx)
    set_org(ctx.session, org_id)
    await notifications.update_settings(ctx.session, user_id, {"digest": {"frequency": "off"}}, ctx.services.clock())
    return HTMLResponse("<!doctype html><title>Unsubscribed</title><p>You will get no more digests from this org. Choose again in its notification settings.</p>")


@routes.get("/api/v1/unsubscribe/digest/{token}", access=PUBLIC)
async def unsubscribe_digest_page(ctx: Ctx) -> Response:
    """The digest's link opened in a browser: a button that confirms (a GET changes nothing)."""
    _digest_token(ctx)
    return HTMLResponse(
        "<!doctype html><title>Unsubscribe</title><form method=post>"
        "<p>Stop digest emails from this org?</p><button type=submit>Unsubscribe</button></form>"
    )
