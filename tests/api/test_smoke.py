from tests import factory


async def test_sign_up_create_org_and_read_it(client, services):
    alice = await factory.sign_up(client, "Alice")
    org = await factory.create_org(alice, "acme-smoke")
    r = await alice.get(f"/api/v1/orgs/{org['slug']}")
    assert r.status_code == 200, r.text
    assert r.json()["membership"]["is_super_admin"] is True
