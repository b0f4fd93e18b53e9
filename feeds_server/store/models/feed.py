"""Feed content: groups, posts, who can see them, mentions, comments, attachments (F-POST-*, F-FEED-*)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server import limits
from feeds_server.store.base import Base, BigId, OrgOwned, utcnow


class Group(OrgOwned, Base):
    """A group; its members are resolved from `GroupSource` rows whenever they are needed."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(limits.MAX_NAME_CHARS))
    description: Mapped[str] = mapped_column(String(limits.MAX_DESCRIPTION_CHARS), default="")
    created_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupSource(OrgOwned, Base):
    """One source of a group's members: a user, a role, a role and its subordinates, or another group."""

    __tablename__ = "group_sources"

    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    ref_id: Mapped[int] = mapped_column(BigId, primary_key=True)


class Post(OrgOwned, Base):
    """A feed item: a status post, a group post, a private message, or (records issue) a record update."""

    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    group_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("groups.id", ondelete="CASCADE"))
    recipient_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    module: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    comment_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # F-POST-9: when the author last changed the text (None: never edited); versions in ItemVersion.
    edited_at: Mapped[datetime | None]


class PostAudience(OrgOwned, Base):
    """Who can see a post, as channels (`org`, `u:<user>`, `g:<group>`, `r:<role>`).

    A feed page is a union of a few index range scans, one per channel of the reader, so it
    stays fast however many items the org has (F-FEED-1, F-FEED-2).
    """

    __tablename__ = "post_audience"
    __table_args__ = (
        Index("ix_post_audience_feed", "org_id", "channel", "created_at", "post_id"),
        Index("ix_post_audience_module", "org_id", "channel", "module", "created_at", "post_id"),
    )

    # No foreign keys, no index on the org alone (migration 0005): rows are written only with their
    # post, in its transaction, and a deleted post or org takes them with it (a trigger).
    org_id: Mapped[int] = mapped_column(BigId, nullable=False)
    post_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(40), primary_key=True)
    module: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Mention(OrgOwned, Base):
    """A structured mention (F-POST-3) in a post or in a comment."""

    __tablename__ = "mentions"
    __table_args__ = (Index("ix_mentions_target", "org_id", "kind", "target_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("comments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[int] = mapped_column(BigId)


class Comment(OrgOwned, Base):
    """A comment on a post or a record-update item, or a reply to a private message (F-POST-6)."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_post", "org_id", "post_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None]


class ItemVersion(OrgOwned, Base):
    """A text a post or comment had before an edit replaced it (F-POST-9): the history lists these
    with the current text. `comment_id` is None for a post's own versions."""

    __tablename__ = "item_versions"
    __table_args__ = (Index("ix_item_versions_item", "org_id", "post_id", "comment_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("comments.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    # When this text was written (the item's creation or the edit before), and the edit that replaced it.
    written_at: Mapped[datetime]
    replaced_at: Mapped[datetime]
    replaced_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    # Moderation: an admin may hide a version; the history then shows that it existed, not its text.
    hidden_at: Mapped[datetime | None]
    hidden_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))


class Attachment(OrgOwned, Base):
    """A file shared in a post (F-POST-7), stored under a server-generated key."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A thumbnail made by the worker for images and PDFs: "pending", "ready" or "failed" (a bomb, a
    # broken file: the reason is on the job); "none" for any other file; None for a file stored
    # before previews existed, until `feeds-server previews --backfill` looks at it.
    preview_state: Mapped[str | None] = mapped_column(String(16))
    preview_key: Mapped[str | None] = mapped_column(String(128))
    preview_width: Mapped[int | None] = mapped_column(Integer)
    preview_height: Mapped[int | None] = mapped_column(Integer)
    # The original image's size in pixels, or for a PDF its page count.
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    page_count: Mapped[int | None] = mapped_column(Integer)


class PreviewJob(OrgOwned, Base):
    """A thumbnail to make, written with its attachment (the outbox pattern of email_jobs):
    `status` pending → working (leased) → done, or failed with the reason."""

    __tablename__ = "preview_jobs"
    __table_args__ = (Index("ix_preview_jobs_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    attachment_id: Mapped[int] = mapped_column(BigId, ForeignKey("attachments.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    leased_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(OrgOwned, Base):
    """The first response to a create request with an `Idempotency-Key`, replayed on retries."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
