"""Profile permissions (F-ORG-9) and what each one allows."""

from __future__ import annotations

from collections.abc import Iterable

ADMIN = "admin"
FEEDS_TAB = "feeds_tab"
MANAGE_GROUPS = "manage_groups"
SUPER_ADMIN = "super_admin"  # not a profile permission: the org's creator (or whom they hand it to)

PROFILE_PERMISSIONS = frozenset({ADMIN, FEEDS_TAB, MANAGE_GROUPS})

# Profiles every new org starts with: name -> permissions.
DEFAULT_PROFILES: dict[str, tuple[str, ...]] = {
    "Administrator": (ADMIN, FEEDS_TAB, MANAGE_GROUPS),
    "Standard": (FEEDS_TAB,),
}
ADMIN_PROFILE = "Administrator"
STANDARD_PROFILE = "Standard"


def effective_permissions(profile_permissions: Iterable[str], is_super_admin: bool) -> frozenset[str]:
    """The super admin holds every permission whatever the profile says."""
    if is_super_admin:
        return PROFILE_PERMISSIONS | {SUPER_ADMIN}
    return frozenset(p for p in profile_permissions if p in PROFILE_PERMISSIONS)
