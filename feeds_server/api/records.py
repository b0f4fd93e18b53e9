"""Records: the CRM integration endpoint, record cards, follows, "followed by me", dormant records
(F-FOLLOW-1 … F-FOLLOW-3, F-FOLLOW-8 … F-FOLLOW-10)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from feeds_server import limits
from feeds_server.actions import records, webhooks
from feeds_server.actions.records import RecordEvent
from feeds_server.api.context import Ctx
from feeds_server.api.routing import INTEGRATION, Routes
from feeds_server.api.schemas import Body, PageQuery, Query, Text

from feeds_server.domain import permissions as perms
from feeds_server.store.models import Record

routes = Routes("records")
FEED = perms.FEEDS_TAB
Module = Field(min_length=1, max_length=64)


class RecordIn(Body):
    id: Text = Field(min_length=1, max_length=128)
    name: Text | None = Field(default=None, max_length=limits.MAX_NAME_CHARS)
    owner_email: Text | None = Field(default=None, max_length=limits.MAX_EMAIL_CHARS)
    creator_email: Text | None = Field(default=None, max_length=limits.MAX_EMAIL_CHARS)
    territory: Text | None = Field(default=None, max_length=limits.MAX_NAME_CHARS)
    fields: dict[str, Any] = Field(default_factory=dict)


class ChangeIn(Body):
    field: Text = Field(max_length=100)
    old: Any = None
    new: Any = None


class NoteIn(Body):
    id: Text | None = Field(default=None, max_length=128)
    text: Text = Field(max_length=4 * (limits.MAX_POST_CHARS + 1))


class EventIn(Body):
    event_id: Text = Field(min_length=1, max_length=128)
    type: Literal["created", "edited", "deleted", "note_added"]
    module: Text = Module
    record: RecordIn
    actor_email: Text | None = Field(default=None, max_length=limits.MAX_EMAIL_CHARS)
    changes: list[ChangeIn] = Field(default_factory=list, max_length=limits.MAX_RECORD_FIELDS)
    note: NoteIn | None = None

    @model_validator(mode="after")
    def _note_for_notes(self) -> "EventIn":
        if self.type == "note_added" and self.note is None:
            raise ValueError("a note_added event needs a note")
        return self


class BatchIn(Body):
    events: list[EventIn] = Field(min_length=1, max_length=limits.MAX_RECORD_EVENTS_PER_BATCH)


class FollowedQuery(PageQuery):
    module: str | None = Field(default=None, max_length=64)


class DormantQuery(Query):
    days: int = Field(ge=-(10**6), le=10**6)
    module: str | None = Field(default=None, max_length=64)
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


class WebhookIn(Body):
    url: Text = Field(min_length=8, max_length=2000, pattern=r"^https?://")


def _event(e: EventIn) -> RecordEvent:
    r = e.record
    return RecordEvent(
        event_id=e.event_id, type=e.type, module=e.module, crm_id=r.id, name=r.name, owner_email=r.owner_email,
        creator_email=r.creator_email, actor_email=e.actor_email, territory=r.territory, fields=r.fields,
        changes=tuple(c.model_dump() for c in e.changes), note_id=e.note.id if e.note else None, note_text=e.note.text if e.note else None,
    )


@routes.post("/api/v1/orgs/{slug}/integration/record-events", access=INTEGRATION, body=BatchIn)
async def record_events(ctx: Ctx) -> dict[str, Any]:
    """Record events from the CRM (integration token): created, edited, deleted, note added; up to 500 a batch,
    idempotent by `event_id`."""
    results = await records.ingest(ctx.session, ctx.current_org, [_event(e) for e in ctx.body.events], ctx.services.clock())
    return {"results": results}


def _record_view(record: Record, card: dict[str, Any], following: bool | None = None) -> dict[str, Any]:
    out = {**card, "last_activity_at": record.last_activity_at, "deleted": record.deleted_at is not None}
    if following is not None:
        out["following"] = following
    return out


@routes.get("/api/v1/orgs/{slug}/records/{record_id:int}", permission=FEED)
async def get_record(ctx: Ctx) -> dict[str, Any]:
    """A record's business card, and whether the caller follows it."""
    record = await records.visible_record(ctx.session, ctx.path["record_id"])
    following = ctx.me.user_id in await records.follower_ids(ctx.session, record.id)
    return {"record": _record_view(record, await records.card(ctx.session, record), following)}


@routes.put("/api/v1/orgs/{slug}/records/{record_id:int}/follow", permission=FEED)
async def follow(ctx: Ctx) -> dict[str, Any]:
    """Follow a record (the Follow button)."""
    record = await records.follow_by_hand(ctx.session, ctx.me.user_id, ctx.path["record_id"], ctx.services.clock())
    return {"record": _record_view(record, await records.card(ctx.session, record), True)}


@routes.delete("/api/v1/orgs/{slug}/records/{record_id:int}/follow", permission=FEED, status=204)
async def unfollow(ctx: Ctx) -> None:
    """Stop following a record."""
    await records.unfollow(ctx.session, ctx.me.user_id, ctx.path["record_id"])


@routes.get("/api/v1/orgs/{slug}/followed-records", permission=FEED, query=FollowedQuery)
async def followed(ctx: Ctx) -> dict[str, Any]:
    """"Followed by me": all modules or one (`module`), paginated by `cursor`."""
    q: FollowedQuery = ctx.query
    after = int(q.cursor) if q.cursor and q.cursor.isdigit() and len(q.cursor) < 19 else None
    rows = await records.followed_by(ctx.session, ctx.me.user_id, q.module, after, q.limit + 1)
    page = rows[: q.limit]
    return {
        "records": [_record_view(r, await records.card(ctx.session, r), True) for r in page],
        "next_cursor": str(page[-1].id) if len(rows) > q.limit else None,
    }


@routes.get("/api/v1/orgs/{slug}/dormant-records", permission=FEED, query=DormantQuery)
async def dormant(ctx: Ctx) -> dict[str, Any]:
    """Records the caller owns or follows with no update for at least `days` days (1 to 180), oldest first."""
    q: DormantQuery = ctx.query
    page, nxt = await records.dormant(ctx.session, ctx.me.user_id, q.days, q.module, q.cursor, q.limit, ctx.services.clock())
    return {"records": [_record_view(r, await records.card(ctx.session, r)) for r in page], "next_cursor": nxt}


@routes.put("/api/v1/orgs/{slug}/integrations/{integration_id:int}/webhook", permission=perms.ADMIN, body=WebhookIn)
async def set_webhook(ctx: Ctx) -> dict[str, Any]:
    """Where comments on record items go back to the CRM as notes; the signing secret is shown once."""
    hook, secret = await webhooks.set_webhook(ctx.session, ctx.path["integration_id"], ctx.body.url)
    return {"webhook": {"integration_id": hook.integration_id, "url": hook.url}, "secret": secret}



