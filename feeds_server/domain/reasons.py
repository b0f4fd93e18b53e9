"""Why a member got a feed item or a notification, said in a structure the client can act on.

A reason is `{"code": …}` plus the references its "stop" action needs: the role or group a mention
came through, the record and the rule of a follow. The web client words it ("because you follow
Deal X through rule 'High-value deals'") and offers the matching action: unfollow, mute, edit the rule.
"""

from __future__ import annotations

from typing import Any

MENTIONED = "mentioned"
MENTIONED_VIA_ROLE = "mentioned_via_role"
MENTIONED_VIA_GROUP = "mentioned_via_group"
OWNER = "owner"
FOLLOWER_MANUAL = "follower_manual"
FOLLOWER_RULE = "follower_rule"
GROUP_MEMBER = "group_member"
PARTICIPANT = "participant"
CODES = (MENTIONED, MENTIONED_VIA_ROLE, MENTIONED_VIA_GROUP, OWNER, FOLLOWER_MANUAL, FOLLOWER_RULE, GROUP_MEMBER, PARTICIPANT)

# How a mention reached someone (actions/notifications.py mentioned_users) -> its reason.
MENTION_REASONS = {"user": MENTIONED, "role": MENTIONED_VIA_ROLE, "group": MENTIONED_VIA_GROUP}


def reason(code: str, **refs: Any) -> dict[str, Any]:
    """`{"code": code, **refs}` with the references that are known (None ones left out)."""
    if code not in CODES:
        raise ValueError(f"unknown reason {code!r}")
    return {"code": code, **{k: v for k, v in refs.items() if v is not None}}
