"""Emoji reactions on posts, messages, record updates and comments: toggles, counts, who reacted.

A toggle is idempotent (turning on what is on, or off what is off, changes nothing and adds no
event). Each change appends a `reaction.changed` event carrying the item's absolute counts, so any
later one supersedes the earlier ones: real-time delivery may merge a burst into its last event
(realtime/hub.py) and recovery may skip the superseded ones (realtime/history.py) without a client
ever holding a wrong count. The item's row is locked for the toggle (PostgreSQL), so toggles of one
item commit one after the other and each event's counts include every earlier change.

The item's author hears of it as their preferences say (in the app by default), in one unread
notification per item that later reactions update (actions/notifications.py `notify_reaction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from feeds_server import limits
from feeds_server.actions.notifications import notification_view, notify_reaction
from feeds_server.actions.posts import EXCERPT_CHARS, Reader, visible_comment, visible_post
from feeds_server.actions.reaction_counts import counts_of_items
from feeds_server.domain.audience import OrgGraph, user_channel
from feeds_server.domain.emoji import canonical_emoji
from feeds_server.domain.messages import parse_mentions, plain_text, render
from feeds_server.errors import LimitExceeded
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Comment, Group, Membership, Post, PostAudience, Reaction, Role, User
from feeds_server.store.scope import current_org

REACTION_CHANGED = "reaction.changed"
# The notification kind, and the live event of an unread one that a later reaction updated.
REACTION = "reaction"
NOTIFICATION_UPDATED = "notifications.updated"


@dataclass(frozen=True)
class Item:
    """A post (comment None) or one of its comments, as a reader may see it, with its channels."""

    post: Post
    comment: Comment | None
    channels: list[str]
    graph: OrgGraph

    @property
    def key(self) -> tuple[int, int | None]:
        return self.post.id, (self.comment.id if self.comment is not None else None)

    @property
    def author_id(self) -> int | None:
        return self.comment.author_id if self.comment is not None else self.post.author_id

    @property
    def body(self) -> str:
        return self.comment.body if self.comment is not None else self.post.body


async def visible_item(session: AsyncSession, reader: Reader, post_id: int | None, comment_id: int | None) -> Item:
    """The post or comment if the reader may see it (a comment is seen with its post); 404 otherwise."""
    graph = await load_graph(session)
    if comment_id is None:
        assert post_id is not None
        post, channels = await visible_post(session, reader, post_id, graph)
        return Item(post, None, channels, graph)
    comment, post, channels = await visible_comment(session, reader, comment_id, graph)
    return Item(post, comment, channels, graph)


def _of(post_id: int, comment_id: int | None) -> ColumnElement[bool]:
    if comment_id is None:
        return (Reaction.post_id == post_id) & Reaction.comment_id.is_(None)
    return Reaction.comment_id == comment_id


async def counts(session: AsyncSession, post_id: int, comment_id: int | None) -> list[dict[str, Any]]:
    """The item's emojis with their counts, in the order they were first used."""
    rows = await session.execute(
        select(Reaction.emoji, func.count(), func.min(Reaction.id)).where(_of(post_id, comment_id)).group_by(Reaction.emoji).order_by(func.min(Reaction.id))
    )
    return [{"emoji": e, "count": n} for e, n, _ in rows]


async def _mine(session: AsyncSession, user_id: int, post_id: int, comment_id: int | None) -> list[str]:
    rows = await session.execute(select(Reaction.emoji).where(_of(post_id, comment_id), Reaction.user_id == user_id).order_by(Reaction.id))
    return list(rows.scalars())


async def _lock(session: AsyncSession, post_id: int) -> None:
    """Toggles on one post and its comments commit one after the other (a no-op on SQLite, whose
    writers are serialised anyway), so each event's counts follow every earlier change."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Post.id).where(Post.id == post_id).with_for_update())


async def toggle(
    session: AsyncSession, reader: Reader, post_id: int | None, comment_id: int | None, emoji: str, on: bool, now: datetime
) -> dict[str, Any]:
    """Turn the reader's `emoji` on the item on or off; returns the item's counts and the reader's emojis."""
    item = await visible_item(session, reader, post_id, comment_id)
    emoji = canonical_emoji(emoji)
    pid, cid = item.key
    await _lock(session, pid)
    changed = await (_add(session, item, reader.user_id, emoji, now) if on else _remove(session, item, reader.user_id, emoji))
    now_counts = await counts(session, pid, cid)
    if changed:
        payload = {"post_id": pid, "comment_id": cid, "module": item.post.module, "reactions": now_counts}
        append_event(session, REACTION_CHANGED, payload, reader.user_id, item.channels)
        if on:
            await _notify_author(session, item, reader.user_id, emoji, now_counts, now)
    return {"post_id": pid, "comment_id": cid, "reactions": now_counts, "my_reactions": await _mine(session, reader.user_id, pid, cid)}


async def _add(session: AsyncSession, item: Item, user_id: int, emoji: str, now: datetime) -> bool:
    pid, cid = item.key
    used = set((await session.execute(select(Reaction.emoji).where(_of(pid, cid)).distinct())).scalars())
    if emoji not in used and len(used) >= limits.MAX_REACTIONS_PER_ITEM:
        raise LimitExceeded(
            "too_many_reactions", f"an item has at most {limits.MAX_REACTIONS_PER_ITEM} different emojis", field="emoji",
            limit=limits.MAX_REACTIONS_PER_ITEM,
        )
    # ON CONFLICT DO NOTHING on the partial unique index: a double click sent twice at once adds one.
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(Reaction.__table__).values(
        org_id=current_org(session), post_id=pid, comment_id=cid, user_id=user_id, emoji=emoji, created_at=now
    )
    if cid is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["org_id", "post_id", "user_id", "emoji"], index_where=Reaction.comment_id.is_(None))
    else:
        stmt = stmt.on_conflict_do_nothing(
            index_elements=["org_id", "comment_id", "user_id", "emoji"], index_where=Reaction.comment_id.is_not(None)
        )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _remove(session: AsyncSession, item: Item, user_id: int, emoji: str) -> bool:
    pid, cid = item.key
    result = await session.execute(delete(Reaction).where(_of(pid, cid), Reaction.user_id == user_id, Reaction.emoji == emoji))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _notify_author(
    session: AsyncSession, item: Item, actor_id: int, emoji: str, now_counts: list[dict[str, Any]], now: datetime
) -> None:
    """One unread notification per (author, item): made by the first reaction, updated by the next.
    None for one's own item, nor for an author who can no longer see it."""
    author_id = item.author_id
    if author_id is None or author_id == actor_id:
        return
    role = (await session.execute(select(Membership.role_id).where(Membership.user_id == author_id))).first()
    if role is None or not set(item.channels) & set(item.graph.reader_channels(author_id, role[0])):
        return
    pid, cid = item.key
    people = (await session.execute(select(func.count(func.distinct(Reaction.user_id))).where(_of(pid, cid)))).scalar_one()
    data = {"emoji": emoji, "reactions": now_counts, "people": people, "excerpt": await _excerpt(session, item.body)}
    told = await notify_reaction(session, author_id, actor_id, pid, cid, data, now)
    if told is not None and not told[1]:
        append_event(session, NOTIFICATION_UPDATED, {"notification": notification_view(told[0])}, actor_id, [user_channel(author_id)])


async def _excerpt(session: AsyncSession, body: str) -> str:
    """The item's text as a notification shows it: mentions as `@Name`, cut short."""
    wanted: dict[str, set[int]] = {}
    for ref in parse_mentions(body):
        wanted.setdefault(ref.kind, set()).add(ref.target_id)
    names: dict[tuple[str, int], str] = {}
    for kind, ids in wanted.items():
        model = {"user": User, "role": Role, "group": Group}[kind]
        for target_id, name in await session.execute(select(model.id, model.name).where(model.id.in_(ids))):  # type: ignore[attr-defined]
            names[(kind, target_id)] = name
    return plain_text(render(body, names))[:EXCERPT_CHARS]


async def who_reacted(
    session: AsyncSession, reader: Reader, post_id: int | None, comment_id: int | None, emoji: str | None, after: int | None, limit: int
) -> dict[str, Any]:
    """The item's counts, the reader's emojis, and who reacted (one emoji's people when `emoji` is
    given), oldest first, by reaction id keyset; `limit + 1` rows are read to know if more follow."""
    item = await visible_item(session, reader, post_id, comment_id)
    pid, cid = item.key
    stmt = (
        select(Reaction.id, Reaction.emoji, Reaction.created_at, User.id, User.name)
        .join(User, User.id == Reaction.user_id)
        .where(_of(pid, cid))
        .order_by(Reaction.id)
        .limit(limit + 1)
    )
    if emoji is not None:
        stmt = stmt.where(Reaction.emoji == canonical_emoji(emoji))
    if after is not None:
        stmt = stmt.where(Reaction.id > after)
    rows = (await session.execute(stmt)).all()
    page = rows[:limit]
    return {
        "post_id": pid,
        "comment_id": cid,
        "reactions": await counts(session, pid, cid),
        "my_reactions": await _mine(session, reader.user_id, pid, cid),
        "people": [{"id": r[0], "emoji": r[1], "reacted_at": r[2], "user": {"id": r[3], "name": r[4]}} for r in page],
        "next_after": page[-1][0] if len(rows) > limit else None,
    }


async def forget_person(session: AsyncSession, user_id: int, actor_id: int | None) -> None:
    """Erasure: take back every reaction of the person; each item they reacted to gets its new
    counts as a `reaction.changed` event, so open pages and recovering clients follow."""
    rows = (await session.execute(select(Reaction.post_id, Reaction.comment_id).where(Reaction.user_id == user_id).distinct())).all()
    if not rows:
        return
    await session.execute(delete(Reaction).where(Reaction.user_id == user_id))
    post_ids = sorted({post_id for post_id, _ in rows})
    channels: dict[int, list[str]] = {}
    for post_id, channel in await session.execute(select(PostAudience.post_id, PostAudience.channel).where(PostAudience.post_id.in_(post_ids))):
        channels.setdefault(post_id, []).append(channel)
    modules = dict((await session.execute(select(Post.id, Post.module).where(Post.id.in_(post_ids)))).all())
    on_posts, on_comments = await counts_of_items(session, post_ids, [c for _, c in rows if c is not None])
    for post_id, comment_id in sorted(rows, key=lambda r: (r[0], r[1] or 0)):
        now_counts = on_posts.get(post_id, []) if comment_id is None else on_comments.get(comment_id, [])
        payload = {"post_id": post_id, "comment_id": comment_id, "module": modules.get(post_id), "reactions": now_counts}
        append_event(session, REACTION_CHANGED, payload, actor_id, channels.get(post_id, []))


async def reactions_of_person(session: AsyncSession, org_id: int, user_id: int) -> list[dict[str, Any]]:
    """A person's own reactions in one org, oldest first (their data export)."""
    rows = await session.execute(
        select(Reaction.post_id, Reaction.comment_id, Reaction.emoji, Reaction.created_at)
        .where(Reaction.org_id == org_id, Reaction.user_id == user_id)
        .order_by(Reaction.id)
    )
    return [{"post_id": p, "comment_id": c, "emoji": e, "reacted_at": at} for p, c, e, at in rows]
