"""Orgs, membership and accounts: every number of F-ORG-1 … F-ORG-7 on both sides."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from feeds_server import limits
from feeds_server.store.models import Org
from feeds_server.store.scope import account_session
from tests import factory


async def _admin_with_orgs(client, n: int) -> tuple[factory.Actor, list[str]]:  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    slugs = [(await factory.create_org(owner))["slug"] for _ in range(n)]
    return owner, slugs


async def _orgs_of_others(client, n: int) -> list[tuple[factory.Actor, str]]:  # type: ignore[no-untyped-def]
    """`n` orgs, each with its own owner (one owner may create only five)."""
    out = []
    for _ in range(n):
        owner = await factory.sign_up(client, factory.unique("Owner"))
        out.append((owner, (await factory.create_org(owner))["slug"]))
    return out


async def test_fifth_created_org_is_accepted_and_sixth_refused(client):
    """F-ORG-2: at most 5 created orgs per user."""
    owner, slugs = await _admin_with_orgs(client, limits.MAX_ORGS_CREATED_PER_USER)
    assert len(slugs) == limits.MAX_ORGS_CREATED_PER_USER
    r = await owner.post("/api/v1/orgs", json={"name": "Six", "slug": factory.unique("six"), "time_zone": "UTC"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "too_many_created_orgs"
    assert r.json()["error"]["details"]["limit"] == limits.MAX_ORGS_CREATED_PER_USER


async def test_tenth_org_is_accepted_and_eleventh_refused_by_invitation_and_creation(client, settings):
    """F-ORG-1: a user belongs to at most 10 orgs, joined or created."""
    user = await factory.sign_up(client, factory.unique("Joiner"))
    own = [(await factory.create_org(user))["slug"] for _ in range(limits.MAX_ORGS_CREATED_PER_USER)]
    others = await _orgs_of_others(client, limits.MAX_ORGS_PER_USER - len(own) + 1)
    for inviter, slug in others[:-1]:
        await factory.invite_and_join(inviter, slug, user, settings.mail_dir)
    me = (await user.get("/api/v1/me")).json()
    assert len(me["orgs"]) == limits.MAX_ORGS_PER_USER
    inviter, last = others[-1]
    r = await inviter.post(f"/api/v1/orgs/{last}/invitations", json={"email": user.email})
    assert r.status_code == 201
    await factory.deliver_mail(client)
    token = factory.invitation_token(settings.mail_dir, user.email)
    r = await user.post("/api/v1/invitations/accept", json={"token": token})
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_orgs"
    assert r.json()["error"]["details"]["limit"] == limits.MAX_ORGS_PER_USER


async def test_eleventh_org_by_creation_is_refused(client, settings):
    user = await factory.sign_up(client, factory.unique("Creator"))
    await factory.create_org(user)
    for inviter, slug in await _orgs_of_others(client, limits.MAX_ORGS_PER_USER - 1):
        await factory.invite_and_join(inviter, slug, user, settings.mail_dir)
    r = await user.post("/api/v1/orgs", json={"name": "Eleven", "slug": factory.unique("eleven"), "time_zone": "UTC"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_orgs"


async def test_member_who_is_admin_nowhere_cannot_create_an_org_but_a_new_account_can(client, settings):
    """F-ORG-2: creating needs admin rights in some org; a brand-new account may create its first."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, org["slug"], member, settings.mail_dir)
    r = await member.post("/api/v1/orgs", json={"name": "Mine", "slug": factory.unique("mine"), "time_zone": "UTC"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "org_creation_not_allowed"
    fresh = await factory.sign_up(client, factory.unique("Fresh"))
    assert (await fresh.post("/api/v1/orgs", json={"name": "First", "slug": factory.unique("first"), "time_zone": "UTC"})).status_code == 201


async def test_new_org_is_on_the_enterprise_trial_with_a_trial_end(client, services):
    """F-ORG-3."""
    fixed = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    services.clock = lambda: fixed
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner, time_zone="Europe/Berlin")
    assert org["edition"] == "enterprise-trial"
    assert datetime.fromisoformat(org["trial_ends_at"]) == fixed + limits.TRIAL_LENGTH
    assert org["time_zone"] == "Europe/Berlin"


async def test_slug_and_time_zone_are_validated(client):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    taken = (await factory.create_org(owner))["slug"]
    cases = [
        ({"slug": "ab"}, 422, "invalid_slug"),
        ({"slug": "x" * (limits.MAX_SLUG_CHARS + 1)}, 422, "validation_failed"),
        ({"slug": "-bad-"}, 422, "invalid_slug"),
        ({"slug": "api"}, 409, "slug_taken"),
        ({"slug": taken.upper()}, 409, "slug_taken"),
        ({"slug": factory.unique("tz"), "time_zone": "Mars/Olympus"}, 422, "invalid_time_zone"),
    ]
    for extra, status, code in cases:
        body = {"name": "X", "time_zone": "UTC", **extra}
        r = await owner.post("/api/v1/orgs", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), extra
    ok = "y" * limits.MAX_SLUG_CHARS
    assert (await owner.post("/api/v1/orgs", json={"name": "Y", "slug": ok, "time_zone": "UTC"})).status_code == 201


async def test_load_sample_data_fills_people_roles_profiles_and_territories(client):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner, load_sample_data=True)
    slug = org["slug"]
    members = (await owner.get(f"/api/v1/orgs/{slug}/members", params={"limit": 100})).json()["members"]
    assert len(members) >= 8
    roles = (await owner.get(f"/api/v1/orgs/{slug}/roles")).json()["roles"]
    assert {"CEO", "VP Sales", "Sales Representative"} <= {r["name"] for r in roles}
    assert len((await owner.get(f"/api/v1/orgs/{slug}/territories")).json()["territories"]) >= 4
    assert len((await owner.get(f"/api/v1/orgs/{slug}/profiles")).json()["profiles"]) >= 3
    groups = (await owner.get(f"/api/v1/orgs/{slug}/groups")).json()["groups"]
    assert {"Sales Team", "Marketing", "Leadership"} <= {g["name"] for g in groups}
    assert len((await owner.get(f"/api/v1/orgs/{slug}/feed")).json()["items"]) >= 2


async def test_only_the_super_admin_changes_the_slug_and_the_old_one_stops_working(client, settings):
    """F-ORG-4."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    admin = await factory.sign_up(client, factory.unique("Admin"))
    profiles = (await owner.get(f"/api/v1/orgs/{org['slug']}/profiles")).json()["profiles"]
    admin_profile = next(p["id"] for p in profiles if p["name"] == "Administrator")
    await factory.invite_and_join(owner, org["slug"], admin, settings.mail_dir, profile_id=admin_profile)
    new_slug = factory.unique("renamed")
    r = await admin.put(f"/api/v1/orgs/{org['slug']}/slug", json={"slug": new_slug})
    assert r.status_code == 403 and r.json()["error"]["code"] == "super_admin_required"
    r = await owner.put(f"/api/v1/orgs/{org['slug']}/slug", json={"slug": new_slug})
    assert r.status_code == 200 and r.json()["org"]["slug"] == new_slug
    assert (await owner.get(f"/api/v1/orgs/{org['slug']}")).status_code == 404
    assert (await owner.get(f"/api/v1/orgs/{new_slug}")).status_code == 200


async def test_signing_in_through_an_org_slug_opens_that_org(client):
    """F-ORG-4 / F-ORG-6: one login, several orgs; the slug picks the one to open."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    first = await factory.create_org(owner)
    second = await factory.create_org(owner)
    r = await client.post("/api/v1/auth/signin", json={"email": owner.email, "password": factory.PASSWORD, "org_slug": second["slug"]})
    assert r.json()["org"]["slug"] == second["slug"]
    r = await client.post("/api/v1/auth/signin", json={"email": owner.email, "password": factory.PASSWORD})
    assert r.json()["org"]["slug"] == first["slug"]  # the default: the first org
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    r = await client.post("/api/v1/auth/signin", json={"email": stranger.email, "password": factory.PASSWORD, "org_slug": first["slug"]})
    assert r.status_code == 404


async def test_removed_from_default_org_the_next_sign_in_asks_for_a_new_default(client, settings):
    """F-ORG-7: the API says so explicitly and does not pick silently."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org_a = await factory.create_org(owner)
    other_owner = await factory.sign_up(client, factory.unique("Other"))
    org_b = await factory.create_org(other_owner)
    user = await factory.sign_up(client, factory.unique("User"))
    await factory.invite_and_join(owner, org_a["slug"], user, settings.mail_dir)
    await factory.invite_and_join(other_owner, org_b["slug"], user, settings.mail_dir)
    me = (await user.get("/api/v1/me")).json()
    assert me["default_org"]["slug"] == org_a["slug"] and me["needs_default_org"] is False
    assert (await owner.delete(f"/api/v1/orgs/{org_a['slug']}/members/{user.id}")).status_code == 204
    r = await client.post("/api/v1/auth/signin", json={"email": user.email, "password": factory.PASSWORD})
    assert r.json()["needs_default_org"] is True and r.json()["org"] is None
    assert (await user.get("/api/v1/me")).json()["needs_default_org"] is True
    r = await user.put("/api/v1/me/default-org", json={"org_slug": org_b["slug"]})
    assert r.status_code == 200
    me = (await user.get("/api/v1/me")).json()
    assert me["needs_default_org"] is False and me["default_org"]["slug"] == org_b["slug"]


async def test_deleting_the_default_org_asks_members_for_a_new_default(client, settings):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    assert (await owner.delete(f"/api/v1/orgs/{org['slug']}")).status_code == 204
    me = (await owner.get("/api/v1/me")).json()
    assert me["needs_default_org"] is True and me["orgs"] == []


async def test_the_super_admin_cannot_be_removed_and_members_can_leave(client, settings):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, org["slug"], member, settings.mail_dir)
    r = await owner.delete(f"/api/v1/orgs/{org['slug']}/members/{owner.id}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "cannot_remove_super_admin"
    assert (await member.delete(f"/api/v1/orgs/{org['slug']}/membership")).status_code == 204
    assert (await member.get(f"/api/v1/orgs/{org['slug']}")).status_code == 404


async def test_members_list_pages_and_searches(client, settings):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner, load_sample_data=True)
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await owner.get(f"/api/v1/orgs/{org['slug']}/members", params=params)).json()
        seen += [m["user"]["id"] for m in page["members"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 9
    found = (await owner.get(f"/api/v1/orgs/{org['slug']}/members", params={"q": "pat"})).json()["members"]
    assert [m["user"]["name"] for m in found] == ["Maya Patel"]


async def test_sign_out_revokes_the_token_and_expired_tokens_are_refused(client, services):
    user = await factory.sign_up(client, factory.unique("User"))
    assert (await user.get("/api/v1/me")).status_code == 200
    assert (await user.post("/api/v1/auth/signout")).status_code == 204
    r = await user.get("/api/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    again = await factory.sign_in(client, user.email)
    services.clock = lambda: datetime.now(timezone.utc) + timedelta(seconds=services.settings.token_ttl_seconds + 1)
    assert (await again.get("/api/v1/me")).status_code == 401


async def test_sign_up_is_one_login_per_email_and_wrong_passwords_are_refused(client):
    user = await factory.sign_up(client, factory.unique("User"))
    r = await client.post("/api/v1/auth/signup", json={"email": user.email.upper(), "password": "another password", "name": "Dup"})
    assert r.status_code == 201  # as for a new address (tests/api/test_account_life_cycle.py): the email tells
    again = await factory.sign_in(client, user.email)  # the first login and its password, unchanged
    assert again.id == user.id and again.name == user.name
    for email in (user.email, "nobody@example.com"):
        r = await client.post("/api/v1/auth/signin", json={"email": email, "password": "wrong password"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"


async def test_edition_is_a_field_and_users_belong_to_orgs_of_different_editions(client, services):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    a = await factory.create_org(owner)
    b = await factory.create_org(owner)
    r = await owner.put(f"/api/v1/orgs/{a['slug']}/edition", json={"edition": "professional"})
    assert r.status_code == 200 and r.json()["org"]["edition"] == "professional"
    editions = {m["org"]["slug"]: m["org"]["edition"] for m in (await owner.get("/api/v1/me")).json()["orgs"]}
    assert editions == {a["slug"]: "professional", b["slug"]: "enterprise-trial"}
    async with account_session(services.sessions) as session:
        await session.execute(update(Org).where(Org.id == a["id"]).values(name="Renamed"))


async def test_sample_data_has_records_in_several_modules_and_an_auto_follow_rule(client):
    """F-ORG-3: users, groups, records, posts and auto-follow rules."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner, load_sample_data=True)
    rules = (await owner.get(f"/api/v1/orgs/{org['slug']}/rules")).json()["created_by_me"]
    assert [r["name"] for r in rules] == ["High-value deals in negotiation"]
    feed = (await owner.get(f"/api/v1/orgs/{org['slug']}/feed", params={"module": "Deals"})).json()["items"]
    assert {i["data"]["record"]["name"] for i in feed} == {"Müller GmbH — 200 seats", "Andes Logistics — renewal"}
