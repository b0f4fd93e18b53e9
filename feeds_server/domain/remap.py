"""Rewriting the ids inside imported data: mention tokens, audience channels, rule followers and the
business cards of record items (F-OPS-3). Pure: the importer passes what maps an old id to a new one.

A reference whose target did not come along (a group deleted before the export) never points at an
unrelated item of the target org: a mention becomes the text `@(deleted)`, a channel or follower is
dropped, a card's owner becomes null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from feeds_server.domain.audience import ORG
from feeds_server.domain.messages import replace_mentions
from feeds_server.domain.scrub import ERASED_MENTION
from feeds_server.domain.numbers import is_digits

# (kind, old id) -> new id, or None when the target is not in the import. Kinds: user, role, group,
# territory, record, post, comment, profile.
Lookup = Callable[[str, int], "int | None"]

_CHANNEL_KINDS = {"u": "user", "g": "group", "r": "role"}


def remap_text(text: str, lookup: Lookup) -> str:
    def token(kind: str, old: int) -> str:
        new = lookup(kind, old)
        return ERASED_MENTION if new is None else f"@[{kind}:{new}]"

    return replace_mentions(text, token)


def remap_channel(channel: str, lookup: Lookup) -> str | None:
    if channel == ORG:
        return ORG
    prefix, _, ref = channel.partition(":")
    kind = _CHANNEL_KINDS.get(prefix)
    if kind is None or not is_digits(ref):
        return None
    new = lookup(kind, int(ref))
    return None if new is None else f"{prefix}:{new}"


def remap_channels(channels: Iterable[str], lookup: Lookup) -> list[str]:
    return sorted({c for c in (remap_channel(ch, lookup) for ch in channels) if c is not None})


def remap_ids(kind: str, ids: Iterable[int], lookup: Lookup) -> list[int]:
    """Mapped ids in their order, without the unmapped ones and without repeats."""
    out: dict[int, None] = {}
    for old in ids:
        new = lookup(kind, old)
        if new is not None:
            out.setdefault(new, None)
    return list(out)


def remap_followers(followers: dict[str, Any], lookup: Lookup) -> dict[str, Any]:
    """A rule's follower options (domain/records.py `Followers`) with the named ids rewritten."""
    out = dict(followers)
    for key, kind in (("users", "user"), ("roles", "role"), ("groups", "group"), ("territories", "territory")):
        if key in out:
            out[key] = remap_ids(kind, out.get(key) or [], lookup)
    return out


def remap_record_ref(data: dict[str, Any], lookup: Lookup, name_of: Callable[[int], str | None] = lambda _: None) -> dict[str, Any]:
    """A record item's data or a notification's: the record card's id and owner (and the owner's
    name, as the target org knows them) rewritten."""
    card = data.get("record")
    if not isinstance(card, dict):
        return data
    card = dict(card)
    if isinstance(card.get("id"), int):
        card["id"] = lookup("record", card["id"])
    owner = card.get("owner")
    if isinstance(owner, dict) and isinstance(owner.get("id"), int):
        new = lookup("user", owner["id"])
        card["owner"] = None if new is None else {**owner, "id": new, "name": name_of(new) or owner.get("name")}
    return {**data, "record": card}


# The ids a notification's reason names (domain/reasons.py), and the kind each maps as.
_REASON_REFS = (("group_id", "group"), ("role_id", "role"), ("record_id", "record"), ("rule_id", "rule"))


def remap_reason(reason: dict[str, Any] | None, lookup: Lookup) -> dict[str, Any] | None:
    """A notification's reason with its ids rewritten; a reference that did not come along is left
    out (its name, if any, stays for the reader)."""
    if not reason:
        return reason
    out = dict(reason)
    for key, kind in _REASON_REFS:
        if isinstance(out.get(key), int):
            new = lookup(kind, out[key])
            if new is None:
                del out[key]
            else:
                out[key] = new
    return out
