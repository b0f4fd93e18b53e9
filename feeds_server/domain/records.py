"""Records in the feed: business cards (F-FEED-4), field changes (F-FOLLOW-1), and who a rule makes
follow a record (F-FOLLOW-5). Pure: the callers load the org's people structure."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from feeds_server import limits
from feeds_server.domain.audience import OrgGraph
from feeds_server.errors import Forbidden, ValidationFailed

# What the CRM reports, and what a record item says happened.
CREATED, EDITED, DELETED, NOTE_ADDED = "created", "edited", "deleted", "note_added"
EVENT_TYPES = (CREATED, EDITED, DELETED, NOTE_ADDED)

# Why someone follows a record.
OWNER, MANUAL, RULE = "owner", "manual", "rule"

# Follower options of a rule. Only `creator` is open to everyone; the rest are for admins.
ADMIN_ONLY_OPTIONS = ("record_creator", "owner_superior_role", "users", "roles", "groups", "territories")


@dataclass(frozen=True)
class RecordFacts:
    """What follower resolution needs to know about one record."""

    owner_id: int | None
    creator_id: int | None
    territory_id: int | None


@dataclass(frozen=True)
class Followers:
    """A rule's follower options (F-FOLLOW-5)."""

    creator: bool = True
    record_creator: bool = False
    owner_superior_role: bool = False
    users: tuple[int, ...] = ()
    roles: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    territories: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Followers:
        return cls(
            creator=bool(raw.get("creator", True)),
            record_creator=bool(raw.get("record_creator", False)),
            owner_superior_role=bool(raw.get("owner_superior_role", False)),
            users=tuple(raw.get("users", ())),
            roles=tuple(raw.get("roles", ())),
            groups=tuple(raw.get("groups", ())),
            territories=tuple(raw.get("territories", ())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "creator": self.creator, "record_creator": self.record_creator, "owner_superior_role": self.owner_superior_role,
            "users": list(self.users), "roles": list(self.roles), "groups": list(self.groups), "territories": list(self.territories),
        }

    def check_allowed(self, is_admin: bool) -> None:
        """F-FOLLOW-5: by default the follower is the rule's creator; only admins add others."""
        if not is_admin:
            extra = [name for name in ADMIN_ONLY_OPTIONS if getattr(self, name)]
            if extra:
                raise Forbidden("admin_only_follower_option", f"only admins can add followers ({extra[0]})", option=extra[0])
        if not (self.creator or self.record_creator or self.owner_superior_role or self.users or self.roles or self.groups or self.territories):
            raise ValidationFailed("no_followers", "a rule needs at least one follower", field="followers")


@dataclass(frozen=True)
class Directory:
    """The org's people structure as follower resolution needs it: roles, groups, territories."""

    graph: OrgGraph  # with member roles
    territory_parents: Mapping[int, int | None] = field(default_factory=dict)
    territory_members: Mapping[int, frozenset[int]] = field(default_factory=dict)
    _below: dict[int, frozenset[int]] = field(default_factory=dict, compare=False, repr=False)
    _superiors: dict[int, frozenset[int]] = field(default_factory=dict, compare=False, repr=False)

    def superiors_of(self, user_id: int | None) -> frozenset[int]:
        """Users holding the role directly above the user's role (none if nobody holds it)."""
        if user_id is None:
            return frozenset()
        cached = self._superiors.get(user_id)
        if cached is None:
            role = self.graph.member_roles.get(user_id)
            parent = self.graph.role_parents.get(role) if role is not None else None
            cached = self._superiors[user_id] = self.graph.role_holders(parent) if parent is not None else frozenset()
        return cached

    def territory_users(self, territory_id: int) -> frozenset[int]:
        """Members of the territory and of every territory below it (F-ORG-10)."""
        cached = self._below.get(territory_id)
        if cached is None:
            children: dict[int, list[int]] = {}
            for child, parent in self.territory_parents.items():
                if parent is not None:
                    children.setdefault(parent, []).append(child)
            users: set[int] = set()
            seen: set[int] = set()
            stack = [territory_id]
            while stack:
                tid = stack.pop()
                if tid in seen:
                    continue
                seen.add(tid)
                users |= self.territory_members.get(tid, frozenset())
                stack.extend(children.get(tid, ()))
            cached = self._below[territory_id] = frozenset(users)
        return cached


def rule_followers(rule_creator: int, followers: Followers, record: RecordFacts, d: Directory) -> frozenset[int]:
    """Everyone a matching rule makes follow the record (members of the org only)."""
    out: set[int] = set()
    if followers.creator:
        out.add(rule_creator)
    if followers.record_creator and record.creator_id is not None:
        out.add(record.creator_id)
    if followers.owner_superior_role:
        out |= d.superiors_of(record.owner_id)
    out.update(followers.users)
    for role in followers.roles:
        out |= d.graph.role_holders(role)
    for group in followers.groups:
        out |= d.graph.group_members(group)
    for territory in followers.territories:
        out |= d.territory_users(territory)
    return frozenset(u for u in out if u in d.graph.member_roles)


def key_field_names(fields: Mapping[str, Any], requested: Iterable[str] | None) -> list[str]:
    """The fields a business card shows: those the CRM named, else the first ones it sent."""
    names = list(requested) if requested is not None else list(fields)
    return names[: limits.BUSINESS_CARD_FIELDS]


def business_card(
    module: str, record_id: int, crm_id: str, name: str, owner: Mapping[str, Any] | None,
    fields: Mapping[str, Any], key_fields: Iterable[str],
) -> dict[str, Any]:
    """F-FEED-4: enough to show the record without another round trip."""
    return {
        "module": module, "id": record_id, "crm_id": crm_id, "name": name, "owner": owner,
        "key_fields": [{"field": k, "value": fields.get(k)} for k in key_fields],
    }


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any], reported: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The CRM's reported changes if it sent them, else the difference of the two field sets."""
    listed = [{"field": c.get("field"), "old": c.get("old"), "new": c.get("new")} for c in reported]
    if listed:
        return listed
    return [{"field": k, "old": old.get(k), "new": new.get(k)} for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def follow_fields(names: Iterable[str] | None) -> list[str] | None:
    """The fields a follow cares about, as stored: None (every field), else the names in the order
    given, each once. An empty list would silence every edit: refused, as unfollowing says that better."""
    if names is None:
        return None
    out = list(dict.fromkeys(names))
    if not out:
        raise ValidationFailed("no_fields", "name at least one field, or null for every field", field="fields")
    if len(out) > limits.MAX_FOLLOW_FIELDS:
        raise ValidationFailed("too_many_fields", f"at most {limits.MAX_FOLLOW_FIELDS} fields", field="fields", limit=limits.MAX_FOLLOW_FIELDS)
    for name in out:
        if not isinstance(name, str) or not name.strip() or len(name) > limits.MAX_FIELD_NAME_CHARS:
            raise ValidationFailed(
                "invalid_field_name", f"a field name is a non-blank string of at most {limits.MAX_FIELD_NAME_CHARS} characters", field="fields"
            )
    return out


def edit_reaches(wanted: frozenset[str] | None, changes: Iterable[Mapping[str, Any]]) -> bool:
    """Whether an edit reaches a follow naming `wanted` fields (None: every field). An edit that lists
    no changed field reaches every follow: nothing says it is about fields the follower left out."""
    if wanted is None:
        return True
    touched = [c.get("field") for c in changes]
    return not touched or any(f in wanted for f in touched)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > limits.MAX_CHANGE_VALUE_CHARS:
        return value[: limits.MAX_CHANGE_VALUE_CHARS - 1] + "…"
    return value


def change_entry(
    change: str, changes: Iterable[Mapping[str, Any]], post_id: int | None, comment_id: int | None, actor_id: int | None, at: str
) -> dict[str, Any]:
    """One change as a record notification lists it: bounded, since a burst merges many into one row
    (the feed item has every field in full)."""
    listed = list(changes)
    fields = [{"field": c.get("field"), "old": _short(c.get("old")), "new": _short(c.get("new"))} for c in listed[: limits.MAX_CHANGE_FIELDS_NOTED]]
    entry: dict[str, Any] = {"change": change, "fields": fields, "post_id": post_id, "comment_id": comment_id, "actor_id": actor_id, "at": at}
    if len(listed) > len(fields):
        entry["more_fields"] = len(listed) - len(fields)
    return entry


def merge_changes(data: Mapping[str, Any], newer: Mapping[str, Any]) -> dict[str, Any]:
    """A record notification's data with a newer one's change merged in: the newest record card and
    change, the latest changes (at most MAX_MERGED_CHANGES), and the count of all of them."""
    changes = [*data.get("changes", ()), *newer.get("changes", ())][-limits.MAX_MERGED_CHANGES :]
    return {**data, **newer, "changes": changes, "count": int(data.get("count", 1)) + int(newer.get("count", 1))}


def summary(module: str, name: str, change: str) -> str:
    """The item's text; the structured change is in its data, so no field value is repeated here."""
    verb = {CREATED: "was created", EDITED: "was edited", DELETED: "was deleted", NOTE_ADDED: "has a new note"}[change]
    return f"{module} record “{name}” {verb}"


def encode_followed_cursor(module: str, record_id: int) -> str:
    """"Followed by me" is ordered by module, then record: the cursor is that position."""
    return base64.urlsafe_b64encode(orjson.dumps([module, record_id])).decode().rstrip("=")


def decode_followed_cursor(cursor: str) -> tuple[str, int]:
    try:
        module, record_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(module, str) or isinstance(record_id, bool) or not isinstance(record_id, int) or not 0 < record_id < 2**63:
            raise ValueError(cursor)
        return module, record_id
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ValidationFailed("invalid_cursor", "the cursor is not one this server gave out", field="cursor") from None
