"""Records in the feed: business cards (F-FEED-4), and who a rule makes follow a record (F-FOLLOW-5)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from feeds_server import limits
from feeds_server.domain.audience import OrgGraph
from feeds_server.errors import Forbidden, ValidationFailed

EVENT_TYPES = ("created", "edited", "deleted", "note_added")

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
    creator: bool = True
    record_creator: bool = False
    owner_superior_role: bool = False
    users: tuple[int, ...] = ()
    roles: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    territories: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Followers":
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
        if is_admin:
            return
        extra = [name for name in ADMIN_ONLY_OPTIONS if getattr(self, name)]
        if extra:
            raise Forbidden("admin_only_follower_option", f"only admins can add followers ({extra[0]})", option=extra[0])
        if not self.creator:
            raise ValidationFailed("no_followers", "a rule needs at least one follower", field="followers")


@dataclass(frozen=True)
class Directory:
    """The org's people structure as follower resolution needs it."""

    graph: OrgGraph  # with member roles
    territory_members: Mapping[int, frozenset[int]] = field(default_factory=dict)

    def superiors_of(self, user_id: int | None) -> frozenset[int]:
        """Users holding the role directly above the user's role."""
        if user_id is None:
            return frozenset()
        role = self.graph.member_roles.get(user_id)
        parent = self.graph.role_parents.get(role) if role is not None else None
        return self.graph.role_holders(parent) if parent is not None else frozenset()


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
        out |= d.territory_members.get(territory, frozenset())
    return frozenset(u for u in out if u in d.graph.member_roles)


def business_card(module: str, record_id: int, crm_id: str, name: str, owner: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """F-FEED-4: enough to show the record without another round trip."""
    key_fields = [{"field": k, "value": v} for k, v in list(fields.items())[: limits.BUSINESS_CARD_FIELDS]]
    return {"module": module, "id": record_id, "crm_id": crm_id, "name": name, "owner": owner, "key_fields": key_fields}


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any], reported: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The CRM's reported changes if it sent them, else the difference of the two field sets."""
    listed = [{"field": c.get("field"), "old": c.get("old"), "new": c.get("new")} for c in reported]
    if listed:
        return listed
    return [{"field": k, "old": old.get(k), "new": new.get(k)} for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
