"""Each feed item's `reason` for its reader (domain/feed_reasons.py), added to REST answers only.

The facts come from the page's views and at most two queries for the whole page, whatever its size:
the reader's tie to the page's records (owner, follow, the rule's name, in one query) and which of
the page's posts the reader commented on. Live publications are shared by every subscriber, so they
carry no reason: a client shows one once it reads the item through the feed or the post route.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.posts import GROUP, PRIVATE, RECORD
from feeds_server.domain.feed_reasons import FeedReader, ItemFacts, RecordTie, feed_reason, mentions_in
from feeds_server.store.graph import load_graph
from feeds_server.store.models import AutoFollowRule, Comment, Follow, Record


def _record_of(view: dict[str, Any]) -> tuple[int, str | None] | None:
    card = (view.get("data") or {}).get("record") if view.get("kind") == RECORD else None
    if not isinstance(card, dict) or not isinstance(card.get("id"), int):
        return None
    return card["id"], card.get("name")


def _group_of(view: dict[str, Any]) -> tuple[int, str | None] | None:
    group = view.get("group")
    return (group["id"], group.get("name")) if view.get("kind") == GROUP and group else None


async def _record_ties(session: AsyncSession, user_id: int, record_ids: set[int]) -> dict[int, RecordTie]:
    """The reader's tie to each record: one query, the follow and its rule joined."""
    if not record_ids:
        return {}
    stmt = (
        select(Record.id, Record.owner_id, Follow.source, Follow.rule_id, AutoFollowRule.name)
        .outerjoin(Follow, and_(Follow.org_id == Record.org_id, Follow.record_id == Record.id, Follow.user_id == user_id))
        .outerjoin(AutoFollowRule, and_(AutoFollowRule.org_id == Follow.org_id, AutoFollowRule.id == Follow.rule_id))
        .where(Record.id.in_(sorted(record_ids)))
    )
    return {
        record_id: RecordTie(owner=owner_id == user_id, follow_source=source, rule_id=rule_id, rule_name=rule_name)
        for record_id, owner_id, source, rule_id, rule_name in await session.execute(stmt)
    }


async def _commented(session: AsyncSession, user_id: int, post_ids: list[int]) -> set[int]:
    if not post_ids:
        return set()
    stmt = select(Comment.post_id).where(Comment.post_id.in_(post_ids), Comment.author_id == user_id).distinct()
    return set((await session.execute(stmt)).scalars())


async def add_reasons(
    session: AsyncSession, user_id: int, role_id: int | None, posts: Sequence[dict[str, Any]], group_ids: Iterable[int] | None = None
) -> None:
    """Set `reason` on each post view, in place. `group_ids` are the reader's groups when the caller
    has them; otherwise the org's groups are read only if an item mentions a group."""
    if not posts:
        return
    facts: dict[int, ItemFacts] = {}
    for p in posts:
        facts[p["id"]] = ItemFacts(
            private=p.get("kind") == PRIVATE, group=_group_of(p), record=_record_of(p), mentions=mentions_in(p.get("segments") or ()),
        )
    if group_ids is None and any(m.kind == "group" for f in facts.values() for m in f.mentions):
        group_ids = (await load_graph(session)).groups_of(user_id, role_id)
    reader = FeedReader(user_id, role_id, frozenset(group_ids or ()))
    ties = await _record_ties(session, user_id, {f.record[0] for f in facts.values() if f.record is not None})
    # Only commented items that no earlier reason decides need "commented": most pages ask for none,
    # and a comment of the reader's among the latest ones shown answers without asking.
    commented: set[int] = set()
    open_ids = []
    for p in posts:
        f = facts[p["id"]]
        if not p.get("comment_count") or feed_reason(reader, f, _tie(ties, f)) is not None:
            continue
        if any((c.get("author") or {}).get("id") == user_id for c in p.get("latest_comments") or ()):
            commented.add(p["id"])
        else:
            open_ids.append(p["id"])
    commented |= await _commented(session, user_id, open_ids)
    for p in posts:
        f = facts[p["id"]]
        if p["id"] in commented:
            f = replace(f, commented=True)
        p["reason"] = feed_reason(reader, f, _tie(ties, f))


def _tie(ties: dict[int, RecordTie], item: ItemFacts) -> RecordTie | None:
    return ties.get(item.record[0]) if item.record is not None else None
