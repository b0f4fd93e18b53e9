"""Editing posts and comments, their history of earlier texts, and its moderation (F-POST-9).

An edit keeps the text it replaces as an `ItemVersion` row, in the edit's transaction, with its
`post.edited` or `comment.edited` event: the history and what connected clients see never disagree.
Mentions are checked as on creation; a person the edit mentions who had not been notified of this
item is notified once, one already notified is not again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions import audit
from feeds_server.actions.directory import must_get
from feeds_server.actions.notifications import MENTION, mentioned_users, notify_mentions
from feeds_server.actions.posts import EXCERPT_CHARS, RECORD, Reader, check_mentions, check_mentions_inside, visible_comment, visible_post
from feeds_server.actions.views import _names as names_of
from feeds_server.actions.views import comment_views, post_views
from feeds_server.domain.audience import OrgGraph
from feeds_server.domain.messages import MentionRef, check_text, parse_mentions, plain_text, render
from feeds_server.domain.scrub import Person, scrub_text
from feeds_server.errors import Forbidden, NotFound
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Comment, ItemVersion, Mention, Notification, Org, Post

POST_EDITED = "post.edited"
COMMENT_EDITED = "comment.edited"
VERSION_HIDDEN = "version.hidden"
VERSION_SHOWN = "version.unhidden"


@dataclass(frozen=True)
class Edit:
    """An edited item, ready for its answer: the view, and whether anything changed."""

    view: dict[str, Any]
    changed: bool


def check_window(window_seconds: int | None, written_at: datetime, now: datetime) -> None:
    """F-POST-9: None is no limit, 0 turns editing off, otherwise the author has that many seconds
    from the item's creation."""
    if window_seconds is None:
        return
    if window_seconds == 0:
        raise Forbidden("editing_disabled", "editing is turned off in this org")
    if (now - written_at).total_seconds() > window_seconds:
        raise Forbidden(
            "edit_window_closed", f"this can be edited for {window_seconds} seconds after it was written",
            limit=window_seconds, written_at=written_at.isoformat(),
        )


async def edit_post(session: AsyncSession, author: Reader, post_id: int, body: str, window_seconds: int | None, now: datetime) -> Edit:
    """Replace the text of one's own post (status, group or private message; never a record update)."""
    graph = await load_graph(session, with_members=bool(parse_mentions(body)))  # members: whom new mentions reach
    post, channels = await visible_post(session, author, post_id, graph)
    if post.kind == RECORD:
        raise Forbidden("not_editable", "a record update has no text of a person to edit")
    if post.author_id != author.user_id:
        raise Forbidden("not_author", "only the author can edit this")
    check_window(window_seconds, post.created_at, now)
    await _lock(session, Post, post.id)
    await session.refresh(post)
    if post.body == body:
        return Edit((await post_views(session, [post]))[0], False)
    refs = await _checked_refs(session, graph, body, channels)
    old_refs = parse_mentions(post.body)
    _keep_version(session, post.id, None, post.body, post.edited_at or post.created_at, author.user_id, now)
    post.body = body
    post.edited_at = now
    await _sync_mentions(session, post.id, None, refs)
    await session.flush()
    view = (await post_views(session, [post]))[0]
    append_event(session, POST_EDITED, {"post": view}, author.user_id, channels)
    await _notify_new(session, graph, old_refs, refs, author.user_id, post.id, None, channels, view, now)
    return Edit(view, True)


async def edit_comment(session: AsyncSession, author: Reader, comment_id: int, body: str, window_seconds: int | None, now: datetime) -> Edit:
    """Replace the text of one's own comment; it follows the visibility of its post."""
    graph = await load_graph(session, with_members=bool(parse_mentions(body)))  # members: whom new mentions reach
    comment, post, channels = await visible_comment(session, author, comment_id, graph)
    if comment.author_id != author.user_id:
        raise Forbidden("not_author", "only the author can edit this")
    check_window(window_seconds, comment.created_at, now)
    await _lock(session, Comment, comment.id)
    await session.refresh(comment)
    if comment.body == body:
        return Edit((await comment_views(session, [comment]))[0], False)
    refs = await _checked_refs(session, graph, body, channels)
    old_refs = parse_mentions(comment.body)
    _keep_version(session, post.id, comment.id, comment.body, comment.edited_at or comment.created_at, author.user_id, now)
    comment.body = body
    comment.edited_at = now
    await _sync_mentions(session, post.id, comment.id, refs)
    await session.flush()
    view = (await comment_views(session, [comment]))[0]
    append_event(session, COMMENT_EDITED, {"post_id": post.id, "comment": view}, author.user_id, channels)
    await _notify_new(session, graph, old_refs, refs, author.user_id, post.id, comment.id, channels, view, now)
    return Edit(view, True)


async def post_history(session: AsyncSession, reader: Reader, post_id: int, before: int | None, limit: int) -> list[dict[str, Any]]:
    """The post's texts, newest first: the current one (on the first page), then each earlier one."""
    post, _ = await visible_post(session, reader, post_id)
    return await _history(session, reader, post, None, before, limit)


async def comment_history(session: AsyncSession, reader: Reader, comment_id: int, before: int | None, limit: int) -> list[dict[str, Any]]:
    comment, _, _ = await visible_comment(session, reader, comment_id)
    return await _history(session, reader, comment, comment.id, before, limit)


async def set_version_hidden(session: AsyncSession, admin: Reader, version_id: int, hidden: bool, now: datetime) -> dict[str, Any]:
    """Moderation: an admin hides an earlier text (the history then shows only that it existed), or
    shows it again. Audited; an event tells open histories to reload."""
    version = await must_get(session, ItemVersion, version_id, "version")
    try:
        _, channels = await visible_post(session, admin, version.post_id)
    except NotFound:
        raise NotFound("version_not_found", "no such version") from None
    if hidden != (version.hidden_at is not None):
        version.hidden_at = now if hidden else None
        version.hidden_by_user_id = admin.user_id if hidden else None
        await session.flush()
        details = {"post_id": version.post_id, "comment_id": version.comment_id}
        audit.record(session, "version.hidden" if hidden else "version.unhidden", admin.user_id, ("item_version", version.id), details, now)
        append_event(session, VERSION_HIDDEN if hidden else VERSION_SHOWN, {"version_id": version.id, **details}, admin.user_id, channels)
    author_id = await _author_of(session, version)
    return (await _version_views(session, [version], author_id, show_hidden=True))[0]


async def set_edit_window(session: AsyncSession, org: Org, actor_id: int, seconds: int | None) -> Org:
    """The org's edit window (None: unlimited, 0: editing off), set by an admin; audited."""
    if org.edit_window_seconds == seconds:
        return org
    org.edit_window_seconds = seconds
    await session.flush()
    append_event(session, "org.updated", {"edit_window_seconds": seconds}, actor_id)
    audit.record(session, "org.edit_window_changed", actor_id, ("org", org.id), {"edit_window_seconds": seconds})
    return org


async def forget_person(session: AsyncSession, person: Person) -> None:
    """Erasure (actions/erasure.py): earlier texts of others' items keep no mention of the person, and
    no version names them as its editor or moderator. Their own items' versions go with the items."""
    uid = person.user_id
    token = person.mention_token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = (await session.execute(
        select(ItemVersion.id, ItemVersion.body).where(ItemVersion.body.like(f"%{token}%", escape="\\"))
    )).all()
    for version_id, body in rows:
        await session.execute(update(ItemVersion).where(ItemVersion.id == version_id).values(body=scrub_text(body, person)))
    await session.execute(update(ItemVersion).where(ItemVersion.replaced_by_user_id == uid).values(replaced_by_user_id=None))
    await session.execute(update(ItemVersion).where(ItemVersion.hidden_by_user_id == uid).values(hidden_by_user_id=None))


async def versions_written_by(session: AsyncSession, org_id: int, user_id: int) -> list[dict[str, Any]]:
    """A person's data export: the earlier texts of their own posts and comments, hidden or not."""
    of_posts = select(ItemVersion).join(Post, Post.id == ItemVersion.post_id).where(
        ItemVersion.org_id == org_id, ItemVersion.comment_id.is_(None), Post.author_id == user_id
    )
    of_comments = select(ItemVersion).join(Comment, Comment.id == ItemVersion.comment_id).where(
        ItemVersion.org_id == org_id, Comment.author_id == user_id
    )
    rows = [*(await session.execute(of_posts)).scalars(), *(await session.execute(of_comments)).scalars()]
    return [
        {"id": v.id, "post_id": v.post_id, "comment_id": v.comment_id, "body": v.body, "written_at": v.written_at,
         "replaced_at": v.replaced_at, "hidden": v.hidden_at is not None}
        for v in sorted(rows, key=lambda v: v.id)
    ]


async def _lock(session: AsyncSession, model: type[Post] | type[Comment], item_id: int) -> None:
    """Edits of one item take turns (PostgreSQL; SQLite has one writer): each version names the
    text its edit replaced, never a text another edit replaced at the same moment."""
    await session.execute(select(model.id).where(model.id == item_id).with_for_update())


async def _checked_refs(session: AsyncSession, graph: OrgGraph, body: str, channels: Sequence[str]) -> list[MentionRef]:
    """The same checks as a new item's: length, mentions that exist, and inside the audience."""
    check_text(body)
    refs = parse_mentions(body)
    await check_mentions(session, refs)
    await check_mentions_inside(session, graph, refs, channels)
    return refs


def _keep_version(
    session: AsyncSession, post_id: int, comment_id: int | None, body: str, written_at: datetime, editor_id: int, now: datetime
) -> None:
    session.add(ItemVersion(
        post_id=post_id, comment_id=comment_id, body=body, written_at=written_at, replaced_at=now, replaced_by_user_id=editor_id,
    ))


async def _sync_mentions(session: AsyncSession, post_id: int, comment_id: int | None, refs: Sequence[MentionRef]) -> None:
    """The item's mention rows become those of its new text: removed ones go, new ones come."""
    of_item = Mention.comment_id == comment_id if comment_id is not None else Mention.comment_id.is_(None)
    rows = (await session.execute(select(Mention.id, Mention.kind, Mention.target_id).where(Mention.post_id == post_id, of_item))).all()
    wanted = {(r.kind, r.target_id) for r in refs}
    stale = [row_id for row_id, kind, target in rows if (kind, target) not in wanted]
    if stale:
        await session.execute(delete(Mention).where(Mention.id.in_(stale)))
    have = {(kind, target) for _, kind, target in rows}
    session.add_all(
        Mention(post_id=post_id, comment_id=comment_id, kind=r.kind, target_id=r.target_id) for r in refs if (r.kind, r.target_id) not in have
    )


async def _notify_new(
    session: AsyncSession, graph: OrgGraph, old_refs: Sequence[MentionRef], refs: Sequence[MentionRef], author_id: int, post_id: int,
    comment_id: int | None, channels: Sequence[str], view: dict[str, Any], now: datetime,
) -> None:
    """Notify those the new text mentions, except anyone the item's earlier text reached or who was
    already notified of a mention in this item (notified once, however often it is edited)."""
    if not refs:
        return
    of_item = Notification.comment_id == comment_id if comment_id is not None else Notification.comment_id.is_(None)
    notified = set((await session.execute(
        select(Notification.user_id).where(Notification.kind == MENTION, Notification.post_id == post_id, of_item)
    )).scalars())
    already = notified | set(mentioned_users(graph, old_refs))
    audience = graph.users_of_channels(channels) - already
    excerpt = plain_text(view["segments"])[:EXCERPT_CHARS]
    await notify_mentions(session, graph, refs, author_id, post_id, comment_id, frozenset(audience), excerpt, now)


async def _author_of(session: AsyncSession, version: ItemVersion) -> int | None:
    model = Comment if version.comment_id is not None else Post
    item_id = version.comment_id if version.comment_id is not None else version.post_id
    return (await session.execute(select(model.author_id).where(model.id == item_id))).scalar_one_or_none()


async def _history(
    session: AsyncSession, reader: Reader, item: Post | Comment, comment_id: int | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    post_id = item.post_id if isinstance(item, Comment) else item.id
    of_item = ItemVersion.comment_id == comment_id if comment_id is not None else ItemVersion.comment_id.is_(None)
    stmt = select(ItemVersion).where(ItemVersion.post_id == post_id, of_item).order_by(ItemVersion.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(ItemVersion.id < before)
    versions = list((await session.execute(stmt)).scalars())
    entries = await _version_views(session, versions, item.author_id, show_hidden=reader.is_admin)
    if before is not None:
        return entries
    names = await _names(session, [item.author_id], [item.body])
    current = {
        "version_id": None,
        "current": True,
        "author": _ref(names, item.author_id),
        "written_at": item.edited_at or item.created_at,
        "body": item.body,
        "segments": render(item.body, names),
        "hidden": False,
        "replaced_at": None,
    }
    return [current, *entries]


async def _version_views(
    session: AsyncSession, versions: Sequence[ItemVersion], author_id: int | None, show_hidden: bool
) -> list[dict[str, Any]]:
    """Earlier texts as the history shows them: a hidden one without its text, except to admins."""
    readable = [v for v in versions if v.hidden_at is None or show_hidden]
    people = [author_id, *(v.hidden_by_user_id for v in versions if show_hidden)]
    names = await _names(session, people, [v.body for v in readable])
    out = []
    for v in versions:
        shown = v.hidden_at is None or show_hidden
        entry: dict[str, Any] = {
            "version_id": v.id,
            "current": False,
            "author": _ref(names, author_id),
            "written_at": v.written_at,
            "body": v.body if shown else None,
            "segments": render(v.body, names) if shown else None,
            "hidden": v.hidden_at is not None,
            "replaced_at": v.replaced_at,
        }
        if show_hidden and v.hidden_at is not None:
            entry["hidden_at"] = v.hidden_at
            entry["hidden_by"] = _ref(names, v.hidden_by_user_id)
        out.append(entry)
    return out


async def _names(session: AsyncSession, user_ids: Sequence[int | None], texts: Sequence[str]) -> dict[tuple[str, int], str]:
    """Names for rendering texts and naming people, read once per kind (as the views read them)."""
    wanted: dict[str, set[int]] = {"user": {u for u in user_ids if u is not None}, "role": set(), "group": set()}
    for text in texts:
        for ref in parse_mentions(text):
            wanted[ref.kind].add(ref.target_id)
    out: dict[tuple[str, int], str] = {}
    for kind, ids in wanted.items():
        for item_id, name in (await names_of(session, kind, ids)).items():
            out[(kind, item_id)] = name
    return out


def _ref(names: dict[tuple[str, int], str], user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return {"id": user_id, "name": names.get(("user", user_id), "(deleted)")}
