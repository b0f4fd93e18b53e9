"""Where a post is pinned and who may pin it there: admins on the org feed, a group's owner or an
admin in a group. Private messages and record updates belong to no shared place and are not pinned."""

from __future__ import annotations

from dataclasses import dataclass

from feeds_server.errors import Forbidden, ValidationFailed

# Kinds of posts (actions/posts.py) that have a place to be pinned in.
STATUS, GROUP = "status", "group"


@dataclass(frozen=True)
class PinPlace:
    """The org feed (`group_id` None) or one group's feed."""

    group_id: int | None

    @property
    def name(self) -> str:
        return "org" if self.group_id is None else f"group {self.group_id}"


def place_of(kind: str, group_id: int | None) -> PinPlace:
    """A status post is pinned on the org feed, a group post in its group; nothing else is pinned (422)."""
    if kind == STATUS:
        return PinPlace(None)
    if kind == GROUP and group_id is not None:
        return PinPlace(group_id)
    raise ValidationFailed(
        "post_not_pinnable", "only status posts (on the org feed) and group posts (in their group) can be pinned", kind=kind
    )


def check_may_pin(place: PinPlace, user_id: int, is_admin: bool, group_owner_id: int | None) -> None:
    """Admins pin anywhere they can see; a group's owner pins in that group only (403 otherwise)."""
    if is_admin:
        return
    if place.group_id is not None and group_owner_id is not None and group_owner_id == user_id:
        return
    if place.group_id is None:
        raise Forbidden("pin_not_allowed", "only an admin can pin posts on the org feed")
    raise Forbidden("pin_not_allowed", "only the group's owner or an admin can pin posts in this group")
