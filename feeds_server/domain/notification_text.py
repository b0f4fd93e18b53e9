"""What a notification says in one line, for an email's list and a push's title: the same words
on every channel, built from the row alone (its kind, its data, who caused it).

Pure: the caller passes names already on one line (domain/names.py) or not; this module makes them so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from feeds_server.domain import preferences as p
from feeds_server.domain.names import one_line

BODY_CHARS = 200


def headline(kind: str, actor: str | None, data: Mapping[str, Any], reason: Mapping[str, Any] | None = None) -> str:
    """"Ana mentioned you", "Ana sent you a private message", "Deal X changed" …"""
    who = one_line(actor or "Someone")
    reason = reason or {}
    if kind == p.MENTION:
        if reason.get("group_name"):
            return f"{who} mentioned {one_line(str(reason['group_name']))}"
        if reason.get("role_name"):
            return f"{who} mentioned {one_line(str(reason['role_name']))}"
        return f"{who} mentioned you"
    if kind == p.PRIVATE_MESSAGE:
        return f"{who} sent you a private message"
    if kind == p.GROUP_POST:
        group = reason.get("group_name") or data.get("group_name")
        return f"{who} posted in {one_line(str(group))}" if group else f"{who} posted in a group"
    if kind == p.REACTION:
        emoji = one_line(str(data.get("emoji", "")))
        return f"{who} reacted {emoji} to what you wrote".replace("  ", " ")
    record = _record_name(data, reason)
    if kind in (p.RECORD_OWNED, p.RECORD_FOLLOWED):
        count = data.get("count")
        changed = f"{record} changed {count} times" if isinstance(count, int) and count > 1 else f"{record} changed"
        return changed
    if kind == p.RECORD_DORMANT:
        days = data.get("days")
        return f"{record} has been quiet for {days} days" if days else f"{record} has gone quiet"
    return f"{who}: {kind.replace('_', ' ')}"


def body(data: Mapping[str, Any]) -> str:
    """The text under the headline: the excerpt of the message, if any, cut short."""
    return one_line(str(data.get("excerpt") or ""))[:BODY_CHARS]


def _record_name(data: Mapping[str, Any], reason: Mapping[str, Any]) -> str:
    record = data.get("record")
    name = reason.get("record_name") or data.get("record_name") or (record.get("name") if isinstance(record, Mapping) else None)
    return one_line(str(name)) if name else "A record"
