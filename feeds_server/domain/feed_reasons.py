"""Why one reader has a feed item in front of them, decided from facts already loaded for the page.

The order says which reason wins when several hold: being named in the item beats how one is
subscribed to it (a direct mention first, then through a group, then through a role, as mentions
notify); then what the item is to the reader (a private message they are part of, a record they own
or follow, a group they are in); last, having commented. An org-wide post with none of these has no
reason (None): everyone sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from feeds_server.domain import records
from feeds_server.domain.reasons import (
    FOLLOWER_MANUAL, FOLLOWER_RULE, GROUP_MEMBER, MENTION_REASONS, MENTIONED, MENTIONED_VIA_GROUP, MENTIONED_VIA_ROLE,
    OWNER, PARTICIPANT, reason,
)


@dataclass(frozen=True)
class FeedReader:
    """The reader as reasons need them: who, their role, and the groups they are in."""

    user_id: int
    role_id: int | None
    group_ids: frozenset[int]


@dataclass(frozen=True)
class RecordTie:
    """How the reader stands to an item's record now: its owner, and their follow of it if any."""

    owner: bool
    follow_source: str | None = None
    rule_id: int | None = None
    rule_name: str | None = None


@dataclass(frozen=True)
class Mentioned:
    """A mention in the item's own text: `kind` user, role or group, with the target's name."""

    kind: str
    target_id: int
    name: str | None = None


@dataclass(frozen=True)
class ItemFacts:
    """What decides an item's reason, for one item."""

    private: bool = False
    group: tuple[int, str | None] | None = None  # (id, name) of the group it was posted in
    record: tuple[int, str | None] | None = None  # (id, name) of a record item's record
    mentions: tuple[Mentioned, ...] = ()
    commented: bool = False  # the reader wrote a comment on it


def mentions_in(segments: Iterable[Mapping[str, Any]]) -> tuple[Mentioned, ...]:
    """The mentions of a rendered text (a post view's `segments`), each once, in order."""
    seen: dict[tuple[str, int], Mentioned] = {}
    for s in segments:
        if s.get("type") == "mention" and s.get("kind") in MENTION_REASONS and isinstance(s.get("id"), int):
            seen.setdefault((s["kind"], s["id"]), Mentioned(s["kind"], s["id"], s.get("name")))
    return tuple(seen.values())


def _mention_reason(reader: FeedReader, mentions: tuple[Mentioned, ...]) -> dict[str, Any] | None:
    for kind in ("user", "group", "role"):
        for m in mentions:
            if m.kind != kind:
                continue
            if kind == "user" and m.target_id == reader.user_id:
                return reason(MENTIONED)
            if kind == "group" and m.target_id in reader.group_ids:
                return reason(MENTIONED_VIA_GROUP, group_id=m.target_id, group_name=m.name)
            if kind == "role" and m.target_id == reader.role_id:
                return reason(MENTIONED_VIA_ROLE, role_id=m.target_id, role_name=m.name)
    return None


def _record_reason(record: tuple[int, str | None], tie: RecordTie | None) -> dict[str, Any] | None:
    if tie is None:
        return None
    record_id, record_name = record
    if tie.owner:
        return reason(OWNER, record_id=record_id, record_name=record_name)
    if tie.follow_source == records.RULE:
        return reason(FOLLOWER_RULE, record_id=record_id, record_name=record_name, rule_id=tie.rule_id, rule_name=tie.rule_name)
    if tie.follow_source is not None:  # by hand, or kept from when the reader owned it
        return reason(FOLLOWER_MANUAL, record_id=record_id, record_name=record_name)
    return None


def feed_reason(reader: FeedReader, item: ItemFacts, tie: RecordTie | None = None) -> dict[str, Any] | None:
    """The reader's reason for the item (domain/reasons.py), or None for an org-wide item."""
    found = _mention_reason(reader, item.mentions)
    if found is not None:
        return found
    if item.private:
        return reason(PARTICIPANT)
    if item.record is not None:
        found = _record_reason(item.record, tie)
        if found is not None:
            return found
    if item.group is not None:
        return reason(GROUP_MEMBER, group_id=item.group[0], group_name=item.group[1])
    if item.commented:
        return reason(PARTICIPANT)
    return None
