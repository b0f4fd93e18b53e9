"""Record events from the CRM (F-FOLLOW-1 … F-FOLLOW-3, F-FOLLOW-10, F-FEED-4, F-FEED-5), follows,
"followed by me" and dormant records (F-FOLLOW-8, F-FOLLOW-9)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, tuple_, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.directory import must_get
from feeds_server.actions.notifications import notify_record_change
from feeds_server.actions.rules import RuleSet, load_rule_set
from feeds_server.actions.views import comment_views, post_views
from feeds_server.domain import cursors
from feeds_server.domain.audience import user_channel
from feeds_server.domain.messages import check_text
from feeds_server.domain.records import RecordFacts, business_card, field_changes
from feeds_server.errors import FeedsError, NotFound, ValidationFailed
from feeds_server.store.events import append_event
from feeds_server.store.models import Comment, Follow, Membership, Org, Post, PostAudience, Record, RecordEventSeen, Territory, User

OWNER, MANUAL, RULE = "owner", "manual", "rule"


@dataclass(frozen=True)
class RecordEvent:
    """One event of a batch, as the integration endpoint parsed it."""

    event_id: str
    type: str
    module: str
    crm_id: str
    name: str | None = None
    owner_email: str | None = None
    creator_email: str | None = None
    actor_email: str | None = None
    territory: str | None = None
    fields: dict[str, Any] | None = None
    changes: tuple[dict[str, Any], ...] = ()
    note_id: str | None = None
    note_text: str | None = None


class _Batch:
    """Look-ups shared by the events of one batch: people by email, territories by name, rules."""

    def __init__(self, session: AsyncSession, org: Org, now: datetime) -> None:
        self.session, self.org, self.now = session, org, now
        self.people: dict[str, int] = {}
        self.territories: dict[str, int] = {}
        self.rules: RuleSet | None = None

    async def load(self, events: list[RecordEvent]) -> None:
        emails = {e for ev in events for e in (ev.owner_email, ev.creator_email, ev.actor_email) if e}
        if emails:
            rows = await self.session.execute(
                select(User.email, User.id).join(Membership, Membership.user_id == User.id).where(User.email.in_({e.lower() for e in emails}))
            )
            self.people = {email: uid for email, uid in rows}
        if any(ev.territory for ev in events):
            self.territories = {name.lower(): tid for tid, name in (await self.session.execute(select(Territory.id, Territory.name)))}
        self.rules = await load_rule_set(self.session, {ev.module for ev in events})

    def person(self, email: str | None) -> int | None:
        return self.people.get(email.lower()) if email else None


async def ingest(session: AsyncSession, org: Org, events: list[RecordEvent], now: datetime) -> list[dict[str, Any]]:
    """Apply a batch in one transaction. Each event answers `applied`, `duplicate` or `error`."""
    seen = set(
        (await session.execute(select(RecordEventSeen.event_id).where(RecordEventSeen.event_id.in_([e.event_id for e in events])))).scalars()
    )
    batch = _Batch(session, org, now)
    await batch.load(events)
    results: list[dict[str, Any]] = []
    for ev in events:
        if ev.event_id in seen:
            results.append({"event_id": ev.event_id, "status": "duplicate"})
            continue
        seen.add(ev.event_id)
        try:
            record = await _apply(batch, ev)
        except FeedsError as exc:
            results.append({"event_id": ev.event_id, "status": "error", "error": {"code": exc.code, "message": exc.message}})
            continue
        session.add(RecordEventSeen(event_id=ev.event_id, created_at=now))
        results.append({"event_id": ev.event_id, "status": "applied", "record_id": record.id})
    await session.flush()
    return results


async def _apply(b: _Batch, ev: RecordEvent) -> Record:
    record = (
        await b.session.execute(select(Record).where(Record.module == ev.module, Record.crm_id == ev.crm_id))
    ).scalar_one_or_none()
    if ev.type == "created" or (record is None and ev.type == "edited"):
        return await _created_or_edited(b, ev, record)
    if record is None:
        raise NotFound("record_not_found", f"no {ev.module} record {ev.crm_id!r} was reported before")
    if ev.type == "edited":
        return await _created_or_edited(b, ev, record)
    if ev.type == "deleted":
        record.deleted_at = b.now
        record.last_activity_at = b.now
        await _item(b, record, "deleted", [], b.person(ev.actor_email))
        return record
    await _note(b, ev, record)
    return record


async def _created_or_edited(b: _Batch, ev: RecordEvent, record: Record | None) -> Record:
    fields = dict(ev.fields or {})
    if len(fields) > limits.MAX_RECORD_FIELDS:
        raise ValidationFailed("too_many_fields", f"at most {limits.MAX_RECORD_FIELDS} fields per record", limit=limits.MAX_RECORD_FIELDS)
    created = record is None
    if record is None:
        record = Record(module=ev.module, crm_id=ev.crm_id, name=ev.name or ev.crm_id, fields={}, created_at=b.now, last_activity_at=b.now)
        b.session.add(record)
    old_fields = dict(record.fields or {})
    merged = {**old_fields, **fields}
    record.fields = merged
    if ev.name:
        record.name = ev.name[: limits.MAX_NAME_CHARS]
    if ev.owner_email is not None:
        record.owner_id = b.person(ev.owner_email)
    if ev.creator_email is not None and (created or record.creator_id is None):
        record.creator_id = b.person(ev.creator_email)
    if ev.territory is not None:
        record.territory_id = b.territories.get(ev.territory.lower())
    record.last_activity_at = b.now
    record.deleted_at = None
    await b.session.flush()
    assert b.rules is not None
    facts = RecordFacts(record.owner_id, record.creator_id, record.territory_id)
    wanted = {u: RULE for u in await b.rules.followers_for(b.session, record.module, merged, facts)}
    if record.owner_id is not None:
        wanted[record.owner_id] = OWNER
    await _follow_many(b.session, record, wanted, b.now)
    changes = [] if created else field_changes(old_fields, merged, ev.changes)
    await _item(b, record, "created" if created else "edited", changes, b.person(ev.actor_email))
    return record


async def follower_ids(session: AsyncSession, record_id: int) -> list[int]:
    return list((await session.execute(select(Follow.user_id).where(Follow.record_id == record_id).order_by(Follow.user_id))).scalars())


async def card(session: AsyncSession, record: Record) -> dict[str, Any]:
    owner = None
    if record.owner_id is not None:
        name = (await session.execute(select(User.name).where(User.id == record.owner_id))).scalar_one_or_none()
        owner = {"id": record.owner_id, "name": name}
    return business_card(record.module, record.id, record.crm_id, record.name, owner, record.fields or {})


def _summary(change: str, record: Record, changes: list[dict[str, Any]]) -> str:
    what = f"{record.module} record “{record.name}”"
    if change == "edited" and changes:
        shown = "; ".join(f"{c['field']}: {c['old']} → {c['new']}" for c in changes[:5])
        return f"{what} was edited — {shown}"[: limits.MAX_POST_CHARS]
    return f"{what} was {change}"


async def _item(b: _Batch, record: Record, change: str, changes: list[dict[str, Any]], actor_id: int | None) -> None:
    """A feed item for the record's followers, unless an admin unticked the module (F-FEED-5)."""
    if record.module in (b.org.disabled_modules or []):
        return
    followers = await follower_ids(b.session, record.id)
    if not followers:
        return
    data = {"record": await card(b.session, record), "change": change, "fields": changes}
    post = Post(kind="record", author_id=actor_id, body=_summary(change, record, changes), module=record.module, data=data, created_at=b.now)
    b.session.add(post)
    await b.session.flush()
    channels = [user_channel(u) for u in followers]
    b.session.add_all(PostAudience(post_id=post.id, channel=c, module=record.module, created_at=b.now) for c in channels)
    record.last_post_id = post.id
    await b.session.flush()
    view = (await post_views(b.session, [post]))[0]
    append_event(b.session, "post.created", {"post": view}, actor_id, channels)
    await notify_record_change(b.session, post.id, actor_id, record.owner_id, followers, {"record": data["record"], "change": change}, b.now)


async def _note(b: _Batch, ev: RecordEvent, record: Record) -> None:
    """F-FOLLOW-10: a note added in the CRM shows as a comment on the record's latest item."""
    text = check_text(ev.note_text or "", field="note.text")
    record.last_activity_at = b.now
    if record.module in (b.org.disabled_modules or []):
        return
    if record.last_post_id is None or (await b.session.execute(select(Post.id).where(Post.id == record.last_post_id))).first() is None:
        await _item(b, record, "noted", [], b.person(ev.actor_email))
    if record.last_post_id is None:
        return
    channels = [c for c in (await b.session.execute(select(PostAudience.channel).where(PostAudience.post_id == record.last_post_id))).scalars()]
    comment = Comment(post_id=record.last_post_id, author_id=b.person(ev.actor_email), body=text, created_at=b.now,
                      data={"source": "crm", "crm_note_id": ev.note_id})
    b.session.add(comment)
    await b.session.flush()
    await b.session.execute(update(Post).where(Post.id == record.last_post_id).values(comment_count=Post.comment_count + 1))
    view = (await comment_views(b.session, [comment]))[0]
    append_event(b.session, "comment.created", {"post_id": record.last_post_id, "comment": view}, comment.author_id, channels)


async def _follow_many(session: AsyncSession, record: Record, wanted: dict[int, str], now: datetime) -> None:
    """Add the follows that do not exist yet, in one round trip."""
    if not wanted:
        return
    existing = set((await session.execute(select(Follow.user_id).where(Follow.record_id == record.id))).scalars())
    session.add_all(
        Follow(record_id=record.id, user_id=u, module=record.module, source=src, created_at=now) for u, src in wanted.items() if u not in existing
    )


async def follow(session: AsyncSession, record: Record, user_id: int, source: str, now: datetime) -> bool:
    """Idempotent; returns whether a new follow was made."""
    exists = (await session.execute(select(Follow.user_id).where(Follow.record_id == record.id, Follow.user_id == user_id))).first()
    if exists:
        return False
    session.add(Follow(record_id=record.id, user_id=user_id, module=record.module, source=source, created_at=now))
    await session.flush()
    return True


async def visible_record(session: AsyncSession, record_id: int) -> Record:
    record = await must_get(session, Record, record_id, "record")
    return record


async def follow_by_hand(session: AsyncSession, user_id: int, record_id: int, now: datetime) -> Record:
    record = await visible_record(session, record_id)
    await follow(session, record, user_id, MANUAL, now)
    append_event(session, "record.followed", {"record_id": record.id}, user_id, [user_channel(user_id)])
    return record


async def unfollow(session: AsyncSession, user_id: int, record_id: int) -> None:
    record = await visible_record(session, record_id)
    row = (await session.execute(select(Follow).where(Follow.record_id == record.id, Follow.user_id == user_id))).scalar_one_or_none()
    if row is None:
        raise NotFound("not_following", "you do not follow this record")
    await session.delete(row)
    append_event(session, "record.unfollowed", {"record_id": record.id}, user_id, [user_channel(user_id)])


async def followed_by(session: AsyncSession, user_id: int, module: str | None, after_id: int | None, limit: int) -> list[Record]:
    """F-FOLLOW-9: by record id, keyset."""
    stmt = (
        select(Record)
        .join(Follow, and_(Follow.record_id == Record.id, Follow.org_id == Record.org_id))
        .where(Follow.user_id == user_id)
        .order_by(Record.id)
        .limit(limit)
    )
    if module:
        stmt = stmt.where(Follow.module == module)
    if after_id is not None:
        stmt = stmt.where(Record.id > after_id)
    return list((await session.execute(stmt)).scalars())


def check_dormant_days(days: int) -> int:
    if not limits.MIN_DORMANT_DAYS <= days <= limits.MAX_DORMANT_DAYS:
        raise ValidationFailed(
            "invalid_dormant_days",
            f"days must be from {limits.MIN_DORMANT_DAYS} to {limits.MAX_DORMANT_DAYS}",
            field="days", min=limits.MIN_DORMANT_DAYS, max=limits.MAX_DORMANT_DAYS,
        )
    return days


async def dormant(
    session: AsyncSession, user_id: int, days: int, module: str | None, cursor: str | None, limit: int, now: datetime
) -> tuple[list[Record], str | None]:
    """F-FOLLOW-8: records the user owns or follows with no update for at least `days` days, oldest first."""
    cutoff = now - timedelta(days=check_dormant_days(days))
    position = cursors.decode(cursor) if cursor else None

    def narrow(stmt):  # type: ignore[no-untyped-def]
        stmt = stmt.where(Record.deleted_at.is_(None), Record.last_activity_at <= cutoff)
        if module:
            stmt = stmt.where(Record.module == module)
        if position is not None:
            stmt = stmt.where(tuple_(Record.last_activity_at, Record.id) > tuple_(*position))
        return stmt.order_by(Record.last_activity_at, Record.id).limit(limit + 1)

    # Owned and followed records are two index-ordered scans, merged: an OR of the two would make the
    # database walk every dormant record of the org.
    owned = narrow(select(Record.id, Record.last_activity_at).where(Record.owner_id == user_id)).subquery().select()
    followed = narrow(
        select(Record.id, Record.last_activity_at).join(Follow, and_(Follow.record_id == Record.id, Follow.org_id == Record.org_id)).where(Follow.user_id == user_id)
    ).subquery().select()
    merged = union(owned, followed).subquery()
    ids = select(merged.c.id).order_by(merged.c.last_activity_at, merged.c.id).limit(limit + 1)
    stmt = select(Record).where(Record.id.in_(ids)).order_by(Record.last_activity_at, Record.id)
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    nxt = cursors.encode(page[-1].last_activity_at, page[-1].id) if len(rows) > limit and page else None
    return page, nxt
