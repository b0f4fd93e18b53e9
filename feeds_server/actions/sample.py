""""Load sample data" (F-ORG-3): a small, realistic sales org to explore the product with."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.orgs import join_org
from feeds_server.domain import permissions as perms
from feeds_server.passwords import Passwords
from feeds_server.store.models import Org, Profile, Role, Territory, TerritoryMember, User

# (name, parent) — the tree under the CEO role every org starts with.
ROLES = [
    ("VP Sales", "CEO"),
    ("VP Marketing", "CEO"),
    ("Sales Manager EMEA", "VP Sales"),
    ("Sales Manager Americas", "VP Sales"),
    ("Sales Representative", "Sales Manager EMEA"),
    ("Account Executive", "Sales Manager Americas"),
    ("Marketing Specialist", "VP Marketing"),
]

TERRITORIES = [("Global", None), ("EMEA", "Global"), ("Americas", "Global"), ("DACH", "EMEA"), ("Nordics", "EMEA")]

# (first, last, role, profile, territory)
PEOPLE = [
    ("Maya", "Patel", "VP Sales", perms.ADMIN_PROFILE, "Global"),
    ("Jonas", "Becker", "Sales Manager EMEA", perms.STANDARD_PROFILE, "EMEA"),
    ("Lucía", "Fernández", "Sales Manager Americas", perms.STANDARD_PROFILE, "Americas"),
    ("Sven", "Lindqvist", "Sales Representative", perms.STANDARD_PROFILE, "Nordics"),
    ("Anna", "Schmidt", "Sales Representative", perms.STANDARD_PROFILE, "DACH"),
    ("Daniel", "Okafor", "Account Executive", perms.STANDARD_PROFILE, "Americas"),
    ("Priya", "Raman", "VP Marketing", "Group Manager", None),
    ("Tom", "Walsh", "Marketing Specialist", perms.STANDARD_PROFILE, None),
]

EXTRA_PROFILES = {"Group Manager": (perms.FEEDS_TAB, perms.MANAGE_GROUPS), "Support (no feed)": ()}


async def load_sample_data(
    session: AsyncSession, org: Org, owner: User, passwords: Passwords, now: datetime, password: str | None = None
) -> list[User]:
    """Fill a new org with people, roles, profiles and territories; returns the sample users.

    Sample people can sign in only when `password` is given (the demo does that).
    """
    roles = {r.name: r for r in (await session.execute(select(Role))).scalars()}
    for name, parent in ROLES:
        role = Role(name=name, parent_id=roles[parent].id)
        session.add(role)
        await session.flush()
        roles[name] = role
    profiles = {p.name: p for p in (await session.execute(select(Profile))).scalars()}
    for name, permissions in EXTRA_PROFILES.items():
        profiles[name] = Profile(name=name, permissions=list(permissions))
        session.add(profiles[name])
    territories: dict[str, Territory] = {}
    for name, parent in TERRITORIES:
        territories[name] = Territory(name=name, parent_id=territories[parent].id if parent else None)
        session.add(territories[name])
        await session.flush()
    password_hash = await passwords.hash(password) if password else None
    users: list[User] = []
    for first, last, role, profile, territory in PEOPLE:
        user = User(email=_sample_email(first, last, org.slug), name=f"{first} {last}", password_hash=password_hash)
        session.add(user)
        await session.flush()
        await join_org(session, user, org, profiles[profile].id, roles[role].id, now)
        if territory:
            session.add(TerritoryMember(territory_id=territories[territory].id, user_id=user.id))
        users.append(user)
    await session.flush()
    return users


def _sample_email(first: str, last: str, slug: str) -> str:
    def ascii_lower(word: str) -> str:
        return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower()

    return f"{ascii_lower(first)}.{ascii_lower(last)}@{slug}.example.com"
