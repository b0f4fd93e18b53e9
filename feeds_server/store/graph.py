"""Loads the `OrgGraph` (role tree, group sources, members' roles) of the session's org."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.domain.audience import OrgGraph
from feeds_server.store.models import GroupSource, Membership, Role


async def load_graph(session: AsyncSession, with_members: bool = False) -> OrgGraph:
    """`with_members` also loads every member's role, needed to list whole audiences."""
    role_parents = dict((await session.execute(select(Role.id, Role.parent_id))).all())
    sources: dict[int, list[tuple[str, int]]] = {}
    for group_id, kind, ref in (await session.execute(select(GroupSource.group_id, GroupSource.kind, GroupSource.ref_id))):
        sources.setdefault(group_id, []).append((kind, ref))
    member_roles: dict[int, int | None] = {}
    if with_members:
        member_roles = dict((await session.execute(select(Membership.user_id, Membership.role_id))).all())
    return OrgGraph(role_parents, {g: tuple(s) for g, s in sources.items()}, member_roles)
