"""Groups: created by members with `manage_groups`; members come from users, roles, roles and
subordinates, and other groups, resolved on every read (F-POST-4, F-FEED-3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.directory import must_get
from feeds_server.domain import permissions as perms
from feeds_server.domain.audience import SOURCE_GROUP, SOURCE_KINDS, SOURCE_USER, OrgGraph, group_channel
from feeds_server.errors import Conflict, Forbidden, NotFound, ValidationFailed
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Group, GroupSource, Membership, Role


@dataclass(frozen=True)
class SourceRef:
    kind: str
    ref_id: int


async def _check_sources(session: AsyncSession, sources: Sequence[SourceRef], group_id: int | None) -> list[SourceRef]:
    """Every source must exist in this org; a group cannot list itself."""
    unique = list(dict.fromkeys(sources))
    for i, src in enumerate(unique):
        if src.kind not in SOURCE_KINDS:
            raise ValidationFailed("invalid_source", f"unknown source type {src.kind!r}", field=f"sources[{i}].type")
        if src.kind == SOURCE_GROUP and src.ref_id == group_id:
            raise ValidationFailed("invalid_source", "a group cannot contain itself", field=f"sources[{i}].id")
        model, column = {
            SOURCE_USER: (Membership, Membership.user_id),
            SOURCE_GROUP: (Group, Group.id),
        }.get(src.kind, (Role, Role.id))
        if (await session.execute(select(column).where(column == src.ref_id))).first() is None:
            raise NotFound(f"{src.kind.split('_')[0]}_not_found", f"no such {src.kind.split('_')[0]}: {src.ref_id}", field=f"sources[{i}].id")
    return unique


async def _name_free(session: AsyncSession, name: str, except_id: int | None = None) -> None:
    stmt = select(Group.id).where(func.lower(Group.name) == name.strip().lower())
    if except_id is not None:
        stmt = stmt.where(Group.id != except_id)
    if (await session.execute(stmt)).first():
        raise Conflict("name_taken", f"a group named {name.strip()!r} exists", field="name")


async def create_group(
    session: AsyncSession, actor_id: int, name: str, description: str, sources: Sequence[SourceRef]
) -> Group:
    await _name_free(session, name)
    checked = await _check_sources(session, sources, None)
    group = Group(name=name.strip(), description=description, created_by_user_id=actor_id)
    session.add(group)
    await session.flush()
    session.add_all(GroupSource(group_id=group.id, kind=s.kind, ref_id=s.ref_id) for s in checked)
    await session.flush()
    append_event(session, "group.created", {"group_id": group.id, "name": group.name}, actor_id, [group_channel(group.id)])
    return group


async def group_to_manage(
    session: AsyncSession, group_id: int, user_id: int, role_id: int | None, permissions: frozenset[str]
) -> Group:
    """The group's creator (holding `manage_groups`) or an admin may change or delete it.

    Others get 403 if they are members (they know it exists) and 404 if not.
    """
    group = await must_get(session, Group, group_id, "group")
    if perms.ADMIN in permissions or (perms.MANAGE_GROUPS in permissions and group.created_by_user_id == user_id):
        return group
    if not (await load_graph(session)).in_group(group.id, user_id, role_id):
        raise NotFound("group_not_found", "no such group")
    raise Forbidden("not_group_manager", "only the group's creator or an admin can change this group")


async def update_group(
    session: AsyncSession,
    group: Group,
    actor_id: int,
    name: str | None,
    description: str | None,
    sources: Sequence[SourceRef] | None,
) -> Group:
    if name is not None:
        await _name_free(session, name, except_id=group.id)
        group.name = name.strip()
    if description is not None:
        group.description = description
    if sources is not None:
        checked = await _check_sources(session, sources, group.id)
        await session.execute(delete(GroupSource).where(GroupSource.group_id == group.id))
        session.add_all(GroupSource(group_id=group.id, kind=s.kind, ref_id=s.ref_id) for s in checked)
    await session.flush()
    # Real time re-subscribes connections when a group's members change.
    append_event(session, "group.updated", {"group_id": group.id, "name": group.name, "sources_changed": sources is not None}, actor_id, [group_channel(group.id)])
    return group


async def delete_group(session: AsyncSession, group: Group, actor_id: int) -> None:
    group_id = group.id
    await session.execute(delete(GroupSource).where(GroupSource.kind == SOURCE_GROUP, GroupSource.ref_id == group_id))
    await session.delete(group)
    await session.flush()
    append_event(session, "group.deleted", {"group_id": group_id}, actor_id, [group_channel(group_id)])


async def list_groups(session: AsyncSession) -> list[Group]:
    return list((await session.execute(select(Group).order_by(Group.name, Group.id))).scalars())


async def sources_of(session: AsyncSession, group_id: int) -> list[SourceRef]:
    rows = await session.execute(
        select(GroupSource.kind, GroupSource.ref_id).where(GroupSource.group_id == group_id).order_by(GroupSource.kind, GroupSource.ref_id)
    )
    return [SourceRef(k, r) for k, r in rows]


async def group_for_member(session: AsyncSession, group_id: int, user_id: int, role_id: int | None, graph: OrgGraph | None = None) -> Group:
    """The group, if the user is one of its members; otherwise 404 as if it did not exist."""
    group = await must_get(session, Group, group_id, "group")
    graph = graph or await load_graph(session)
    if not graph.in_group(group.id, user_id, role_id):
        raise NotFound("group_not_found", "no such group")
    return group
