"""JSON shapes of the API's resources, in one place so every endpoint renders a thing the same way."""

from __future__ import annotations

from typing import Any

from feeds_server.domain import permissions as perms
from feeds_server.store.models import Integration, Invitation, Membership, Org, Profile, Role, Territory, User


def user_view(user: User, with_email: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": user.id, "name": user.name}
    if with_email:
        out["email"] = user.email
    return out


def org_view(org: Org) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "slug": org.slug,
        "time_zone": org.time_zone,
        "edition": org.edition,
        "trial_ends_at": org.trial_ends_at,
        "created_at": org.created_at,
        "edit_window_seconds": org.edit_window_seconds,  # F-POST-9: None unlimited, 0 editing off
    }


def membership_view(membership: Membership, user: User, permissions: frozenset[str] | None = None) -> dict[str, Any]:
    out = {
        "user": user_view(user),
        "role_id": membership.role_id,
        "profile_id": membership.profile_id,
        "is_super_admin": membership.is_super_admin,
        "joined_at": membership.joined_at,
    }
    if permissions is not None:
        out["permissions"] = sorted(permissions)
    return out


def my_org_view(org: Org, membership: Membership, profile: Profile, role: Role | None, default_org_id: int | None) -> dict[str, Any]:
    return {
        "org": org_view(org),
        "is_default": org.id == default_org_id,
        "is_super_admin": membership.is_super_admin,
        "role": role_view(role) if role else None,
        "profile": profile_view(profile),
        "permissions": sorted(perms.effective_permissions(profile.permissions, membership.is_super_admin)),
    }


def role_view(role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "parent_id": role.parent_id}


def territory_view(territory: Territory) -> dict[str, Any]:
    return {"id": territory.id, "name": territory.name, "parent_id": territory.parent_id}


def profile_view(profile: Profile) -> dict[str, Any]:
    return {"id": profile.id, "name": profile.name, "permissions": list(profile.permissions)}


def invitation_view(invitation: Invitation, org: Org | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": invitation.id,
        "email": invitation.email,
        "status": invitation.status,
        "role_id": invitation.role_id,
        "profile_id": invitation.profile_id,
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
    }
    if org is not None:
        out["org"] = {"name": org.name, "slug": org.slug}
    return out


def integration_view(integration: Integration) -> dict[str, Any]:
    return {
        "id": integration.id,
        "name": integration.name,
        "created_at": integration.created_at,
        "revoked_at": integration.revoked_at,
    }
