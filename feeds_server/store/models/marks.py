"""What people do with items besides writing them: reactions, saved items and pins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, PrimaryKeyConstraint, String, text
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server.store.base import Base, BigId, OrgOwned, utcnow

# An emoji sequence, as UTF-8, is short; the longest ZWJ sequences are under 40 bytes.
MAX_EMOJI_CHARS = 32


class Reaction(OrgOwned, Base):
    """One person's emoji on a post (comment_id None) or on one of its comments; one of each emoji
    per person and item (two partial unique indexes, since a NULL comment_id is never equal)."""

    __tablename__ = "reactions"
    __table_args__ = (
        Index(
            "uq_reactions_post", "org_id", "post_id", "user_id", "emoji", unique=True,
            postgresql_where=text("comment_id IS NULL"), sqlite_where=text("comment_id IS NULL"),
        ),
        Index(
            "uq_reactions_comment", "org_id", "comment_id", "user_id", "emoji", unique=True,
            postgresql_where=text("comment_id IS NOT NULL"), sqlite_where=text("comment_id IS NOT NULL"),
        ),
        Index("ix_reactions_item", "org_id", "post_id", "comment_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("comments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    emoji: Mapped[str] = mapped_column(String(MAX_EMOJI_CHARS))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SavedItem(OrgOwned, Base):
    """A post one person saved (bookmarked) for later; private to them."""

    __tablename__ = "saved_items"
    __table_args__ = (
        PrimaryKeyConstraint("org_id", "user_id", "post_id"),
        Index("ix_saved_items_user", "org_id", "user_id", "created_at"),
    )

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Pin(OrgOwned, Base):
    """A post pinned at the top of the org feed (group_id None, by an admin) or of a group's feed
    (by its owner or an admin). A post is pinned in one place at most."""

    __tablename__ = "pins"
    __table_args__ = (PrimaryKeyConstraint("org_id", "post_id"), Index("ix_pins_place", "org_id", "group_id", "created_at"))

    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("groups.id", ondelete="CASCADE"))
    pinned_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
