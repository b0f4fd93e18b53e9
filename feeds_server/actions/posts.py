"""Posts, private messages, comments and their deletion (F-POST-1 … F-POST-8)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.directory import must_get
from feeds_server.actions.views import comment_views, post_views
from feeds_server.domain.audience import ORG, OrgGraph, group_channel, outside_audience, user_channel
from feeds_server.domain.file_types import PREVIEW_NONE, PREVIEW_PENDING, previewable
from feeds_server.actions.notifications import (
    Mentioning, Message, notify_group_posts, notify_mentions, notify_mentions_of, notify_private_messages,
)
from feeds_server.actions.webhooks import enqueue_note
from feeds_server.domain.messages import MentionRef, check_text, parse_mentions, plain_text
from feeds_server.errors import Forbidden, NotFound, ValidationFailed
from feeds_server.store.bulk import insert_many, insert_returning_ids
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.scope import current_org
from feeds_server.store.models import Attachment, Comment, Group, Membership, Mention, Post, PostAudience, PreviewJob, Role, User

STATUS, GROUP, PRIVATE, RECORD = "status", "group", "private", "record"
EXCERPT_CHARS = 280


@dataclass(frozen=True)
class Reader:
    """The member reading or writing, with what decides their audience."""

    user_id: int
    role_id: int | None
    is_admin: bool


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file, already in storage under `storage_key` (api/uploads.py)."""

    filename: str
    content_type: str
    size: int
    sha256: str
    storage_key: str
    # What the bytes are (domain/file_types.py `sniff`), whatever type was declared: decides the preview.
    detected_type: str | None = None


async def check_mentions(session: AsyncSession, refs: Sequence[MentionRef]) -> None:
    """F-POST-3: each target must exist in this org; another org's ID is as unknown as a made-up one."""
    by_kind: dict[str, set[int]] = {}
    for ref in refs:
        by_kind.setdefault(ref.kind, set()).add(ref.target_id)
    columns = {"user": Membership.user_id, "role": Role.id, "group": Group.id}
    for kind, ids in by_kind.items():
        column = columns[kind]
        found = set((await session.execute(select(column).where(column.in_(ids)))).scalars())
        missing = sorted(ids - found)
        if missing:
            raise ValidationFailed(
                "mention_target_not_found", f"no {kind} with id {missing[0]} in this org", field="body", kind=kind, id=missing[0]
            )


async def check_mentions_inside(session: AsyncSession, graph: OrgGraph | None, refs: Sequence[MentionRef], channels: Iterable[str]) -> None:
    """F-POST-3: a mention never widens who sees an item. Mentioning a person outside its audience
    is refused with their ids and names, so the author can add them first. Role and group mentions
    are not refused: they reach only those of the audience who hold the role or are in the group."""
    audience = set(channels)
    users = sorted({r.target_id for r in refs if r.kind == "user"})
    if not users or ORG in audience:
        return
    roles = dict((await session.execute(select(Membership.user_id, Membership.role_id).where(Membership.user_id.in_(users)))).all())
    outside = outside_audience(graph or await load_graph(session), audience, roles)
    if not outside:
        return
    names = dict((await session.execute(select(User.id, User.name).where(User.id.in_(outside)))).all())
    people = [{"id": user_id, "name": names.get(user_id, "")} for user_id in outside]
    listed = ", ".join(p["name"] or f"user {p['id']}" for p in people)
    raise ValidationFailed(
        "mention_outside_audience",
        f"{listed} cannot see this message: add them to its audience first, or remove the mention",
        field="body", users=people,
    )


@dataclass(frozen=True)
class NewPost:
    """A post that passed every check, ready to be written (alone, or in a batch of its org's posts)."""

    author_id: int
    kind: str
    body: str
    group_id: int | None
    recipient_id: int | None
    channels: frozenset[str]
    refs: tuple[MentionRef, ...]
    files: tuple[StoredFile, ...]
    now: datetime
    # The author's name as read with the request, so the batch need not read it again.
    author_name: str | None = None


@dataclass(frozen=True)
class Draft:
    """A post as its author sends it: to the org, a group (`group_id`), one person (`recipient_id`),
    or the author alone (`private`), with files already in storage."""

    body: str
    group_id: int | None = None
    recipient_id: int | None = None
    private: bool = False
    files: Sequence[StoredFile] = ()

    @property
    def to_org(self) -> bool:
        return self.group_id is None and self.recipient_id is None and not self.private


async def check_post(session: Callable[[], AsyncSession], author: Reader, draft: Draft, now: datetime) -> NewPost:
    """Check a new post and settle who sees it; writes nothing (the org's writer does,
    actions/post_writer.py). `session` is called only if the post needs the database: a status post
    to the org without mentions or files does not, and opening a session costs about what a query does."""
    if draft.to_org and not draft.files:
        item = prepare_status_post(author, draft.body, now)
        if item is not None:
            return item
    return await prepare_post(session(), author, draft.body, now, draft.group_id, draft.recipient_id, draft.private, draft.files)


def prepare_status_post(author: Reader, body: str, now: datetime) -> NewPost | None:
    """A status post to the org that mentions nobody needs nothing of the database to be checked
    (F-POST-2): ready without a session. None when it mentions someone (`prepare_post` checks them)."""
    check_text(body)
    if parse_mentions(body):
        return None
    return NewPost(author.user_id, STATUS, body, None, None, frozenset({ORG}), (), (), now)


async def prepare_post(
    session: AsyncSession,
    author: Reader,
    body: str,
    now: datetime,
    group_id: int | None = None,
    recipient_id: int | None = None,
    private: bool = False,
    files: Sequence[StoredFile] = (),
) -> NewPost:
    """Check a new post (F-POST-1 … F-POST-3, F-POST-7) and settle who sees it; writes nothing."""
    check_text(body)
    refs = parse_mentions(body)
    await check_mentions(session, refs)
    # Only a message to a group needs the org graph (is the author a member?); a status post does not.
    graph = await load_graph(session) if group_id is not None else None
    kind, channels = await _kind_and_channels(session, graph, author, group_id, recipient_id, private)
    await check_mentions_inside(session, graph, refs, channels)
    return NewPost(author.user_id, kind, body, group_id, recipient_id, frozenset(channels), tuple(refs), tuple(files), now)


async def write_posts(session: AsyncSession, items: Sequence[NewPost]) -> list[dict]:
    """Store checked posts with their audience, mentions and files, queue their events and mention
    notifications; returns their views. Multi-row inserts: a batch costs a few statements, not a few
    per post (actions/post_writer.py). The rows are those of PostgreSQL's driver path for a post
    without mentions or files, as listed in store/post_rows.py."""
    org_id = current_org(session)
    rows = [
        {"org_id": org_id, "kind": i.kind, "author_id": i.author_id, "body": i.body, "group_id": i.group_id,
         "recipient_id": i.recipient_id, "module": None, "data": {}, "comment_count": 0, "created_at": i.now}
        for i in items
    ]
    ids = await insert_returning_ids(session, Post.__table__, rows)
    audience = [
        {"org_id": org_id, "post_id": pid, "channel": c, "module": None, "created_at": i.now}
        for pid, i in zip(ids, items) for c in sorted(i.channels)
    ]
    await insert_many(session, PostAudience.__table__, audience)
    mentions = [{"org_id": org_id, "post_id": pid, "comment_id": None, "kind": r.kind, "target_id": r.target_id}
                for pid, i in zip(ids, items) for r in i.refs]
    await insert_many(session, Mention.__table__, mentions)
    files = [
        {"org_id": org_id, "post_id": pid, "filename": f.filename, "content_type": f.content_type, "size": f.size,
         "sha256": f.sha256, "storage_key": f.storage_key, "created_at": i.now,
         "preview_state": PREVIEW_PENDING if previewable(f.detected_type) else PREVIEW_NONE}
        for pid, i in zip(ids, items) for f in i.files
    ]
    await insert_attachments(session, org_id, files)
    posts = [Post(id=pid, org_id=org_id, **{k: v for k, v in row.items() if k != "org_id"}) for pid, row in zip(ids, rows)]
    known = {i.author_id: i.author_name for i in items if i.author_name is not None}
    views = await post_views(session, posts, with_attachments=bool(files), known_users=known, with_reactions=False)
    # Members are needed to list whom mentions and private messages to a group reach.
    to_group = any(i.kind == PRIVATE and i.group_id is not None for i in items)
    graph = await load_graph(session, with_members=True) if mentions or to_group else None
    for i, view in zip(items, views):
        append_event(session, "post.created", {"post": view}, i.author_id, i.channels)
    # The batch's mentions notify in one call (a few queries in all, not per post).
    mentioning = [
        Mentioning(i.refs, i.author_id, pid, None, graph.users_of_channels(i.channels), plain_text(view["segments"])[:EXCERPT_CHARS], i.now)
        for pid, i, view in zip(ids, items, views) if graph is not None and i.refs
    ]
    told = iter(await notify_mentions_of(session, graph, mentioning) if graph is not None and mentioning else [])
    messages: dict[str, list[Message]] = {PRIVATE: [], GROUP: []}
    for pid, i, view in zip(ids, items, views):
        mentioned = next(told) if graph is not None and i.refs else []
        if i.kind in messages:
            recipients = graph.users_of_channels(i.channels) if graph is not None else _people_of(i.channels)
            excerpt = plain_text(view["segments"])[:EXCERPT_CHARS]
            messages[i.kind].append(Message(pid, i.author_id, recipients, i.group_id, excerpt, i.now, frozenset(mentioned)))
    await notify_private_messages(session, messages[PRIVATE])
    await notify_group_posts(session, messages[GROUP], graph)
    return views


def _people_of(channels: Iterable[str]) -> frozenset[int]:
    """The people a private message to one person names (`u:` channels): no graph needed."""
    return frozenset(int(c[2:]) for c in channels if c.startswith("u:"))


async def insert_attachments(session: AsyncSession, org_id: int, files: list[dict]) -> None:
    """The files, and for each image or PDF a preview job in the same transaction (the outbox the
    worker drains, notify/previews.py): a committed post never lacks the job of its thumbnail."""
    if not any(f["preview_state"] == PREVIEW_PENDING for f in files):
        await insert_many(session, Attachment.__table__, files)
        return
    file_ids = await insert_returning_ids(session, Attachment.__table__, files)
    jobs = [
        {"org_id": org_id, "attachment_id": fid, "status": "pending", "attempts": 0, "next_attempt_at": f["created_at"],
         "leased_until": None, "last_error": None, "created_at": f["created_at"]}
        for fid, f in zip(file_ids, files) if f["preview_state"] == PREVIEW_PENDING
    ]
    await insert_many(session, PreviewJob.__table__, jobs)


async def create_post(
    session: AsyncSession,
    author: Reader,
    body: str,
    now: datetime,
    group_id: int | None = None,
    recipient_id: int | None = None,
    private: bool = False,
    files: Sequence[StoredFile] = (),
) -> dict:
    """Check and store one post in the session's transaction; returns its view."""
    item = await prepare_post(session, author, body, now, group_id, recipient_id, private, files)
    return (await write_posts(session, [item]))[0]


async def _notify(
    session: AsyncSession, graph: OrgGraph | None, refs: Sequence[MentionRef], author_id: int, post_id: int,
    comment_id: int | None, channels: Iterable[str], view: dict, now: datetime,
) -> list[int]:
    if not refs:
        return []
    graph = graph or await load_graph(session, with_members=True)
    excerpt = plain_text(view["segments"])[:EXCERPT_CHARS]
    return await notify_mentions(session, graph, refs, author_id, post_id, comment_id, graph.users_of_channels(channels), excerpt, now)


async def _kind_and_channels(
    session: AsyncSession, graph: OrgGraph | None, author: Reader, group_id: int | None, recipient_id: int | None, private: bool
) -> tuple[str, set[str]]:
    if group_id is not None and recipient_id is not None:
        raise ValidationFailed("invalid_target", "send to a group or to a person, not both", field="recipient_id")
    if recipient_id is not None:
        if recipient_id == author.user_id:
            raise ValidationFailed("invalid_target", "a private message goes to someone else", field="recipient_id")
        if (await session.execute(select(Membership.user_id).where(Membership.user_id == recipient_id))).first() is None:
            raise NotFound("member_not_found", "no such member", field="recipient_id")
        return PRIVATE, {user_channel(author.user_id), user_channel(recipient_id)}
    if group_id is not None:
        # Groups are closed circles (F-POST-4): only members post or send privately to one. A
        # non-member gets the answer given for a group that does not exist (which has no members).
        if graph is None or not graph.in_group(group_id, author.user_id, author.role_id):
            raise NotFound("group_not_found", "no such group", field="group_id")
        if private:
            return PRIVATE, {group_channel(group_id), user_channel(author.user_id)}
        return GROUP, {group_channel(group_id)}
    if private:
        raise ValidationFailed("invalid_target", "a private message needs a recipient or a group", field="private")
    return STATUS, {ORG}


async def post_channels(session: AsyncSession, post_id: int) -> list[str]:
    rows = await session.execute(select(PostAudience.channel).where(PostAudience.post_id == post_id))
    return list(rows.scalars())


async def visible_post(session: AsyncSession, reader: Reader, post_id: int, graph: OrgGraph | None = None) -> tuple[Post, list[str]]:
    """The post if the reader may see it, with its channels; 404 otherwise (F-SEC-1)."""
    post = await must_get(session, Post, post_id, "post")
    channels = await post_channels(session, post.id)
    graph = graph or await load_graph(session)
    if not set(channels) & set(graph.reader_channels(reader.user_id, reader.role_id)):
        raise NotFound("post_not_found", "no such post")
    return post, channels


async def delete_post(session: AsyncSession, actor: Reader, post_id: int) -> list[str]:
    """F-POST-8: authors delete their own posts; admins may too (moderation). Returns file keys to remove."""
    post, channels = await visible_post(session, actor, post_id)
    if post.author_id != actor.user_id and not actor.is_admin:
        raise Forbidden("not_author", "only the author (or an admin) can delete this")
    stored = await session.execute(select(Attachment.storage_key, Attachment.preview_key).where(Attachment.post_id == post.id))
    keys = [key for row in stored for key in row if key is not None]  # the files and their thumbnails
    await session.execute(delete(Post).where(Post.id == post.id))
    append_event(session, "post.deleted", {"post_id": post_id}, actor.user_id, channels)
    return keys


async def add_comment(session: AsyncSession, author: Reader, post_id: int, body: str, now: datetime) -> dict:
    """F-POST-6: a comment follows the visibility of its post and obeys the same length limit."""
    graph = await load_graph(session)
    post, channels = await visible_post(session, author, post_id, graph)
    check_text(body)
    refs = parse_mentions(body)
    await check_mentions(session, refs)
    await check_mentions_inside(session, graph, refs, channels)
    comment = Comment(post_id=post.id, author_id=author.user_id, body=body, created_at=now, data={})
    session.add(comment)
    await session.flush()
    session.add_all(Mention(post_id=post.id, comment_id=comment.id, kind=r.kind, target_id=r.target_id) for r in refs)
    await session.execute(update(Post).where(Post.id == post.id).values(comment_count=Post.comment_count + 1))
    await session.flush()
    view = (await comment_views(session, [comment], with_reactions=False))[0]
    append_event(session, "comment.created", {"post_id": post.id, "comment": view}, author.user_id, channels)
    await _notify(session, None, refs, author.user_id, post.id, comment.id, channels, view, now)
    if post.kind == RECORD:
        await enqueue_note(session, post, view, author.user_id, now)  # F-FOLLOW-10: back to the CRM as a note
    return view


async def visible_comment(
    session: AsyncSession, reader: Reader, comment_id: int, graph: OrgGraph | None = None
) -> tuple[Comment, Post, list[str]]:
    """The comment, its post and the post's channels, if the reader may see the post (a comment is
    seen with its post); 404 `comment_not_found` otherwise, whichever it is that they may not see."""
    comment = await must_get(session, Comment, comment_id, "comment")
    try:
        post, channels = await visible_post(session, reader, comment.post_id, graph)
    except NotFound:
        raise NotFound("comment_not_found", "no such comment") from None
    return comment, post, channels


async def delete_comment(session: AsyncSession, actor: Reader, comment_id: int) -> None:
    comment, post, channels = await visible_comment(session, actor, comment_id)
    if comment.author_id != actor.user_id and not actor.is_admin:
        raise Forbidden("not_author", "only the author (or an admin) can delete this")
    await session.execute(delete(Comment).where(Comment.id == comment.id))
    await session.execute(update(Post).where(Post.id == post.id).values(comment_count=Post.comment_count - 1))
    append_event(session, "comment.deleted", {"post_id": post.id, "comment_id": comment_id}, actor.user_id, channels)


async def list_comments(session: AsyncSession, reader: Reader, post_id: int, after_id: int | None, limit: int) -> list[dict]:
    """Comments oldest first, by id keyset."""
    await visible_post(session, reader, post_id)
    stmt = select(Comment).where(Comment.post_id == post_id).order_by(Comment.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(Comment.id > after_id)
    return await comment_views(session, list((await session.execute(stmt)).scalars()))


async def visible_attachment(session: AsyncSession, reader: Reader, attachment_id: int) -> Attachment:
    """A file is downloadable only by those who can see its post (F-POST-7)."""
    attachment = await must_get(session, Attachment, attachment_id, "attachment")
    try:
        await visible_post(session, reader, attachment.post_id)
    except NotFound:
        raise NotFound("attachment_not_found", "no such attachment") from None
    return attachment
