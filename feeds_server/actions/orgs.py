"""Orgs and membership: create, update, change slug, delete, join, remove (F-ORG-1 … F-ORG-7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions import audit
from feeds_server.domain import permissions as perms
from feeds_server.domain.orgs import (
    EDITION_TRIAL,
    MembershipCounts,
    check_can_create_org,
    check_can_join,
    check_time_zone,
    normalize_slug,
)
from feeds_server.errors import Conflict, Forbidden, NotFound
from feeds_server.store.events import append_event
from feeds_server.store.models import (
    DormancyNotice, Follow, Membership, Mute, NotificationSettings, Org, Profile, PushSubscription, Role, TerritoryMember, User,
)
from feeds_server.store.scope import CROSS_ORG, allow_cross_org, get_in_org, set_org


@dataclass(frozen=True)
class MyOrg:
    org: Org
    membership: Membership
    profile: Profile
    role: Role | None


async def membership_counts(session: AsyncSession, user_id: int) -> MembershipCounts:
    """Counted across every org the user is in (an account-level read)."""
    allow_cross_org(session)
    rows = (
        await session.execute(
            select(Membership.is_super_admin, Profile.permissions, Org.created_by_user_id)
            .join(Profile, Profile.id == Membership.profile_id)
            .join(Org, Org.id == Membership.org_id)
            .where(Membership.user_id == user_id)
            .execution_options(**CROSS_ORG)
        )
    ).all()
    return MembershipCounts(
        memberships=len(rows),
        created=sum(1 for _, _, creator in rows if creator == user_id),
        admin_somewhere=any(sa or perms.ADMIN in (p or []) for sa, p, _ in rows),
    )


async def lock_user(session: AsyncSession, user_id: int) -> User:
    """Serialize membership changes of one user so two requests cannot both take the 10th place."""
    user = (await session.execute(select(User).where(User.id == user_id).with_for_update())).scalar_one()
    return user


async def slug_free(session: AsyncSession, slug: str) -> bool:
    return (await session.execute(select(Org.id).where(Org.slug == slug))).first() is None


async def create_org(
    session: AsyncSession, user_id: int, name: str, slug: str, time_zone: str, now: datetime
) -> tuple[Org, Membership]:
    """F-ORG-2/3: the creator becomes super admin; the org starts on the enterprise trial."""
    user = await lock_user(session, user_id)
    check_can_create_org(await membership_counts(session, user.id))
    slug = normalize_slug(slug)
    check_time_zone(time_zone)
    if not await slug_free(session, slug):
        raise Conflict("slug_taken", f"the slug {slug!r} is taken", field="slug")
    org = Org(
        name=name.strip(),
        slug=slug,
        time_zone=time_zone,
        edition=EDITION_TRIAL,
        trial_ends_at=now + limits.TRIAL_LENGTH,
        created_by_user_id=user.id,
        created_at=now,
        event_seq=0,
        ip_allowlist=[],
    )
    session.add(org)
    await session.flush()
    set_org(session, org.id)
    profiles = {name: Profile(name=name, permissions=list(p)) for name, p in perms.DEFAULT_PROFILES.items()}
    session.add_all(profiles.values())
    top_role = Role(name="CEO", parent_id=None)
    session.add(top_role)
    await session.flush()
    membership = await join_org(session, user, org, profiles[perms.ADMIN_PROFILE].id, top_role.id, now, super_admin=True)
    append_event(session, "org.created", {"org_id": org.id, "name": org.name, "slug": org.slug}, user.id)
    return org, membership


async def join_org(
    session: AsyncSession,
    user: User,
    org: Org,
    profile_id: int,
    role_id: int | None,
    now: datetime,
    super_admin: bool = False,
) -> Membership:
    """Add a member. The first org a user joins becomes their default (F-ORG-7)."""
    allow_cross_org(session)
    existing = (
        await session.execute(select(Membership.id).where(Membership.org_id == org.id, Membership.user_id == user.id))
    ).first()
    if existing:
        raise Conflict("already_member", "already a member of this org")
    check_can_join(await membership_counts(session, user.id))
    membership = Membership(
        org_id=org.id, user_id=user.id, profile_id=profile_id, role_id=role_id, is_super_admin=super_admin, joined_at=now
    )
    session.add(membership)
    if user.default_org_id is None and not user.default_org_lost:
        user.default_org_id = org.id
    await session.flush()
    append_event(
        session, "member.joined", {"user_id": user.id, "name": user.name, "role_id": role_id, "profile_id": profile_id}, user.id
    )
    audit.record(session, "member.joined", user.id, ("user", user.id), {"role_id": role_id, "profile_id": profile_id, "super_admin": super_admin}, now)
    return membership


async def my_orgs(session: AsyncSession, user_id: int) -> list[MyOrg]:
    allow_cross_org(session)
    rows = (
        await session.execute(
            select(Org, Membership, Profile, Role)
            .join(Membership, Membership.org_id == Org.id)
            .join(Profile, Profile.id == Membership.profile_id)
            .outerjoin(Role, Role.id == Membership.role_id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.joined_at, Org.id)
        )
    ).all()
    return [MyOrg(*row) for row in rows]


async def update_org(session: AsyncSession, org: Org, actor_id: int, name: str | None, time_zone: str | None) -> Org:
    if name is not None:
        org.name = name.strip()
    if time_zone is not None:
        org.time_zone = check_time_zone(time_zone)
    await session.flush()
    append_event(session, "org.updated", {"name": org.name, "time_zone": org.time_zone}, actor_id)
    audit.record(session, "org.updated", actor_id, ("org", org.id), {"name": org.name, "time_zone": org.time_zone})
    return org


async def set_edition(session: AsyncSession, org: Org, actor_id: int, edition: str) -> Org:
    org.edition = edition
    if edition != EDITION_TRIAL:
        org.trial_ends_at = None
    await session.flush()
    append_event(session, "org.updated", {"edition": edition}, actor_id)
    audit.record(session, "org.edition_changed", actor_id, ("org", org.id), {"edition": edition})
    return org


async def change_slug(session: AsyncSession, org: Org, actor_id: int, new_slug: str) -> Org:
    """F-ORG-4: the old slug stops working at once (no redirect)."""
    slug = normalize_slug(new_slug)
    if slug == org.slug:
        return org
    if not await slug_free(session, slug):
        raise Conflict("slug_taken", f"the slug {slug!r} is taken", field="slug")
    old = org.slug
    org.slug = slug
    await session.flush()
    append_event(session, "org.slug_changed", {"old_slug": old, "slug": slug}, actor_id)
    audit.record(session, "org.slug_changed", actor_id, ("org", org.id), {"old_slug": old, "slug": slug})
    return org


async def delete_org(session: AsyncSession, org: Org) -> None:
    """Everything of the org goes (foreign keys cascade); members whose default it was must pick again."""
    await session.execute(
        update(User).where(User.default_org_id == org.id).values(default_org_id=None, default_org_lost=True)
    )
    await session.delete(org)
    await session.flush()


async def remove_member(session: AsyncSession, org: Org, actor_id: int, user_id: int) -> None:
    """Removes a member (an admin, or the member leaving). The super admin cannot be removed."""
    membership = (await session.execute(select(Membership).where(Membership.user_id == user_id))).scalar_one_or_none()
    if membership is None:
        raise NotFound("member_not_found", "no such member")
    if membership.is_super_admin:
        raise Forbidden("cannot_remove_super_admin", "the super admin cannot be removed from the org")
    await session.execute(delete(TerritoryMember).where(TerritoryMember.user_id == user_id))
    # They hear nothing more of this org: their browsers' subscriptions (the pushes go with them),
    # what they followed, muted and chose go. Emails already queued are skipped by the notifier,
    # which checks membership before sending.
    for model in (PushSubscription, Follow, Mute, DormancyNotice, NotificationSettings):
        await session.execute(delete(model).where(model.user_id == user_id))
    await session.delete(membership)
    await session.execute(
        update(User)
        .where(User.id == user_id, User.default_org_id == org.id)
        .values(default_org_id=None, default_org_lost=True)
    )
    await session.flush()
    append_event(session, "member.removed", {"user_id": user_id}, actor_id)
    audit.record(session, "member.left" if actor_id == user_id else "member.removed", actor_id, ("user", user_id))


async def list_members(
    session: AsyncSession, search: str | None, after_user_id: int | None, limit: int
) -> list[tuple[Membership, User]]:
    """Members by user id (keyset), optionally matching a name or email prefix (mention autocomplete)."""
    stmt = select(Membership, User).join(User, User.id == Membership.user_id).order_by(User.id).limit(limit)
    if after_user_id is not None:
        stmt = stmt.where(User.id > after_user_id)
    if search:
        pattern = search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(func.lower(User.name).like(pattern, escape="\\"), func.lower(User.email).like(pattern, escape="\\"),
                func.lower(User.name).like("% " + pattern, escape="\\"))
        )
    return list((await session.execute(stmt)).all())


async def get_member(session: AsyncSession, user_id: int) -> tuple[Membership, User]:
    row = (
        await session.execute(select(Membership, User).join(User, User.id == Membership.user_id).where(Membership.user_id == user_id))
    ).first()
    if row is None:
        raise NotFound("member_not_found", "no such member")
    return row[0], row[1]


async def update_member(
    session: AsyncSession, actor_id: int, user_id: int, role_id: int | None, profile_id: int | None, clear_role: bool
) -> tuple[Membership, User]:
    membership, user = await get_member(session, user_id)
    before = {"role_id": membership.role_id, "profile_id": membership.profile_id}
    if profile_id is not None:
        if await get_in_org(session, Profile, profile_id) is None:
            raise NotFound("profile_not_found", "no such profile")
        membership.profile_id = profile_id
    if clear_role:
        membership.role_id = None
    elif role_id is not None:
        if await get_in_org(session, Role, role_id) is None:
            raise NotFound("role_not_found", "no such role")
        membership.role_id = role_id
    await session.flush()
    append_event(
        session, "member.updated", {"user_id": user_id, "role_id": membership.role_id, "profile_id": membership.profile_id}, actor_id
    )
    after = {"role_id": membership.role_id, "profile_id": membership.profile_id}
    audit.record(session, "member.updated", actor_id, ("user", user_id), {"before": before, "after": after})
    return membership, user

