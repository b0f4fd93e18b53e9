"""A person's unread notification count in each of their orgs: numbers only, never what the
notifications say, and only the person's own rows.

`/api/v1/me` reads every org's count in one query; the live `$counts` channel (realtime/counts.py)
reads the counts of the people whose notifications a commit changed, in one query per batch.

Only orgs where the person has the Feeds tab (the `feeds_tab` permission) are counted: an org that
keeps its feed from someone keeps even the number of their notifications there from their session
of another org (an allowlist: a permission added later counts only when it says so here).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.domain import permissions as perms
from feeds_server.store.models import Membership, Notification, Org, Profile
from feeds_server.store.scope import allow_cross_org

# The people of one count read: a batch larger than this is read in several statements.
USERS_PER_READ = 500


@dataclass(frozen=True)
class UnreadCount:
    user_id: int
    org_slug: str
    unread: int


def counted(profile_permissions: Iterable[str], is_super_admin: bool) -> bool:
    """Whether a member's unread count in an org may be shown outside that org."""
    return perms.FEEDS_TAB in perms.effective_permissions(profile_permissions, is_super_admin)


async def unread_by_org(session: AsyncSession, user_id: int, org_ids: Iterable[int]) -> dict[int, int]:
    """org id -> the person's unread notifications there (orgs without any are left out)."""
    wanted = sorted(set(org_ids))
    if not wanted:
        return {}
    allow_cross_org(session)
    stmt = (
        select(Notification.org_id, func.count())
        .where(Notification.org_id.in_(wanted), Notification.user_id == user_id, Notification.read_at.is_(None))
        .group_by(Notification.org_id)
    )
    return {org_id: n for org_id, n in await session.execute(stmt)}


async def unread_of(session: AsyncSession, people: Iterable[tuple[int, int]]) -> list[UnreadCount]:
    """The count of each (org id, user id) whose user is still a member of the org with the Feeds
    tab there, with the org's slug: a person who left an org (or lost its Feeds tab) hears no more of it."""
    by_org: dict[int, set[int]] = {}
    for org_id, user_id in people:
        by_org.setdefault(org_id, set()).add(user_id)
    if not by_org:
        return []
    allow_cross_org(session)
    unread = (
        select(func.count())
        .where(Notification.org_id == Membership.org_id, Notification.user_id == Membership.user_id, Notification.read_at.is_(None))
        .correlate(Membership)
        .scalar_subquery()
    )
    out: list[UnreadCount] = []
    for chunk in _chunks(by_org):
        stmt = (
            select(Membership.user_id, Org.slug, unread, Profile.permissions, Membership.is_super_admin)
            .join(Org, Org.id == Membership.org_id)
            .join(Profile, Profile.id == Membership.profile_id)
            .where(or_(*(and_(Membership.org_id == org_id, Membership.user_id.in_(sorted(users))) for org_id, users in chunk.items())))
            .order_by(Membership.user_id, Org.slug)
        )
        out.extend(
            UnreadCount(user_id, slug, n)
            for user_id, slug, n, permissions, is_super_admin in await session.execute(stmt)
            if counted(permissions or [], is_super_admin)
        )
    return out


def _chunks(by_org: dict[int, set[int]]) -> list[dict[int, set[int]]]:
    chunks: list[dict[int, set[int]]] = [{}]
    size = 0
    for org_id, users in sorted(by_org.items()):
        for user_id in sorted(users):
            if size == USERS_PER_READ:
                chunks.append({})
                size = 0
            chunks[-1].setdefault(org_id, set()).add(user_id)
            size += 1
    return chunks
