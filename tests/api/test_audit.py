"""The audit log: sign-ins of members and admin actions, listed to the org's admins (F-OPS-3, F-SEC-1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
import orjson

from feeds_server.cli import rules as rules_cli
from tests import factory

RULE_FILE = '{"version": 1, "rules": [{"name": "Big", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1}}]}'


async def _entries(admin: factory.Actor, slug: str, **query: str) -> list[dict]:
    """Every entry of the log (following the cursor), newest first."""
    out: list[dict] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        r = await admin.get(f"/api/v1/orgs/{slug}/audit", params=params)
        assert r.status_code == 200, r.text
        out += r.json()["entries"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


async def test_sign_ins_and_refusals_are_logged_in_every_org_of_the_member_and_no_other(client, settings):
    owner_a = await factory.sign_up(client, factory.unique("OwnerA"))
    org_a = await factory.create_org(owner_a)
    owner_b = await factory.sign_up(client, factory.unique("OwnerB"))
    org_b = await factory.create_org(owner_b)
    owner_c = await factory.sign_up(client, factory.unique("OwnerC"))
    org_c = await factory.create_org(owner_c)
    member = await factory.sign_up(client, factory.unique("Member"))
    for owner, org in ((owner_a, org_a), (owner_b, org_b)):
        await factory.invite_and_join(owner, org["slug"], member, settings.mail_dir)

    r = await client.post("/api/v1/auth/signin", json={"email": member.email, "password": "wrong password!"})
    assert r.status_code == 401
    assert (await client.post("/api/v1/auth/signin", json={"email": "nobody@example.com", "password": "x"})).status_code == 401
    await factory.sign_in(client, member.email, org_slug=org_a["slug"])

    for owner, org in ((owner_a, org_a), (owner_b, org_b)):
        mine = [e for e in await _entries(owner, org["slug"], action="auth.*") if e["actor"]["id"] == member.id]
        assert [e["action"] for e in mine] == ["auth.signin", "auth.signin_failed"]
        assert all(e["ip"] == "127.0.0.1" for e in mine)
        assert mine[1]["details"] == {"reason": "invalid_credentials"}
        assert mine[0]["details"] == {"org_slug": org_a["slug"]}
    assert not [e for e in await _entries(owner_c, org_c["slug"]) if e["actor"] and e["actor"]["id"] == member.id]
    # A password never reaches the log, right or wrong.
    raw = (await owner_a.get(f"/api/v1/orgs/{org_a['slug']}/audit?limit=100")).text
    assert "wrong password!" not in raw and factory.PASSWORD not in raw


async def test_admin_actions_are_logged_with_actor_target_and_address_never_a_secret(client, settings, tmp_path):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    slug = org["slug"]
    b = f"/api/v1/orgs/{slug}"
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, slug, member, settings.mail_dir)

    role = (await owner.post(f"{b}/roles", json={"name": "Sales"})).json()["role"]
    profile = (await owner.post(f"{b}/profiles", json={"name": "Viewers", "permissions": ["feeds_tab"]})).json()["profile"]
    assert (await owner.patch(f"{b}/members/{member.id}", json={"role_id": role["id"], "profile_id": profile["id"]})).status_code == 200
    created = (await owner.post(f"{b}/integrations", json={"name": "CRM"})).json()
    hook = await owner.put(f"{b}/integrations/{created['integration']['id']}/webhook", json={"url": "https://u:pw@crm.example.com/hook?key=s3cret"})
    assert hook.status_code == 200, hook.text
    here = (await owner.get(f"{b}/ip-allowlist")).json()["your_address"]
    assert (await owner.put(f"{b}/ip-allowlist", json={"ranges": [f"{here}/32"]})).status_code == 200
    assert (await owner.put(f"{b}/feed-modules", json={"modules": {"Leads": False}})).status_code == 200
    assert (await owner.post(f"{b}/invitations", json={"email": "later@example.com"})).status_code == 201
    (tmp_path / "rules.json").write_text(RULE_FILE)
    assert await rules_cli.apply(settings, slug, str(tmp_path / "rules.json")) == 0

    entries = await _entries(owner, slug)
    by_action = {e["action"]: e for e in reversed(entries)}  # the latest of each action
    for action in ("role.created", "profile.created", "member.updated", "integration.created", "integration.webhook_set",
                   "org.ip_allowlist_changed", "feed_modules.updated", "invitation.created", "member.joined", "rules.applied"):
        assert action in by_action, action
    updated = by_action["member.updated"]
    assert updated["actor"] == {"id": owner.id, "name": owner.name, "email": owner.email}
    assert updated["target"] == {"type": "user", "id": member.id}
    assert updated["details"]["after"] == {"role_id": role["id"], "profile_id": profile["id"]}
    assert updated["ip"] == "127.0.0.1"
    assert by_action["integration.webhook_set"]["details"] == {"url": "https://crm.example.com/hook"}
    assert by_action["invitation.created"]["details"]["email"] == "later@example.com"
    assert by_action["rules.applied"]["actor"] is None and by_action["rules.applied"]["details"]["via"] == "cli"
    raw = orjson.dumps(entries).decode()
    assert created["token"] not in raw and "s3cret" not in raw and ":pw@" not in raw


async def test_the_log_filters_by_action_and_time_and_pages_with_a_stable_cursor(client, settings, services):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    slug = (await factory.create_org(owner))["slug"]
    b = f"/api/v1/orgs/{slug}"
    for i in range(5):
        assert (await owner.post(f"{b}/territories", json={"name": f"T{i}"})).status_code == 201
    everything = await _entries(owner, slug)
    pages = await _entries(owner, slug, limit="2")
    assert [e["id"] for e in pages] == [e["id"] for e in everything]
    assert len({e["id"] for e in pages}) == len(pages)

    territories = await _entries(owner, slug, action="territory.created")
    assert [e["details"]["name"] for e in territories] == ["T4", "T3", "T2", "T1", "T0"]
    assert {e["action"] for e in await _entries(owner, slug, action="territory.*")} == {"territory.created"}
    # A page taken, then more rows written: the next page goes on where the first stopped.
    first = (await owner.get(f"{b}/audit", params={"action": "territory.created", "limit": "2"})).json()
    assert (await owner.post(f"{b}/territories", json={"name": "T5"})).status_code == 201
    rest = await _entries(owner, slug, action="territory.created", cursor=first["next_cursor"])
    assert [e["details"]["name"] for e in first["entries"] + rest] == ["T4", "T3", "T2", "T1", "T0"]

    now = datetime.now(timezone.utc)
    assert await _entries(owner, slug, **{"from": (now + timedelta(minutes=1)).isoformat()}) == []
    assert len(await _entries(owner, slug, **{"to": (now + timedelta(minutes=1)).isoformat()})) == len(everything) + 1
    assert await _entries(owner, slug, **{"to": (now - timedelta(days=1)).isoformat()}) == []


async def test_only_admins_read_the_log_and_bad_queries_are_refused(client, settings):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    slug = (await factory.create_org(owner))["slug"]
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, slug, member, settings.mail_dir)
    r = await member.get(f"/api/v1/orgs/{slug}/audit")
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    for query in ({"cursor": "nonsense"}, {"from": "2026-01-01T00:00:00"}, {"action": "DROP TABLE"}, {"limit": "101"}, {"limit": "0"}):
        r = await owner.get(f"/api/v1/orgs/{slug}/audit", params=query)
        assert r.status_code == 422, (query, r.text)
