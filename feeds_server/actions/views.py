"""Rendered posts and comments, loaded in batches: one query per kind of name, not per item.

The same dict is the REST representation and the real-time publication, so clients render one shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.reaction_counts import counts_of_items
from feeds_server.domain.file_types import PREVIEW_NONE
from feeds_server.domain.messages import parse_mentions, render
from feeds_server.store.models import Attachment, Comment, Group, Post, Role, User

LATEST_COMMENTS = 3


async def _names(session: AsyncSession, kind: str, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    model = {"user": User, "role": Role, "group": Group}[kind]
    rows = await session.execute(select(model.id, model.name).where(model.id.in_(wanted)))  # type: ignore[attr-defined]
    return {item_id: name for item_id, name in rows}


class _Names:
    """Names of users, roles and groups needed by a batch of items."""

    def __init__(self) -> None:
        self.wanted: dict[str, set[int]] = {"user": set(), "role": set(), "group": set()}
        self.names: dict[tuple[str, int], str] = {}

    def want_text(self, text: str) -> None:
        for ref in parse_mentions(text):
            self.wanted[ref.kind].add(ref.target_id)

    async def load(self, session: AsyncSession) -> None:
        for kind, ids in self.wanted.items():
            for item_id, name in (await _names(session, kind, ids)).items():
                self.names[(kind, item_id)] = name

    def ref(self, kind: str, item_id: int | None) -> dict[str, Any] | None:
        if item_id is None:
            return None
        return {"id": item_id, "name": self.names.get((kind, item_id), "(deleted)")}


def _comment_view(c: Comment, names: _Names) -> dict[str, Any]:
    return {
        "id": c.id,
        "post_id": c.post_id,
        "author": names.ref("user", c.author_id),
        "body": c.body,
        "segments": render(c.body, names.names),
        "data": c.data or {},
        "created_at": c.created_at,
        "edited_at": c.edited_at,
    }


async def comment_views(session: AsyncSession, comments: Sequence[Comment], with_reactions: bool = True) -> list[dict[str, Any]]:
    """`with_reactions=False` skips the reaction query for a comment just made (it has none)."""
    names = _Names()
    for c in comments:
        names.want_text(c.body)
        if c.author_id is not None:
            names.wanted["user"].add(c.author_id)
    await names.load(session)
    views = [_comment_view(c, names) for c in comments]
    await _add_reactions(session, [], views, with_reactions)
    return views


async def post_views(
    session: AsyncSession, posts: Sequence[Post], with_attachments: bool = True, known_users: dict[int, str] | None = None,
    with_reactions: bool = True,
) -> list[dict[str, Any]]:
    """Posts with author, target, rendered text, attachments and their latest comments.

    `with_attachments=False` skips the attachment query for a post just made without files;
    `known_users` (id: name) are names already read, e.g. the authors of new posts: when they are
    all the names needed, no query is made. `with_reactions=False` skips the reaction counts of
    posts just made (they have none).
    """
    if not posts:
        return []
    attachments = await _attachments(session, posts) if with_attachments else {}
    latest = await _latest_comments(session, [p for p in posts if p.comment_count])
    names = _Names()
    for p in posts:
        names.want_text(p.body)
        names.wanted["user"].update(x for x in (p.author_id, p.recipient_id) if x is not None)
        if p.group_id is not None:
            names.wanted["group"].add(p.group_id)
        for c in latest.get(p.id, []):
            names.want_text(c.body)
            if c.author_id is not None:
                names.wanted["user"].add(c.author_id)
    for user_id, name in (known_users or {}).items():
        names.names[("user", user_id)] = name
        names.wanted["user"].discard(user_id)
    await names.load(session)
    views = [
        {
            "id": p.id,
            "kind": p.kind,
            "author": names.ref("user", p.author_id),
            "body": p.body,
            "segments": render(p.body, names.names),
            "group": names.ref("group", p.group_id),
            "recipient": names.ref("user", p.recipient_id),
            "module": p.module,
            "data": p.data or {},
            "attachments": [attachment_view(a) for a in attachments.get(p.id, [])],
            "comment_count": p.comment_count,
            "latest_comments": [_comment_view(c, names) for c in latest.get(p.id, [])],
            "created_at": p.created_at,
            # F-POST-9; a record update written in bulk has no such attribute (actions/records.py).
            "edited_at": getattr(p, "edited_at", None),
        }
        for p in posts
    ]
    await _add_reactions(session, views, [c for v in views for c in v["latest_comments"]], with_reactions)
    return views


async def _add_reactions(session: AsyncSession, posts: list[dict[str, Any]], comments: list[dict[str, Any]], load: bool) -> None:
    """Each item's `reactions` ([{emoji, count}], first used first), for the whole batch in one query."""
    by_post, by_comment = await counts_of_items(session, [p["id"] for p in posts], [c["id"] for c in comments]) if load else ({}, {})
    for p in posts:
        p["reactions"] = by_post.get(p["id"], [])
    for c in comments:
        c["reactions"] = by_comment.get(c["id"], [])


def attachment_view(a: Attachment) -> dict[str, Any]:
    """A file of a post. `preview` is None for a file that gets no thumbnail; otherwise its state
    ("pending", "ready", "failed") and, once ready, the thumbnail's size. The original's size in
    pixels (an image) or its page count (a PDF) appear once the worker has read them."""
    view: dict[str, Any] = {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size, "preview": None}
    if a.preview_state not in (None, PREVIEW_NONE):
        view["preview"] = {"state": a.preview_state, "width": a.preview_width, "height": a.preview_height}
    for name in ("width", "height", "page_count"):
        value = getattr(a, name)
        if value is not None:
            view[name] = value
    return view


async def _attachments(session: AsyncSession, posts: Sequence[Post]) -> dict[int, list[Attachment]]:
    ids = [p.id for p in posts]
    out: dict[int, list[Attachment]] = {}
    for a in (await session.execute(select(Attachment).where(Attachment.post_id.in_(ids)).order_by(Attachment.id))).scalars():
        out.setdefault(a.post_id, []).append(a)
    return out


async def _latest_comments(session: AsyncSession, posts: Sequence[Post]) -> dict[int, list[Comment]]:
    """The last few comments of each post, in one query (a window per post)."""
    if not posts:
        return {}
    rank = func.row_number().over(partition_by=Comment.post_id, order_by=Comment.id.desc()).label("rank")
    ranked = select(Comment.id, rank).where(Comment.post_id.in_([p.id for p in posts])).subquery()
    stmt = select(Comment).join(ranked, ranked.c.id == Comment.id).where(ranked.c.rank <= LATEST_COMMENTS).order_by(Comment.id)
    out: dict[int, list[Comment]] = {}
    for c in (await session.execute(stmt)).scalars():
        out.setdefault(c.post_id, []).append(c)
    return out
