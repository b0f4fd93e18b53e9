"""Who sees what: group membership resolved from its sources, and the channels of readers and posts.

Channels name an audience: `org` (everyone with the Feeds tab), `u:<user>`, `g:<group>` (the group's
resolved members), `r:<role>` (holders of the role). A reader sees a post when their channels and
the post's channels meet. Group members are resolved on every read, so a change to a group's sources
or to someone's role takes effect at once (F-POST-3, F-POST-4, F-POST-5). Mentions never add a
channel: an item's audience is where it was sent, and only those in it may be mentioned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ORG = "org"

# Kinds of group sources.
SOURCE_USER = "user"
SOURCE_ROLE = "role"
SOURCE_ROLE_AND_SUBORDINATES = "role_and_subordinates"
SOURCE_GROUP = "group"
SOURCE_KINDS = (SOURCE_USER, SOURCE_ROLE, SOURCE_ROLE_AND_SUBORDINATES, SOURCE_GROUP)


def user_channel(user_id: int) -> str:
    return f"u:{user_id}"


def group_channel(group_id: int) -> str:
    return f"g:{group_id}"


def role_channel(role_id: int) -> str:
    return f"r:{role_id}"


@dataclass(frozen=True)
class OrgGraph:
    """The parts of an org that decide audiences: the role tree and the groups' sources.

    `member_roles` (user id -> role id of every member) is needed only to list whole audiences;
    deciding what one reader sees needs just that reader's role.
    """

    role_parents: Mapping[int, int | None]
    group_sources: Mapping[int, tuple[tuple[str, int], ...]]  # group id -> ((kind, ref id), ...)
    member_roles: Mapping[int, int | None] = field(default_factory=dict)
    _members: dict[int, frozenset[int]] = field(default_factory=dict, compare=False, repr=False)

    def role_ancestry(self, role_id: int | None) -> set[int]:
        """The role and every role above it."""
        out: set[int] = set()
        current = role_id
        while current is not None and current not in out:
            out.add(current)
            current = self.role_parents.get(current)
        return out

    def in_group(self, group_id: int, user_id: int, role_id: int | None) -> bool:
        """Whether a user (holding `role_id`) is a member, following nested groups without looping."""
        ancestry = self.role_ancestry(role_id)
        seen: set[int] = set()
        stack = [group_id]
        while stack:
            gid = stack.pop()
            if gid in seen:
                continue
            seen.add(gid)
            for kind, ref in self.group_sources.get(gid, ()):
                if kind == SOURCE_GROUP:
                    stack.append(ref)
                elif (kind == SOURCE_USER and ref == user_id) or (kind == SOURCE_ROLE and ref == role_id):
                    return True
                elif kind == SOURCE_ROLE_AND_SUBORDINATES and ref in ancestry:
                    return True
        return False

    def groups_of(self, user_id: int, role_id: int | None) -> list[int]:
        return sorted(gid for gid in self.group_sources if self.in_group(gid, user_id, role_id))

    def reader_channels(self, user_id: int, role_id: int | None) -> list[str]:
        """Every channel whose posts this user may read."""
        channels = [ORG, user_channel(user_id)]
        if role_id is not None:
            channels.append(role_channel(role_id))
        channels.extend(group_channel(g) for g in self.groups_of(user_id, role_id))
        return channels

    def group_members(self, group_id: int) -> frozenset[int]:
        """Every member of a group (needs `member_roles`)."""
        cached = self._members.get(group_id)
        if cached is None:
            cached = frozenset(u for u, r in self.member_roles.items() if self.in_group(group_id, u, r))
            self._members[group_id] = cached
        return cached

    def role_holders(self, role_id: int) -> frozenset[int]:
        return frozenset(user for user, role in self.member_roles.items() if role == role_id)

    def users_of_channels(self, channels: Iterable[str]) -> frozenset[int]:
        """Members reached by a set of channels (`org` means every member; needs `member_roles`)."""
        users: set[int] = set()
        for channel in channels:
            if channel == ORG:
                return frozenset(self.member_roles)
            kind, _, ref = channel.partition(":")
            if kind == "u":
                users.add(int(ref))
            elif kind == "g":
                users |= self.group_members(int(ref))
            elif kind == "r":
                users |= self.role_holders(int(ref))
        return frozenset(users & set(self.member_roles))


def outside_audience(graph: OrgGraph, channels: Iterable[str], members: Mapping[int, int | None]) -> list[int]:
    """The members (user id -> role id) who cannot read an item on `channels`, in id order.

    A mention never widens an item's audience (F-POST-3, F-POST-4, F-POST-5): whoever this lists may
    not be mentioned in the item, nor in its comments. On `org` the whole org reads it: nobody is outside.
    """
    wanted = set(channels)
    if ORG in wanted:
        return []
    return sorted(user for user, role in members.items() if not wanted.intersection(graph.reader_channels(user, role)))
