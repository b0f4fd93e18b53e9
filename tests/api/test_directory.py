"""Roles and territories as trees, profiles and permissions, integration tokens (F-ORG-9 … F-ORG-11)."""

from __future__ import annotations

from tests import factory


async def _owner_org(client):  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    return owner, f"/api/v1/orgs/{org['slug']}"


async def test_role_tree_refuses_cycles_and_deleting_moves_children_up(client, settings):
    owner, base = await _owner_org(client)
    ceo = (await owner.get(f"{base}/roles")).json()["roles"][0]
    vp = (await owner.post(f"{base}/roles", json={"name": "VP", "parent_id": ceo["id"]})).json()["role"]
    mgr = (await owner.post(f"{base}/roles", json={"name": "Manager", "parent_id": vp["id"]})).json()["role"]
    rep = (await owner.post(f"{base}/roles", json={"name": "Rep", "parent_id": mgr["id"]})).json()["role"]
    for node, parent in ((ceo, rep), (vp, vp), (vp, mgr)):
        r = await owner.patch(f"{base}/roles/{node['id']}", json={"parent_id": parent["id"]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "hierarchy_cycle"
    assert (await owner.patch(f"{base}/roles/{rep['id']}", json={"parent_id": None})).json()["role"]["parent_id"] is None
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, base.rsplit("/", 1)[1], member, settings.mail_dir, role_id=mgr["id"])
    assert (await owner.delete(f"{base}/roles/{vp['id']}")).status_code == 204
    roles = {r["name"]: r for r in (await owner.get(f"{base}/roles")).json()["roles"]}
    assert roles["Manager"]["parent_id"] == ceo["id"]
    assert (await owner.delete(f"{base}/roles/{mgr['id']}")).status_code == 204
    assert (await owner.get(f"{base}/members/{member.id}")).json()["member"]["role_id"] is None
    r = await owner.post(f"{base}/roles", json={"name": "rep"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "name_taken"


async def test_profiles_carry_known_permissions_and_one_in_use_cannot_go(client, settings):
    owner, base = await _owner_org(client)
    r = await owner.post(f"{base}/profiles", json={"name": "Bad", "permissions": ["fly"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_permission"
    prof = (await owner.post(f"{base}/profiles", json={"name": "Readers", "permissions": ["feeds_tab"]})).json()["profile"]
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, base.rsplit("/", 1)[1], member, settings.mail_dir, profile_id=prof["id"])
    r = await owner.delete(f"{base}/profiles/{prof['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "profile_in_use"
    org = (await member.get(base)).json()
    assert org["membership"]["permissions"] == ["feeds_tab"]


async def test_territory_tree_and_members(client, settings):
    owner, base = await _owner_org(client)
    emea = (await owner.post(f"{base}/territories", json={"name": "EMEA"})).json()["territory"]
    dach = (await owner.post(f"{base}/territories", json={"name": "DACH", "parent_id": emea["id"]})).json()["territory"]
    r = await owner.patch(f"{base}/territories/{emea['id']}", json={"parent_id": dach["id"]})
    assert r.status_code == 422
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, base.rsplit("/", 1)[1], member, settings.mail_dir)
    assert (await owner.put(f"{base}/territories/{dach['id']}/members/{member.id}")).status_code == 204
    assert (await owner.get(f"{base}/territories/{dach['id']}")).json()["member_ids"] == [member.id]
    assert (await owner.delete(f"{base}/territories/{dach['id']}/members/{member.id}")).status_code == 204
    assert (await owner.delete(f"{base}/territories/{dach['id']}/members/{member.id}")).status_code == 404


async def test_integration_tokens_are_shown_once_bound_to_the_org_and_revocable(client):
    owner, base = await _owner_org(client)
    r = await owner.post(f"{base}/integrations", json={"name": "CRM back end"})
    assert r.status_code == 201 and r.json()["token"].startswith("fsk_")
    listed = (await owner.get(f"{base}/integrations")).json()["integrations"]
    assert "token" not in listed[0] and listed[0]["revoked_at"] is None
    assert (await owner.delete(f"{base}/integrations/{listed[0]['id']}")).status_code == 204
    assert (await owner.get(f"{base}/integrations")).json()["integrations"][0]["revoked_at"] is not None
