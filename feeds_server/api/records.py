"""Records: the CRM integration endpoint, record cards, follows, "followed by me", dormant records, and
the webhook that sends comments back to the CRM as notes (F-FOLLOW-1 … F-FOLLOW-3, F-FOLLOW-8 … F-FOLLOW-10)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, Field, field_validator, model_validator

from feeds_server import limits
from feeds_server.actions import records, webhooks
from feeds_server.actions.records import RecordEvent
from feeds_server.api.context import Ctx
from feeds_server.api.routing import INTEGRATION, Routes
from feeds_server.api.schemas import Body, Id, Line, PageQuery, Text
from feeds_server.domain import egress
from feeds_server.domain import permissions as perms
from feeds_server.errors import ValidationFailed
from feeds_server.store.models import Record

routes = Routes("records")
FEED = perms.FEEDS_TAB
Module = Annotated[Text, Field(min_length=1, max_length=limits.MAX_MODULE_CHARS)]
FieldName = Annotated[Text, Field(min_length=1, max_length=limits.MAX_FIELD_NAME_CHARS)]
OptionalEmail = Annotated[Text | None, Field(max_length=limits.MAX_EMAIL_CHARS)]


class RecordIn(Body):
    id: Text = Field(min_length=1, max_length=limits.MAX_CRM_ID_CHARS)
    name: Line | None = Field(default=None, min_length=1, max_length=limits.MAX_NAME_CHARS)
    owner_email: OptionalEmail = None
    creator_email: OptionalEmail = None
    territory: Line | None = Field(default=None, max_length=limits.MAX_NAME_CHARS)
    fields: dict[FieldName, Any] = Field(default_factory=dict, max_length=limits.MAX_RECORD_FIELDS)
    key_fields: list[FieldName] | None = Field(default=None, max_length=limits.BUSINESS_CARD_FIELDS)


class ChangeIn(Body):
    field: FieldName
    old: Any = None
    new: Any = None


class NoteIn(Body):
    id: Text | None = Field(default=None, max_length=limits.MAX_CRM_ID_CHARS)
    text: Text = Field(max_length=4 * (limits.MAX_POST_CHARS + 1))
    comment_id: Id | None = None  # the `note.comment_id` of a webhook call, when the CRM reports that note back


class EventIn(Body):
    event_id: Text = Field(min_length=1, max_length=limits.MAX_CRM_ID_CHARS)
    type: Literal["created", "edited", "deleted", "note_added"]
    module: Module
    record: RecordIn
    occurred_at: AwareDatetime | None = None
    actor_email: OptionalEmail = None
    changes: list[ChangeIn] = Field(default_factory=list, max_length=limits.MAX_RECORD_FIELDS)
    note: NoteIn | None = None

    @model_validator(mode="after")
    def _note_with_notes_only(self) -> EventIn:
        if (self.type == "note_added") != (self.note is not None):
            raise ValueError("a note_added event needs a note, and only it carries one")
        return self


class BatchIn(Body):
    events: list[EventIn] = Field(min_length=1, max_length=limits.MAX_RECORD_EVENTS_PER_BATCH)


class FollowIn(Body):
    """The fields this follow cares about: absent keeps what the follow had (every field for a new one), null is every field."""

    fields: Annotated[list[FieldName] | None, Field(min_length=1, max_length=limits.MAX_FOLLOW_FIELDS)] = None


class FollowedQuery(PageQuery):
    module: str | None = Field(default=None, min_length=1, max_length=limits.MAX_MODULE_CHARS)


class DormantQuery(PageQuery):
    days: int = Field(ge=-(10**6), le=10**6)  # the 1 … 180 range is checked by the action, with its own error code
    module: str | None = Field(default=None, min_length=1, max_length=limits.MAX_MODULE_CHARS)


class WebhookIn(Body):
    url: Text = Field(min_length=8, max_length=limits.MAX_WEBHOOK_URL_CHARS, pattern=r"^https?://[^\s]+$")

    @field_validator("url")
    @classmethod
    def _parses(cls, url: str) -> str:
        """A host or port that does not parse would fail only at delivery: refuse it now."""
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
        if not parts.hostname:
            raise ValueError("the URL needs a host")
        return url


def _event(e: EventIn) -> RecordEvent:
    r, note = e.record, e.note
    return RecordEvent(
        event_id=e.event_id, type=e.type, module=e.module, crm_id=r.id, name=r.name, owner_email=r.owner_email,
        creator_email=r.creator_email, actor_email=e.actor_email, territory=r.territory, fields=dict(r.fields),
        key_fields=tuple(r.key_fields) if r.key_fields is not None else None, changes=tuple(c.model_dump() for c in e.changes),
        occurred_at=e.occurred_at, note_id=note.id if note else None, note_text=note.text if note else None,
        note_comment_id=note.comment_id if note else None,
    )


@routes.post("/api/v1/orgs/{slug}/integration/record-events", access=INTEGRATION, body=BatchIn)
async def record_events(ctx: Ctx) -> dict[str, Any]:
    """Record events from the CRM (integration token): up to 500 a batch, idempotent by `event_id`."""
    results = await records.ingest(ctx.session, ctx.current_org, [_event(e) for e in ctx.body.events], ctx.services.clock())
    return {"results": results}


async def _views(ctx: Ctx, rows: list[Record], following: bool | None = None) -> list[dict[str, Any]]:
    out = []
    for record, card in zip(rows, await records.cards(ctx.session, rows), strict=True):
        view = {**card, "last_activity_at": record.last_activity_at, "deleted": record.deleted_at is not None}
        if following is not None:
            view["following"] = following
        out.append(view)
    return out


@routes.get("/api/v1/orgs/{slug}/records/{record_id:int}", permission=FEED)
async def get_record(ctx: Ctx) -> dict[str, Any]:
    """A record's business card, whether the caller follows it, and how (`follow`: source, rule, fields)."""
    record = await records.get_record(ctx.session, ctx.path["record_id"])
    mine = await records.my_follow(ctx.session, ctx.me.user_id, record.id)
    return {"record": (await _views(ctx, [record], mine is not None))[0], "follow": records.follow_view(mine)}


@routes.put("/api/v1/orgs/{slug}/records/{record_id:int}/follow", permission=FEED, body=FollowIn)
async def follow(ctx: Ctx) -> dict[str, Any]:
    """Follow a record (the Follow button); following twice is the same as once. `fields` names the
    fields whose edits reach the caller (null: every field); given again, it changes an existing follow."""
    b: FollowIn = ctx.body
    fields = b.fields if "fields" in b.model_fields_set else records.KEEP
    record, mine = await records.follow_by_hand(ctx.session, ctx.me.user_id, ctx.path["record_id"], ctx.services.clock(), fields)
    return {"record": (await _views(ctx, [record], True))[0], "follow": records.follow_view(mine)}


@routes.delete("/api/v1/orgs/{slug}/records/{record_id:int}/follow", permission=FEED, status=204)
async def unfollow(ctx: Ctx) -> None:
    """Stop following a record (its owner cannot: 409 `owner_follows`)."""
    await records.unfollow(ctx.session, ctx.me.user_id, ctx.path["record_id"])


@routes.get("/api/v1/orgs/{slug}/followed-records", permission=FEED, query=FollowedQuery)
async def followed(ctx: Ctx) -> dict[str, Any]:
    """"Followed by me": all modules or one (`module`), by module then record, paginated by `cursor`."""
    q: FollowedQuery = ctx.query
    page, nxt = await records.followed_by(ctx.session, ctx.me.user_id, q.module, q.cursor, q.limit)
    return {"records": await _views(ctx, page, True), "next_cursor": nxt}


@routes.get("/api/v1/orgs/{slug}/dormant-records", permission=FEED, query=DormantQuery)
async def dormant(ctx: Ctx) -> dict[str, Any]:
    """Records the caller owns or follows with no update for at least `days` days (1 to 180), oldest first."""
    q: DormantQuery = ctx.query
    page, nxt = await records.dormant(ctx.session, ctx.me.user_id, q.days, q.module, q.cursor, q.limit, ctx.services.clock())
    return {"records": await _views(ctx, page, True), "next_cursor": nxt}


@routes.put("/api/v1/orgs/{slug}/integrations/{integration_id:int}/webhook", permission=perms.ADMIN, body=WebhookIn)
async def set_webhook(ctx: Ctx) -> dict[str, Any]:
    """Where comments on record items go back to the CRM as notes; a new signing secret, shown once."""
    allow = egress.parse_networks(ctx.services.settings.webhook_allow_networks)
    if why := egress.url_refusal(ctx.body.url, allow):
        raise ValidationFailed("webhook_target_not_allowed", why, field="url")
    hook, secret = await webhooks.set_webhook(ctx.session, ctx.me.user_id, ctx.path["integration_id"], ctx.body.url)
    return {"webhook": await webhooks.webhook_view(ctx.session, hook), "secret": secret}


@routes.get("/api/v1/orgs/{slug}/integrations/{integration_id:int}/webhook", permission=perms.ADMIN)
async def get_webhook(ctx: Ctx) -> dict[str, Any]:
    """The webhook's URL and its deliveries by status (pending, delivered, failed)."""
    hook = await webhooks.get_webhook(ctx.session, ctx.path["integration_id"])
    return {"webhook": await webhooks.webhook_view(ctx.session, hook)}


@routes.delete("/api/v1/orgs/{slug}/integrations/{integration_id:int}/webhook", permission=perms.ADMIN, status=204)
async def remove_webhook(ctx: Ctx) -> None:
    """Stop sending notes to the CRM; deliveries not yet sent are dropped."""
    await webhooks.remove_webhook(ctx.session, ctx.me.user_id, ctx.path["integration_id"])


@routes.post("/api/v1/orgs/{slug}/integrations/{integration_id:int}/webhook/retry", permission=perms.ADMIN)
async def retry_webhook(ctx: Ctx) -> dict[str, Any]:
    """Send the failed deliveries again (after the CRM was fixed)."""
    count = await webhooks.retry_failed(ctx.session, ctx.path["integration_id"], ctx.services.clock())
    return {"requeued": count}
