""""Load sample data" (F-ORG-3): a small, realistic sales org to explore the product with."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions.groups import SourceRef, create_group
from feeds_server.actions.orgs import join_org
from feeds_server.actions.posts import Reader, add_comment, create_post
from feeds_server.actions.records import RecordEvent, ingest
from feeds_server.actions.rules import create_rule
from feeds_server.domain.records import Followers
from feeds_server.domain import permissions as perms
from feeds_server.secrets.passwords import Passwords
from feeds_server.store.models import Group, Org, Profile, Role, Territory, TerritoryMember, User
from feeds_server.store.scope import current_org

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
    await _groups_and_posts(session, owner, users, roles, now)
    return users


async def _groups_and_posts(session: AsyncSession, owner: User, users: list[User], roles: dict[str, Role], now: datetime) -> None:
    """Groups built from roles and people, and a few posts, comments and mentions between them."""
    by_first = {u.name.split()[0]: u for u in users}
    sales = await create_group(
        session, owner.id, "Sales Team", "Everyone in sales, managers and reps.",
        [SourceRef("role_and_subordinates", roles["VP Sales"].id)],
    )
    marketing = await create_group(
        session, owner.id, "Marketing", "Campaigns, events and content.",
        [SourceRef("role_and_subordinates", roles["VP Marketing"].id), SourceRef("user", owner.id)],
    )
    await create_group(
        session, owner.id, "Leadership", "The people who sign off on the quarter.",
        [SourceRef("role", roles["CEO"].id), SourceRef("role", roles["VP Sales"].id), SourceRef("role", roles["VP Marketing"].id)],
    )
    maya, jonas, anna, priya = by_first["Maya"], by_first["Jonas"], by_first["Anna"], by_first["Priya"]

    def as_reader(user: User, role: str) -> Reader:
        return Reader(user.id, roles[role].id, False)

    welcome = await create_post(
        session, Reader(owner.id, roles["CEO"].id, True),
        f"Welcome to Feeds! Say hello, @[group:{sales.id}] and @[group:{marketing.id}].", now,
    )
    await add_comment(session, as_reader(maya, "VP Sales"), welcome["id"], "Hello everyone, great to have the feed up and running.", now)
    await create_post(
        session, as_reader(jonas, "Sales Manager EMEA"),
        f"@[user:{anna.id}] the Müller GmbH renewal is due next week: can you prepare the quote?", now, group_id=sales.id,
    )
    await create_post(session, as_reader(priya, "VP Marketing"), "The spring webinar series is live: 4 sessions, 600 sign-ups so far.", now)
    await _records_and_rules(session, owner, by_first, roles, now)


# (module, crm id, name, owner first name, fields)
RECORDS = [
    ("Deals", "D-1001", "Müller GmbH — 200 seats", "Anna", {"Amount": 84000, "Stage": "Negotiation/Review", "Closing Date": "2027-01-15"}),
    ("Deals", "D-1002", "Nordvik AS — pilot", "Sven", {"Amount": 12000, "Stage": "Qualification", "Closing Date": "2027-02-01"}),
    ("Deals", "D-1003", "Andes Logistics — renewal", "Daniel", {"Amount": 56000, "Stage": "Proposal/Price Quote", "Closing Date": "2026-12-20"}),
    ("Leads", "L-2001", "Grace Hopper (Cobol Corp)", "Jonas", {"Rating": "Hot", "Lead Source": "Webinar", "Annual Revenue": 2500000}),
    ("Leads", "L-2002", "Alan Turing (Bletchley Ltd)", "Sven", {"Rating": "Warm", "Lead Source": "Trade show", "Annual Revenue": 400000}),
    ("Accounts", "A-3001", "Müller GmbH", "Anna", {"Industry": "Manufacturing", "Employees": 1200, "Account Type": "Customer"}),
    ("Accounts", "A-3002", "Andes Logistics", "Daniel", {"Industry": "Transport", "Employees": 340, "Account Type": "Customer"}),
    ("Contacts", "C-4001", "Klaus Müller", "Anna", {"Title": "Head of IT", "Email": "klaus@mueller.example"}),
]


async def _records_and_rules(session: AsyncSession, owner: User, by_first: dict[str, User], roles: dict[str, Role], now: datetime) -> None:
    """An auto-follow rule, then records in several modules reported as the CRM would."""
    leadership = (await session.execute(select(Group).where(Group.name == "Leadership"))).scalar_one()
    await create_rule(
        session, owner.id, True, "High-value deals in negotiation", "Deals",
        {"and": [{"field": "Amount", "type": "number", "op": "gt", "value": 50000},
                 {"field": "Stage", "type": "picklist", "op": "in", "value": ["Negotiation/Review", "Proposal/Price Quote"]}]},
        Followers(creator=True, owner_superior_role=True, groups=(leadership.id,)), "Big deals close to closing.", now,
    )
    org = (await session.execute(select(Org).where(Org.id == current_org(session)))).scalar_one()
    events = [
        RecordEvent(event_id=f"sample-{crm_id}", type="created", module=module, crm_id=crm_id, name=name,
                    owner_email=by_first[who].email, creator_email=by_first[who].email, fields=fields)
        for module, crm_id, name, who, fields in RECORDS
    ]
    await ingest(session, org, events, now)


def _sample_email(first: str, last: str, slug: str) -> str:
    def ascii_lower(word: str) -> str:
        return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower()

    return f"{ascii_lower(first)}.{ascii_lower(last)}@{slug}.example.com"
