"""Who is who inside an org: roles and territories (trees), profiles, territory members (F-ORG-9, F-ORG-10)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions import audit
from feeds_server.domain.permissions import PROFILE_PERMISSIONS
from feeds_server.domain.trees import check_new_parent
from feeds_server.errors import Conflict, NotFound, ValidationFailed
from feeds_server.store.base import OrgOwned
from feeds_server.store.events import append_event
from feeds_server.store.models import Membership, Profile, Role, Territory, TerritoryMember
from feeds_server.store.scope import get_in_org

TreeNode = TypeVar("TreeNode", Role, Territory)
T = TypeVar("T", bound=OrgOwned)

_UNSET = object()


async def must_get(session: AsyncSession, model: type[T], item_id: int, what: str) -> T:
    item = await get_in_org(session, model, item_id)
    if item is None:
        raise NotFound(f"{what}_not_found", f"no such {what}")
    return item


async def _name_free(session: AsyncSession, model: type, name: str, except_id: int | None = None) -> None:
    stmt = select(model.id).where(func.lower(model.name) == name.strip().lower())  # type: ignore[attr-defined]
    if except_id is not None:
        stmt = stmt.where(model.id != except_id)  # type: ignore[attr-defined]
    if (await session.execute(stmt)).first():
        raise Conflict("name_taken", f"the name {name.strip()!r} is already used", field="name")


async def _parents(session: AsyncSession, model: type[TreeNode]) -> dict[int, int | None]:
    return dict((await session.execute(select(model.id, model.parent_id))).all())  # type: ignore[arg-type]


async def list_nodes(session: AsyncSession, model: type[TreeNode]) -> list[TreeNode]:
    return list((await session.execute(select(model).order_by(model.id))).scalars())


async def create_node(
    session: AsyncSession, model: type[TreeNode], what: str, actor_id: int, name: str, parent_id: int | None
) -> TreeNode:
    await _name_free(session, model, name)
    if parent_id is not None:
        await must_get(session, model, parent_id, what)
    node = model(name=name.strip(), parent_id=parent_id)
    session.add(node)
    await session.flush()
    append_event(session, f"{what}.created", {"id": node.id, "name": node.name, "parent_id": parent_id}, actor_id)
    audit.record(session, f"{what}.created", actor_id, (what, node.id), {"name": node.name, "parent_id": parent_id})
    return node


async def update_node(
    session: AsyncSession, model: type[TreeNode], what: str, actor_id: int, node_id: int, name: str | None, parent_id: object
) -> TreeNode:
    """`parent_id` is `_UNSET` to keep it, None to make the node a root, or the new parent's id."""
    node = await must_get(session, model, node_id, what)
    if name is not None:
        await _name_free(session, model, name, except_id=node.id)
        node.name = name.strip()
    if parent_id is not _UNSET:
        if parent_id is not None:
            await must_get(session, model, int(parent_id), what)  # type: ignore[arg-type]
        check_new_parent(await _parents(session, model), node.id, parent_id)  # type: ignore[arg-type]
        node.parent_id = parent_id  # type: ignore[assignment]
    await session.flush()
    append_event(session, f"{what}.updated", {"id": node.id, "name": node.name, "parent_id": node.parent_id}, actor_id)
    audit.record(session, f"{what}.updated", actor_id, (what, node.id), {"name": node.name, "parent_id": node.parent_id})
    return node


async def delete_node(session: AsyncSession, model: type[TreeNode], what: str, actor_id: int, node_id: int) -> None:
    """Children move up to the deleted node's parent, so the tree stays whole."""
    node = await must_get(session, model, node_id, what)
    await session.execute(update(model).where(model.parent_id == node.id).values(parent_id=node.parent_id))
    if model is Role:
        await session.execute(update(Membership).where(Membership.role_id == node.id).values(role_id=None))
    await session.delete(node)
    await session.flush()
    append_event(session, f"{what}.deleted", {"id": node_id}, actor_id)
    audit.record(session, f"{what}.deleted", actor_id, (what, node_id), {"name": node.name})


def _check_permissions(permissions: list[str]) -> list[str]:
    unknown = sorted(set(permissions) - PROFILE_PERMISSIONS)
    if unknown:
        raise ValidationFailed(
            "unknown_permission", f"unknown permission {unknown[0]!r}", field="permissions", allowed=sorted(PROFILE_PERMISSIONS)
        )
    return sorted(set(permissions))


async def list_profiles(session: AsyncSession) -> list[Profile]:
    return list((await session.execute(select(Profile).order_by(Profile.id))).scalars())


async def create_profile(session: AsyncSession, actor_id: int, name: str, permissions: list[str]) -> Profile:
    await _name_free(session, Profile, name)
    profile = Profile(name=name.strip(), permissions=_check_permissions(permissions))
    session.add(profile)
    await session.flush()
    append_event(session, "profile.created", {"id": profile.id, "permissions": profile.permissions}, actor_id)
    audit.record(session, "profile.created", actor_id, ("profile", profile.id), {"name": profile.name, "permissions": profile.permissions})
    return profile


async def update_profile(
    session: AsyncSession, actor_id: int, profile_id: int, name: str | None, permissions: list[str] | None
) -> Profile:
    profile = await must_get(session, Profile, profile_id, "profile")
    if name is not None:
        await _name_free(session, Profile, name, except_id=profile.id)
        profile.name = name.strip()
    if permissions is not None:
        profile.permissions = _check_permissions(permissions)
    await session.flush()
    # Real time listens for this: members who lose the Feeds tab are disconnected.
    append_event(session, "profile.updated", {"id": profile.id, "permissions": profile.permissions}, actor_id)
    audit.record(session, "profile.updated", actor_id, ("profile", profile.id), {"name": profile.name, "permissions": profile.permissions})
    return profile


async def delete_profile(session: AsyncSession, actor_id: int, profile_id: int) -> None:
    profile = await must_get(session, Profile, profile_id, "profile")
    in_use = (await session.execute(select(func.count()).select_from(Membership).where(Membership.profile_id == profile.id))).scalar_one()
    if in_use:
        raise Conflict("profile_in_use", f"{in_use} member(s) still have this profile", members=in_use)
    await session.delete(profile)
    await session.flush()
    append_event(session, "profile.deleted", {"id": profile_id}, actor_id)
    audit.record(session, "profile.deleted", actor_id, ("profile", profile_id), {"name": profile.name})


async def territory_members(session: AsyncSession, territory_id: int) -> list[int]:
    await must_get(session, Territory, territory_id, "territory")
    rows = await session.execute(
        select(TerritoryMember.user_id).where(TerritoryMember.territory_id == territory_id).order_by(TerritoryMember.user_id)
    )
    return list(rows.scalars())


async def add_territory_member(session: AsyncSession, actor_id: int, territory_id: int, user_id: int) -> None:
    await must_get(session, Territory, territory_id, "territory")
    if (await session.execute(select(Membership.id).where(Membership.user_id == user_id))).first() is None:
        raise NotFound("member_not_found", "no such member")
    exists = await session.execute(
        select(TerritoryMember.user_id).where(TerritoryMember.territory_id == territory_id, TerritoryMember.user_id == user_id)
    )
    if exists.first():
        return
    session.add(TerritoryMember(territory_id=territory_id, user_id=user_id))
    await session.flush()
    append_event(session, "territory.member_added", {"territory_id": territory_id, "user_id": user_id}, actor_id)
    audit.record(session, "territory.member_added", actor_id, ("user", user_id), {"territory_id": territory_id})


async def remove_territory_member(session: AsyncSession, actor_id: int, territory_id: int, user_id: int) -> None:
    await must_get(session, Territory, territory_id, "territory")
    result = await session.execute(
        delete(TerritoryMember).where(TerritoryMember.territory_id == territory_id, TerritoryMember.user_id == user_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound("member_not_found", "not a member of this territory")
    append_event(session, "territory.member_removed", {"territory_id": territory_id, "user_id": user_id}, actor_id)
    audit.record(session, "territory.member_removed", actor_id, ("user", user_id), {"territory_id": territory_id})


UNSET = _UNSET
