"""Record events from the CRM (F-FOLLOW-1 … F-FOLLOW-4, F-FOLLOW-10, F-FEED-4, F-FEED-5), follows,
"followed by me" and dormant records (F-FOLLOW-8, F-FOLLOW-9).

A batch is applied in one transaction with a fixed number of statements, whatever its size: the
batch's records, their followers, the people it names and the rules of its modules are loaded once;
every event is applied in memory, in order; then the rows it produced are written in bulk. Feed
items fan out on write to the record's followers (`u:<user>` channels), who are explicit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, text, tuple_, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.directory import must_get
from feeds_server.actions.notifications import (
    RECORD_FOLLOWED,
    RECORD_OWNED,
    announce,
    load_mutes,
    load_preferences,
    push_payload,
    queue_deliveries,
    reaches,
)
from feeds_server.actions.posts import RECORD
from feeds_server.actions.rules import RuleRef, RuleSet, load_rule_set
from feeds_server.actions.views import comment_views, post_views
from feeds_server.domain import cursors, reasons
from feeds_server.domain.audience import user_channel
from feeds_server.domain.messages import check_text
from feeds_server.domain.preferences import PUSH, Preferences
from feeds_server.domain.records import (
    CREATED,
    DELETED,
    EDITED,
    MANUAL,
    NOTE_ADDED,
    OWNER,
    RULE,
    RecordFacts,
    business_card,
    change_entry,
    decode_followed_cursor,
    edit_reaches,
    encode_followed_cursor,
    field_changes,
    follow_fields,
    key_field_names,
    merge_changes,
    summary,
)
from feeds_server.errors import Conflict, FeedsError, NotFound, ValidationFailed
from feeds_server.store.bulk import insert_columns, insert_many, insert_returning_ids, reserve_ids, update_many
from feeds_server.store.events import append_event
from feeds_server.store.models import (
    AutoFollowRule,
    Comment,
    Follow,
    Membership,
    Notification,
    Org,
    Post,
    PostAudience,
    PushJob,
    Record,
    RecordEventSeen,
    Territory,
    User,
)
from feeds_server.store.scope import current_org


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
    key_fields: tuple[str, ...] | None = None
    changes: tuple[dict[str, Any], ...] = ()
    occurred_at: datetime | None = None
    note_id: str | None = None
    note_text: str | None = None
    note_comment_id: int | None = None  # set when the note is one this server sent (F-FOLLOW-10)


@dataclass(eq=False)
class _Rec:
    """A record as a batch sees it: loaded once, changed in memory, written back in bulk."""

    id: int | None
    module: str
    crm_id: str
    name: str
    owner_id: int | None
    creator_id: int | None
    territory_id: int | None
    fields: dict[str, Any]
    key_fields: list[str]
    last_post_id: int | None
    created_at: datetime
    last_activity_at: datetime
    deleted_at: datetime | None


_REC_COLUMNS = (
    Record.id, Record.module, Record.crm_id, Record.name, Record.owner_id, Record.creator_id, Record.territory_id, Record.fields,
    Record.key_fields, Record.last_post_id, Record.created_at, Record.last_activity_at, Record.deleted_at,
)
# What a batch may change in a stored record.
_REC_CHANGES = ("name", "owner_id", "creator_id", "territory_id", "fields", "key_fields", "last_post_id", "last_activity_at", "deleted_at")


@dataclass(eq=False)
class _Tracked:
    """A record touched by the batch, with its followers (user → why)."""

    record: _Rec
    followers: dict[int, str]
    new_followers: dict[int, str] = field(default_factory=dict)
    rules: dict[int, int] = field(default_factory=dict)  # follower → the rule they follow through
    fields: dict[int, frozenset[str]] = field(default_factory=dict)  # followers who care about some fields only
    # The item a CRM note is attached to: one made in this batch, or the stored latest one.
    last_item: _PostItem | None = None
    stored_post_channels: frozenset[str] | None = None


@dataclass(eq=False)
class _PostItem:
    """A record-update item to write: a `Post` seen by the record's followers at the time."""

    tracked: _Tracked
    change: str
    actor_id: int | None
    followers: tuple[int, ...]
    channels: tuple[str, ...]  # the followers' `u:` channels, in the same order
    card: tuple[str, int | None, list[str], dict[str, Any]]  # name, owner, key fields, their values
    changes: list[dict[str, Any]]
    notify: bool = True
    post: _NewPost | None = None


@dataclass(eq=False)
class _NoteItem:
    """A note from the CRM, written as a comment on the record's item."""

    tracked: _Tracked
    text: str
    crm_note_id: str | None
    actor_id: int | None
    owner_id: int | None
    followers: tuple[int, ...]
    target: _PostItem | int  # an item of this batch, or a stored post id
    channels: tuple[str, ...]
    comment: Comment | None = None


@dataclass(slots=True)
class _NewPost:
    """A record-update item as written in bulk; it has the attributes `post_views` reads (an ORM
    `Post` per item would cost more than the rest of its rendering)."""

    id: int
    org_id: int
    kind: str
    author_id: int | None
    body: str
    group_id: None
    recipient_id: None
    module: str
    data: dict[str, Any]
    comment_count: int
    created_at: datetime


@dataclass(slots=True)
class _Notification:
    """A notification row as written in bulk (or an unread one a burst merges into); it has the
    attributes `notification_view` and `queue_deliveries` read."""

    user_id: int
    kind: str
    actor_id: int | None
    post_id: int | None
    comment_id: int | None
    data: dict[str, Any]
    created_at: datetime
    record_id: int | None = None
    reason: dict[str, Any] | None = None
    id: int = 0
    read_at: datetime | None = None
    updated_at: datetime | None = None


async def ingest(session: AsyncSession, org: Org, events: list[RecordEvent], now: datetime) -> list[dict[str, Any]]:
    """Apply a batch in one transaction. Each event answers `applied`, `duplicate` or `error`.

    An event id is claimed before the batch is applied, so a batch replayed while the first is still
    running waits for it and then answers `duplicate`. An event that fails is not remembered: the
    CRM can fix it and send it again with the same id.
    """
    if not events:
        return []
    claimed = await _claim(session, [e.event_id for e in events], now)
    fresh: list[RecordEvent] = []
    for ev in events:
        if ev.event_id in claimed:
            claimed.discard(ev.event_id)  # a second copy in the same batch is a duplicate
            fresh.append(ev)
    batch = _Batch(session, org, now)
    await batch.load(fresh)
    applied: dict[str, _Tracked] = {}
    errors: dict[str, FeedsError] = {}
    for ev in fresh:
        try:
            applied[ev.event_id] = batch.apply(ev)
        except FeedsError as exc:
            errors[ev.event_id] = exc
    await batch.write()
    batch.release()
    if errors:
        await session.execute(delete(RecordEventSeen).where(RecordEventSeen.event_id.in_(list(errors))))
    results: list[dict[str, Any]] = []
    for ev in events:
        if ev.event_id in errors:
            exc = errors.pop(ev.event_id)
            results.append({"event_id": ev.event_id, "status": "error", "error": {"code": exc.code, "message": exc.message}})
        elif ev.event_id in applied:
            results.append({"event_id": ev.event_id, "status": "applied", "record_id": applied.pop(ev.event_id).record.id})
        else:
            results.append({"event_id": ev.event_id, "status": "duplicate"})
    return results


async def _claim(session: AsyncSession, event_ids: list[str], now: datetime) -> set[str]:
    """Insert the batch's event ids, skipping those already there; returns the ones inserted.

    In sorted order, so two batches sharing ids wait for each other rather than deadlock.
    """
    org_id = current_org(session)
    ids = sorted(set(event_ids))
    if session.get_bind().dialect.name == "postgresql":
        return set((await session.execute(_CLAIM, {"org": org_id, "ids": ids, "now": now})).scalars())
    rows = [{"org_id": org_id, "event_id": e, "created_at": now} for e in ids]
    stmt = sqlite.insert(RecordEventSeen).values(rows).on_conflict_do_nothing().returning(RecordEventSeen.event_id)
    return set((await session.execute(stmt)).scalars())


# One statement and one array parameter whatever the batch size (a multi-row VALUES is compiled anew for each size).
_CLAIM = text(
    "INSERT INTO record_events_seen (org_id, event_id, created_at) SELECT :org, e, :now FROM unnest(CAST(:ids AS VARCHAR[])) AS e"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)


class _Batch:
    """The state of one batch: what was loaded, and the items the events produced."""

    def __init__(self, session: AsyncSession, org: Org, now: datetime) -> None:
        self.session, self.org, self.now = session, org, now
        self.hidden = frozenset(org.disabled_modules or [])
        self.tracked: dict[tuple[str, str], _Tracked] = {}
        self.people: dict[str, int] = {}
        self.territories: dict[str, int] = {}
        self.echoes: dict[int, tuple[Comment, str, str]] = {}  # comment id → (comment, module, crm id)
        self.rules = RuleSet({}, None)
        self.items: list[_PostItem | _NoteItem] = []
        self.live: set[int] = set()  # the people the batch names who exist, locked until commit
        self.stored: frozenset[int] = frozenset()  # the ids of the batch's records stored before it

    async def load(self, events: list[RecordEvent]) -> None:
        if not events:
            return
        s = self.session
        wanted = {(e.module, e.crm_id) for e in events}
        stmt = (
            select(*_REC_COLUMNS)
            .where(Record.module.in_({m for m, _ in wanted}), Record.crm_id.in_({c for _, c in wanted}))
            .order_by(Record.id)
            .with_for_update()  # concurrent batches touching a record apply one after the other
        )
        for row in await s.execute(stmt):
            if (row.module, row.crm_id) in wanted:
                self.tracked[(row.module, row.crm_id)] = _Tracked(_Rec(*row), {})
        by_id = {t.record.id: t for t in self.tracked.values()}
        self.stored = frozenset(by_id)
        if by_id:
            rows = await s.execute(
                select(Follow.record_id, Follow.user_id, Follow.source, Follow.rule_id, Follow.fields).where(Follow.record_id.in_(list(by_id)))
            )
            for record_id, user_id, source, rule_id, wanted in rows:
                tracked = by_id[record_id]
                tracked.followers[user_id] = source
                if rule_id is not None:
                    tracked.rules[user_id] = rule_id
                if wanted is not None:
                    tracked.fields[user_id] = frozenset(wanted)
        await self._load_stored_items([self.tracked[(e.module, e.crm_id)] for e in events if e.type == NOTE_ADDED and (e.module, e.crm_id) in self.tracked])
        emails = {x.lower() for e in events for x in (e.owner_email, e.creator_email, e.actor_email) if x}
        if emails:
            rows = await s.execute(select(User.email, User.id).join(Membership, Membership.user_id == User.id).where(User.email.in_(emails)))
            self.people = {email: uid for email, uid in rows}
        if any(e.territory for e in events):
            self.territories = {name.lower(): tid for tid, name in await s.execute(select(Territory.id, Territory.name))}
        echoes = {e.note_comment_id for e in events if e.note_comment_id is not None}
        if echoes:
            rows = await s.execute(select(Comment, Post.data).join(Post, Post.id == Comment.post_id).where(Comment.id.in_(echoes), Post.kind == RECORD))
            for comment, data in rows:
                card = (data or {}).get("record") or {}
                self.echoes[comment.id] = (comment, card.get("module"), card.get("crm_id"))
        self.rules = await load_rule_set(s, {e.module for e in events if e.type in (CREATED, EDITED)})

    def release(self) -> None:
        """Break the records' links to their latest items (an item links back to its record), so the
        batch's state is freed when the request ends rather than left to the cyclic collector, which
        traced it all again (~40 ms a batch of 500)."""
        for tracked in self.tracked.values():
            tracked.last_item = None
        self.items.clear()

    async def _load_stored_items(self, noted: list[_Tracked]) -> None:
        """The audience of each noted record's latest item (absent if that item was deleted)."""
        posts = {t.record.last_post_id: t for t in noted if t.record.last_post_id is not None}
        if not posts:
            return
        channels: dict[int, set[str]] = {}
        for post_id, channel in await self.session.execute(
            select(PostAudience.post_id, PostAudience.channel).where(PostAudience.post_id.in_(list(posts)))
        ):
            channels.setdefault(post_id, set()).add(channel)
        for post_id, tracked in posts.items():
            if post_id in channels:
                tracked.stored_post_channels = frozenset(channels[post_id])

    def person(self, email: str | None) -> int | None:
        return self.people.get(email.lower()) if email else None

    # --- applying one event, in memory ----------------------------------------------------
    def apply(self, ev: RecordEvent) -> _Tracked:
        """Validate first, then change: an event that fails leaves nothing behind."""
        tracked = self.tracked.get((ev.module, ev.crm_id))
        if ev.type in (CREATED, EDITED):
            return self._created_or_edited(ev, tracked)
        if tracked is None:
            raise NotFound("record_not_found", f"no {ev.module} record {ev.crm_id!r} was reported before")
        if ev.type == DELETED:
            tracked.record.deleted_at = self.now
            self._touch(tracked, ev)
            self._post_item(tracked, DELETED, [], self.person(ev.actor_email))
            return tracked
        self._note(ev, tracked)
        return tracked

    def _touch(self, tracked: _Tracked, ev: RecordEvent) -> None:
        """The record's last update: when the CRM says it happened (never later than now), never moving back."""
        at = min(ev.occurred_at, self.now) if ev.occurred_at else self.now
        if at > tracked.record.last_activity_at:
            tracked.record.last_activity_at = at

    def _created_or_edited(self, ev: RecordEvent, tracked: _Tracked | None) -> _Tracked:
        reported = {c["field"]: c.get("new") for c in ev.changes}
        old = tracked.record.fields if tracked else {}
        merged = {**old, **reported, **(ev.fields or {})}
        if len(merged) > limits.MAX_RECORD_FIELDS:
            raise ValidationFailed("too_many_fields", f"at most {limits.MAX_RECORD_FIELDS} fields per record", limit=limits.MAX_RECORD_FIELDS)
        created = tracked is None
        if tracked is None:
            at = min(ev.occurred_at, self.now) if ev.occurred_at else self.now
            record = _Rec(None, ev.module, ev.crm_id, ev.crm_id, None, None, None, {}, [], None, at, at, None)
            tracked = self.tracked[(ev.module, ev.crm_id)] = _Tracked(record, {})
        record = tracked.record
        if created or ev.key_fields is not None or not record.key_fields:
            record.key_fields = key_field_names(merged, ev.key_fields)
        record.fields = merged
        if ev.name:
            record.name = ev.name
        if ev.owner_email is not None:
            record.owner_id = self.person(ev.owner_email)
        if ev.creator_email is not None and (created or record.creator_id is None):
            record.creator_id = self.person(ev.creator_email)
        if ev.territory is not None:
            record.territory_id = self.territories.get(ev.territory.lower())
        record.deleted_at = None
        self._touch(tracked, ev)
        if record.owner_id is not None:
            self._follow(tracked, record.owner_id, OWNER)
        by_rule = self.rules.followers_for(record.module, merged, RecordFacts(record.owner_id, record.creator_id, record.territory_id))
        for user_id in sorted(by_rule):
            self._follow(tracked, user_id, RULE, by_rule[user_id])
        changes = [] if created else field_changes(old, merged, ev.changes)
        self._post_item(tracked, CREATED if created else EDITED, changes, self.person(ev.actor_email))
        return tracked

    def _follow(self, tracked: _Tracked, user_id: int, source: str, rule: RuleRef | None = None) -> None:
        """A new follow by rule takes the rule's fields (the oldest matching rule's, when several match)."""
        if user_id in tracked.followers:
            return
        tracked.followers[user_id] = tracked.new_followers[user_id] = source
        if rule is not None:
            tracked.rules[user_id] = rule.id
            if rule.fields is not None:
                tracked.fields[user_id] = frozenset(rule.fields)

    def _post_item(self, tracked: _Tracked, change: str, changes: list[dict[str, Any]], actor_id: int | None, notify: bool = True) -> _PostItem | None:
        """A feed item for the record's followers, unless nobody follows it or the module is unticked (F-FEED-5).

        An edit leaves out the followers whose follow names none of the fields it changed: they get
        neither the item nor its notification (the record, and so its card, still changes).
        """
        record = tracked.record
        if record.module in self.hidden or not tracked.followers:
            return None
        picky = tracked.fields
        if change == EDITED and picky and changes:
            followers = tuple(sorted(u for u in tracked.followers if edit_reaches(picky.get(u), changes)))
            if not followers:
                return None
        else:
            followers = tuple(sorted(tracked.followers))
        card = (record.name, record.owner_id, record.key_fields, {k: record.fields.get(k) for k in record.key_fields})
        item = _PostItem(tracked, change, actor_id, followers, tuple(map(user_channel, followers)), card, changes, notify)
        tracked.last_item = item
        self.items.append(item)
        return item

    def _note(self, ev: RecordEvent, tracked: _Tracked) -> None:
        """F-FOLLOW-10: a note added in the CRM shows as a comment on the record's latest item, or on a
        new item when that one is gone or some current followers cannot see it."""
        text = check_text(ev.note_text or "", field="note.text")
        self._touch(tracked, ev)
        echo = self.echoes.get(ev.note_comment_id) if ev.note_comment_id is not None else None
        if echo is not None and echo[1:] == (ev.module, ev.crm_id):
            comment = echo[0]
            comment.data = {**(comment.data or {}), "crm_note_id": ev.note_id}  # our own comment, now a note in the CRM
            return
        record = tracked.record
        if record.module in self.hidden or not tracked.followers:
            return
        actor_id = self.person(ev.actor_email)
        followers = tuple(sorted(tracked.followers))
        everyone = {user_channel(u) for u in followers}
        target: _PostItem | int | None = None
        channels: frozenset[str] = frozenset()
        last = tracked.last_item
        if last is not None and everyone <= set(last.channels):
            target, channels = last, frozenset(last.channels)
        elif last is None and tracked.stored_post_channels is not None and everyone <= tracked.stored_post_channels:
            assert record.last_post_id is not None
            target, channels = record.last_post_id, tracked.stored_post_channels
        if target is None:
            target = self._post_item(tracked, NOTE_ADDED, [], actor_id, notify=False)
            assert target is not None
            channels = frozenset(everyone)
        self.items.append(_NoteItem(tracked, text, ev.note_id, actor_id, record.owner_id, followers, target, tuple(sorted(channels))))

    # --- writing what the batch produced, a few multi-row statements -------------------------
    async def write(self) -> None:
        if not self.tracked:
            return
        people = {u for t in self.tracked.values() for u in t.followers} | {i.actor_id for i in self.items if i.actor_id is not None}
        self.live = await _lock_existing(self.session, User, people)
        new = [t.record for t in self.tracked.values() if t.record.id is None]
        stored = [t.record for t in self.tracked.values() if t.record.id is not None]
        if self.session.get_bind().dialect.name == "postgresql":
            # New records are written last, with their latest item: an insert and then an update
            # wrote each row twice (and its index entries, the update not being HOT on a full page).
            for record, record_id in zip(new, await reserve_ids(self.session, Record.__table__, len(new)), strict=True):
                record.id = record_id
            await self._write_follows()
            posts = await self._write_posts()
            await self._insert_records(new)
            await self._update_records(stored)
        else:
            await self._insert_records(new)
            await self._write_follows()
            posts = await self._write_posts()
            await self._update_records(stored + new)
        comments = await self._write_comments()
        s = self.session
        post_view = {p.id: v for p, v in zip(posts, await post_views(s, posts, with_attachments=False, with_reactions=False), strict=True)}
        comment_view = {c.id: v for c, v in zip(comments, await comment_views(s, comments, with_reactions=False), strict=True)}
        notes = await self._notify()
        for item in self.items:
            if isinstance(item, _PostItem):
                assert item.post is not None
                append_event(s, "post.created", {"post": post_view[item.post.id]}, item.actor_id, item.channels)
            else:
                assert item.comment is not None
                append_event(s, "comment.created", {"post_id": item.comment.post_id, "comment": comment_view[item.comment.id]}, item.actor_id, item.channels)
        announce(s, notes)

    async def _insert_records(self, new: list[_Rec]) -> None:
        """The batch's new records; on PostgreSQL their ids were reserved, on SQLite they are taken here."""
        if not new:
            return
        rows = [
            {"org_id": self.org.id, "module": r.module, "crm_id": r.crm_id, "name": r.name, "owner_id": r.owner_id, "creator_id": r.creator_id,
             "territory_id": r.territory_id, "fields": r.fields, "key_fields": r.key_fields, "last_post_id": r.last_post_id, "created_at": r.created_at,
             "last_activity_at": r.last_activity_at, "deleted_at": r.deleted_at}
            for r in new
        ]
        if new[0].id is not None:
            await insert_many(self.session, Record.__table__, [{"id": r.id, **row} for r, row in zip(new, rows, strict=True)])
            return
        ids = await insert_returning_ids(self.session, Record.__table__, rows)
        for record, record_id in zip(new, ids, strict=True):
            record.id = record_id

    async def _update_records(self, records: list[_Rec]) -> None:
        """The given records as the batch left them, in one statement."""
        rows = [{"org_id": self.org.id, "id": r.id, **{n: getattr(r, n) for n in _REC_CHANGES}} for r in records]
        await update_many(self.session, Record.__table__, ("org_id", "id"), rows)

    async def _write_follows(self) -> None:
        touched = list(self.tracked.values())
        new = [(t, u, src) for t in touched for u, src in t.new_followers.items() if u in self.live]
        if new:
            fields = {}
            if any(t.fields.get(u) is not None for t, u, _ in new):  # a rule's fields, in the order it names them
                fields = {"fields": [list(self.rules.fields_of(t.rules[u])) if u in t.fields else None for t, u, _ in new]}
            await insert_columns(
                self.session, Follow.__table__,
                {"record_id": [t.record.id for t, _, _ in new], "user_id": [u for _, u, _ in new], "module": [t.record.module for t, _, _ in new],
                 "source": [src for _, _, src in new], "last_activity_at": [t.record.last_activity_at for t, _, _ in new],
                 "rule_id": [t.rules.get(u) for t, u, _ in new], **fields},
                {"org_id": self.org.id, "created_at": self.now},
            )
        # Follows carry the record's last update for the dormant-records index (store/models/records.py).
        activity = [
            {"org_id": self.org.id, "record_id": t.record.id, "last_activity_at": t.record.last_activity_at}
            for t in touched if len(t.followers) > len(t.new_followers)
        ]
        await update_many(self.session, Follow.__table__, ("org_id", "record_id"), activity)

    async def _write_posts(self) -> list[_NewPost]:
        items = [i for i in self.items if isinstance(i, _PostItem)]
        if not items:
            return []
        owners = {i.card[1] for i in items if i.card[1] is not None}
        names = dict((await self.session.execute(select(User.id, User.name).where(User.id.in_(owners)))).all()) if owners else {}
        rows = []
        for item in items:
            record = item.tracked.record
            assert record.id is not None
            name, owner_id, key_fields, values = item.card
            owner = {"id": owner_id, "name": names.get(owner_id)} if owner_id is not None else None
            card = business_card(record.module, record.id, record.crm_id, name, owner, values, key_fields)
            rows.append({
                "org_id": self.org.id, "kind": RECORD, "author_id": item.actor_id, "body": summary(record.module, name, item.change),
                "group_id": None, "recipient_id": None, "module": record.module, "data": {"record": card, "change": item.change, "fields": item.changes},
                "comment_count": 0, "created_at": self.now,
            })
        ids = await insert_returning_ids(self.session, Post.__table__, rows)
        for item, row, post_id in zip(items, rows, ids, strict=True):
            item.post = _NewPost(id=post_id, **row)
            item.tracked.record.last_post_id = post_id
        post_ids: list[int] = []
        modules: list[str] = []
        channels: list[str] = []
        for i in items:
            assert i.post is not None
            post_ids += [i.post.id] * len(i.channels)
            modules += [i.post.module] * len(i.channels)
            channels += i.channels
        await insert_columns(
            self.session, PostAudience.__table__,
            {"post_id": post_ids, "channel": channels, "module": modules}, {"org_id": self.org.id, "created_at": self.now},
        )
        return [i.post for i in items if i.post]

    async def _write_comments(self) -> list[Comment]:
        notes = [i for i in self.items if isinstance(i, _NoteItem)]
        if not notes:
            return []
        rows = []
        for note in notes:
            post_id = note.target if isinstance(note.target, int) else note.target.post.id  # type: ignore[union-attr]
            rows.append({"org_id": self.org.id, "post_id": post_id, "author_id": note.actor_id, "body": note.text,
                         "data": {"source": "crm", "crm_note_id": note.crm_note_id}, "created_at": self.now})
        ids = await insert_returning_ids(self.session, Comment.__table__, rows)
        for note, row, comment_id in zip(notes, rows, ids, strict=True):
            note.comment = Comment(id=comment_id, **row)
        posts = Post.__table__
        await self.session.execute(
            update(posts).where(posts.c.org_id == bindparam("b_org"), posts.c.id == bindparam("b_id"))
            .values(comment_count=posts.c.comment_count + bindparam("b_n")),
            [{"b_org": self.org.id, "b_id": post_id, "b_n": n} for post_id, n in Counter(r["post_id"] for r in rows).items()],
        )
        return [n.comment for n in notes if n.comment]

    def _candidates(self, items: list[_PostItem | _NoteItem], rule_names: dict[int, str]) -> list[_Notification]:
        """F-NOTIF-1: the owner and the followers hear of a change or a note, each with the reason; the
        one who made it does not. Each lists its change, so a burst can merge into one notification.
        Rows of one item share their documents (written once each: store/bulk.py)."""
        notes: list[_Notification] = []
        live, at = self.live, self.now.isoformat()
        for item in items:
            actor_id = item.actor_id if item.actor_id in live else None
            record = item.tracked.record
            if isinstance(item, _PostItem):
                assert item.post is not None
                owner_id, post_id, comment_id, name, change, fields = item.card[1], item.post.id, None, item.card[0], item.change, item.changes
            else:
                assert item.comment is not None
                owner_id, post_id, comment_id, name, change, fields = item.owner_id, item.comment.post_id, item.comment.id, record.name, NOTE_ADDED, []
            entry = change_entry(change, fields, post_id, comment_id, actor_id, at)
            data = {"record": _short_card(record, name), "change": change, "changes": [entry], "count": 1}
            followers, rules = item.tracked.followers, item.tracked.rules
            whys: dict[tuple[str, int | None], dict[str, Any]] = {}
            for u in item.followers:
                if u == item.actor_id or u not in live:
                    continue
                code, rule_id = reasons.FOLLOWER_MANUAL, None
                if u == owner_id:
                    code = reasons.OWNER
                elif followers.get(u) == RULE:
                    code, rule_id = reasons.FOLLOWER_RULE, rules.get(u)
                why = whys.get((code, rule_id))
                if why is None:
                    why = whys[(code, rule_id)] = reasons.reason(
                        code, record_id=record.id, record_name=name, rule_id=rule_id, rule_name=rule_names.get(rule_id) if rule_id is not None else None
                    )
                kind = RECORD_OWNED if code == reasons.OWNER else RECORD_FOLLOWED
                notes.append(_Notification(u, kind, actor_id, post_id, comment_id, data, self.now, record.id, why))
        return notes

    async def _notify(self) -> list[_Notification]:
        """Write the batch's record notifications and queue their deliveries; returns those to announce.

        Each person's preferences and mutes are read once for the batch: a muted record, or a kind
        with every channel off, makes no row. A notification merges into the person's unread one for
        the same record written within their merge window (one query for the batch): it lists the
        change and counts it, and is announced again under its id.
        """
        items = [i for i in self.items if not isinstance(i, _PostItem) or i.notify]
        if not items:
            return []
        notes = self._candidates(items, await self._rule_names(items))
        if not notes:
            return []
        s = self.session
        prefs = await load_preferences(s, {n.user_id for n in notes}, self.org.time_zone)
        mutes = await load_mutes(s, prefs)
        heard = {(u, kind) for u, p in prefs.items() for kind in (RECORD_OWNED, RECORD_FOLLOWED) if reaches(p, kind)}
        notes = [n for n in notes if (n.user_id, n.kind) in heard and not mutes.muted(n.user_id, "record", n.record_id)]
        if not notes:
            return []
        fresh, merged_into = await self._merge(notes, prefs)
        await self._write_notifications(fresh)
        await self._update_merged(merged_into, prefs)
        await queue_deliveries(s, fresh, prefs, self.now, org=self.org)
        await self._hold_pushes(fresh, prefs)
        return sorted(merged_into, key=lambda n: n.id) + fresh  # announced after the items they point to

    async def _rule_names(self, items: list[_PostItem | _NoteItem]) -> dict[int, str]:
        """Rule reasons carry the rule's name: the batch's rules have theirs, others are read in one query."""
        named = self.rules.names()
        wanted = {r for t in {id(i.tracked): i.tracked for i in items}.values() for r in t.rules.values()} - set(named)
        if wanted:
            named.update((await self.session.execute(select(AutoFollowRule.id, AutoFollowRule.name).where(AutoFollowRule.id.in_(wanted)))).all())
        return named

    async def _merge(self, notes: list[_Notification], prefs: dict[int, Preferences]) -> tuple[list[_Notification], list[_Notification]]:
        """The notifications to write, and the stored unread ones the others merged into."""
        windows = {u: p.record_merge_seconds for u, p in prefs.items() if p.record_merge_seconds > 0}
        open_: dict[tuple[int, int | None], _Notification] = {}
        # Only a record stored before the batch can have a notification to merge into.
        merging = [n for n in notes if n.user_id in windows and n.record_id in self.stored]
        if merging:
            oldest = self.now - timedelta(seconds=max(windows.values()))
            stmt = (
                select(
                    Notification.id, Notification.user_id, Notification.kind, Notification.actor_id, Notification.post_id, Notification.comment_id,
                    Notification.data, Notification.created_at, Notification.record_id, Notification.reason,
                )
                .where(
                    Notification.user_id.in_({n.user_id for n in merging}), Notification.record_id.in_({n.record_id for n in merging}),
                    Notification.read_at.is_(None), Notification.created_at >= oldest, Notification.kind.in_((RECORD_OWNED, RECORD_FOLLOWED)),
                )
                .order_by(Notification.id)
            )
            for row in await self.session.execute(stmt):
                if row.created_at >= self.now - timedelta(seconds=windows[row.user_id]):
                    open_[(row.user_id, row.record_id)] = _Notification(
                        row.user_id, row.kind, row.actor_id, row.post_id, row.comment_id, row.data or {}, row.created_at, row.record_id, row.reason, row.id,
                    )
        fresh: list[_Notification] = []
        stored: dict[int, _Notification] = {}
        for note in notes:
            key = (note.user_id, note.record_id)
            target = open_.get(key) if note.user_id in windows else None
            if target is None:
                fresh.append(note)
                if note.user_id in windows:
                    open_[key] = note
                continue
            target.data = merge_changes(target.data, note.data)
            target.kind, target.actor_id, target.reason = note.kind, note.actor_id, note.reason
            target.post_id, target.comment_id, target.updated_at = note.post_id, note.comment_id, self.now
            if target.id:
                stored[target.id] = target
        return fresh, list(stored.values())

    async def _write_notifications(self, notes: list[_Notification]) -> None:
        if not notes:
            return
        ids = await insert_columns(
            self.session, Notification.__table__,
            {"user_id": [n.user_id for n in notes], "kind": [n.kind for n in notes], "actor_id": [n.actor_id for n in notes],
             "post_id": [n.post_id for n in notes], "comment_id": [n.comment_id for n in notes], "data": [n.data for n in notes],
             "record_id": [n.record_id for n in notes], "reason": [n.reason for n in notes], "updated_at": [n.updated_at for n in notes]},
            {"org_id": self.org.id, "created_at": self.now, "read_at": None},
            returning_ids=True,
        )
        for note, note_id in zip(notes, ids, strict=True):
            note.id = note_id

    async def _update_merged(self, notes: list[_Notification], prefs: dict[int, Preferences]) -> None:
        """The stored notifications a burst merged into, in one statement; a push still waiting for
        the window to close will show what they say now."""
        if not notes:
            return
        org_id = self.org.id
        rows = [
            {"org_id": org_id, "id": n.id, "kind": n.kind, "actor_id": n.actor_id, "post_id": n.post_id, "comment_id": n.comment_id,
             "data": n.data, "reason": n.reason, "updated_at": n.updated_at}
            for n in notes
        ]
        await update_many(self.session, Notification.__table__, ("org_id", "id"), rows)
        pushed = [n for n in notes if prefs[n.user_id].wants(n.kind, PUSH)]
        if not pushed:
            return
        actors = {n.actor_id for n in pushed if n.actor_id is not None}
        names = dict((await self.session.execute(select(User.id, User.name).where(User.id.in_(actors)))).all()) if actors else {}
        payloads = [
            {"org_id": org_id, "notification_id": n.id, "payload": push_payload(n, self.org, names.get(n.actor_id) if n.actor_id is not None else None)}
            for n in pushed
        ]
        await update_many(self.session, PushJob.__table__, ("org_id", "notification_id"), payloads)

    async def _hold_pushes(self, fresh: list[_Notification], prefs: dict[int, Preferences]) -> None:
        """A record notification that may still merge a burst is pushed when its window closes (or
        when quiet hours end, if later), once, with what it then says."""
        held = []
        for n in fresh:
            pref = prefs[n.user_id]
            at = pref.send_at(n.kind, PUSH, self.now)
            if at is not None and pref.record_merge_seconds > 0:
                due = max(at, self.now + timedelta(seconds=pref.record_merge_seconds))
                held.append({"org_id": self.org.id, "notification_id": n.id, "next_attempt_at": due})
        await update_many(self.session, PushJob.__table__, ("org_id", "notification_id"), held)


async def _lock_existing(session: AsyncSession, model: type[User] | type[Record], ids: set[int]) -> set[int]:
    """Those of `ids` that exist, their rows locked until commit (`FOR KEY SHARE`).

    Follows and notifications have no foreign keys (migrations 0005, 0006): this takes the lock
    the keys' checks took, once per row named instead of once per row written, so a concurrent
    deletion waits for this transaction and then deletes what it wrote too; a person deleted before
    is left out rather than failing the batch at the database's own check of users (0007). SQLite
    runs one writer at a time and needs no lock.
    """
    if not ids:
        return set()
    # `read=True`: without it SQLAlchemy renders FOR NO KEY UPDATE, which conflicts with itself and
    # made concurrent batches naming the same people wait for each other's commit.
    stmt = select(model.id).where(model.id.in_(sorted(ids))).with_for_update(read=True, key_share=True)
    return set((await session.execute(stmt)).scalars())


def _short_card(record: _Rec, name: str) -> dict[str, Any]:
    """What a notification says of the record; the item it points to has the whole business card."""
    return {"module": record.module, "id": record.id, "crm_id": record.crm_id, "name": name}


# --- records, follows, "followed by me", dormant records ---------------------------------------
async def cards(session: AsyncSession, records: list[Record]) -> list[dict[str, Any]]:
    """Business cards of stored records, with their owners' names in one query."""
    owners = {r.owner_id for r in records if r.owner_id is not None}
    names = dict((await session.execute(select(User.id, User.name).where(User.id.in_(owners)))).all()) if owners else {}
    return [
        business_card(
            r.module, r.id, r.crm_id, r.name, {"id": r.owner_id, "name": names.get(r.owner_id)} if r.owner_id is not None else None,
            r.fields or {}, r.key_fields or [],
        )
        for r in records
    ]


async def get_record(session: AsyncSession, record_id: int) -> Record:
    return await must_get(session, Record, record_id, "record")


async def is_following(session: AsyncSession, user_id: int, record_id: int) -> bool:
    return (await session.execute(select(Follow.user_id).where(Follow.record_id == record_id, Follow.user_id == user_id))).first() is not None


async def _live_record(session: AsyncSession, record_id: int) -> Record:
    record = await get_record(session, record_id)
    if record.deleted_at is not None:
        raise NotFound("record_not_found", "this record was deleted in the CRM")
    return record


async def my_follow(session: AsyncSession, user_id: int, record_id: int) -> Follow | None:
    return (await session.execute(select(Follow).where(Follow.record_id == record_id, Follow.user_id == user_id))).scalar_one_or_none()


def follow_view(follow: Follow | None) -> dict[str, Any] | None:
    """How the caller follows a record: why (owner, manual, rule), and the fields they care about (None: every field)."""
    if follow is None:
        return None
    return {"source": follow.source, "rule_id": follow.rule_id, "fields": follow.fields}


# Says "leave the follow's fields as they are" (None means every field).
KEEP: Any = object()


async def follow_by_hand(session: AsyncSession, user_id: int, record_id: int, now: datetime, fields: Any = KEEP) -> tuple[Record, Follow]:
    """F-FOLLOW-2: the Follow button. Following twice is the same as once; `fields` given again
    changes which edits reach the follower, whatever made them follow (a rule's next change of its
    fields gives its follows the rule's again)."""
    record = await _live_record(session, record_id)
    wanted = None if fields is KEEP else follow_fields(fields)
    mine = await my_follow(session, user_id, record.id)
    if mine is None:
        await _lock_existing(session, Record, {record.id})  # as the foreign keys' checks did (migration 0006)
        if not await _lock_existing(session, User, {user_id}):
            raise NotFound("user_not_found", "no such user")
        mine = Follow(
            record_id=record.id, user_id=user_id, module=record.module, source=MANUAL, last_activity_at=record.last_activity_at, created_at=now,
        )
        if wanted is not None:
            mine.fields = wanted
        session.add(mine)
        await session.flush()
        append_event(session, "record.followed", {"record_id": record.id, "fields": wanted}, user_id, [user_channel(user_id)])
    elif fields is not KEEP and mine.fields != wanted:
        mine.fields = wanted
        await session.flush()
        append_event(session, "record.followed", {"record_id": record.id, "fields": wanted}, user_id, [user_channel(user_id)])
    return record, mine


async def unfollow(session: AsyncSession, user_id: int, record_id: int) -> None:
    """F-FOLLOW-2: anyone but the record's owner, who follows it for as long as they own it."""
    record = await get_record(session, record_id)
    if record.owner_id == user_id:
        raise Conflict("owner_follows", "the owner of a record follows it automatically")
    result = await session.execute(delete(Follow).where(Follow.record_id == record.id, Follow.user_id == user_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("not_following", "you do not follow this record")
    append_event(session, "record.unfollowed", {"record_id": record.id}, user_id, [user_channel(user_id)])


async def followed_by(session: AsyncSession, user_id: int, module: str | None, cursor: str | None, limit: int) -> tuple[list[Record], str | None]:
    """F-FOLLOW-9: the records a user follows, by module then record, keyset-paginated."""
    stmt = (
        select(Record)
        .join(Follow, and_(Follow.record_id == Record.id, Follow.org_id == Record.org_id))
        .where(Follow.user_id == user_id, Record.deleted_at.is_(None))
        .order_by(Follow.module, Follow.record_id)
        .limit(limit + 1)
    )
    if module is not None:
        stmt = stmt.where(Follow.module == module)
    if cursor:
        stmt = stmt.where(tuple_(Follow.module, Follow.record_id) > tuple_(*decode_followed_cursor(cursor)))
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    return page, encode_followed_cursor(page[-1].module, page[-1].id) if len(rows) > limit else None


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
    """F-FOLLOW-8: records the user owns or follows with no update for at least `days` days, oldest first.

    An owner always follows their record, so this is one range scan over the user's follows.
    """
    cutoff = now - timedelta(days=check_dormant_days(days))
    stmt = (
        select(Record)
        .join(Follow, and_(Follow.record_id == Record.id, Follow.org_id == Record.org_id))
        .where(Follow.user_id == user_id, Follow.last_activity_at <= cutoff, Record.deleted_at.is_(None))
        .order_by(Follow.last_activity_at, Follow.record_id)
        .limit(limit + 1)
    )
    if module is not None:
        stmt = stmt.where(Follow.module == module)
    if cursor:
        at, record_id = cursors.decode(cursor)
        stmt = stmt.where(tuple_(Follow.last_activity_at, Follow.record_id) > tuple_(at, record_id))
    rows = list((await session.execute(stmt)).scalars())
    page = rows[:limit]
    return page, cursors.encode(page[-1].last_activity_at, page[-1].id) if len(rows) > limit else None
