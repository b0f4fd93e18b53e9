"""The search index: one row per post and per comment, written by database triggers.

Nothing in the server writes these rows: triggers on `posts`, `comments` and `attachments`
(migration 0012) insert, update and delete them in the transaction of every write, whichever path
made it (the ORM, the group commit's driver statement, bulk record updates, imports, erasure).
A row copies what the filters need from its post (group, module, files) so one index scan and
the audience join answer a search.

PostgreSQL keeps the words in `tsv` (English and French lexemes of the unaccented text, GIN
index). SQLite leaves `tsv` empty and keeps them in the FTS5 table `search_fts` (rowid = `id`),
which the model cannot describe (store/search.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String, Text, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from feeds_server.store import sqlite_functions  # noqa: F401 - the SQLite triggers call its functions
from feeds_server.store.base import Base, BigId, OrgOwned

TextVector = TSVECTOR().with_variant(Text(), "sqlite")


class SearchItem(OrgOwned, Base):
    """A searchable post (`comment_id` None) or comment. `kind`: status, message, record or comment."""

    __tablename__ = "search_items"
    __table_args__ = (
        Index("ix_search_items_post", "org_id", "post_id", "comment_id"),
        Index("ix_search_items_comment", "org_id", "comment_id"),
        Index("ix_search_items_tsv", "tsv", postgresql_using="gin"),
        # The newest matches first (store/search.py), alone or under a filter.
        Index("ix_search_items_recent", "org_id", "id"),
        Index("ix_search_items_author", "org_id", "author_id", "id"),
        Index("ix_search_items_group", "org_id", "group_id", "id"),
        Index("ix_search_items_module", "org_id", "module", "id"),
        Index("ix_search_items_kind", "org_id", "kind", "id"),
        Index("ix_search_items_time", "org_id", "created_at"),
        Index("ix_search_items_files", "org_id", "id", postgresql_where=text("has_file"), sqlite_where=text("has_file")),
    )

    # No foreign keys to the items: the triggers that write these rows delete them with their item.
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(BigId)
    comment_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int | None] = mapped_column(BigId)
    group_id: Mapped[int | None] = mapped_column(BigId)
    module: Mapped[str | None] = mapped_column(String(64))
    has_file: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    tsv: Mapped[str | None] = mapped_column(TextVector)
