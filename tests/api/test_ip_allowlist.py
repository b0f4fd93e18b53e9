"""IP allow-lists per org (F-SEC-4)."""

from __future__ import annotations

from feeds_server.domain import network
from tests import factory


def test_client_address_trusts_forwarded_for_only_from_trusted_proxies():
    assert network.client_address("203.0.113.9", "198.51.100.1", []) == "203.0.113.9"
    assert network.client_address("10.0.0.2", "198.51.100.1, 10.0.0.3", ["10.0.0.0/8"]) == "198.51.100.1"
    assert network.client_address("203.0.113.9", "198.51.100.1", ["10.0.0.0/8"]) == "203.0.113.9"
    assert network.allowed("10.1.2.3", ["10.0.0.0/8"]) and not network.allowed("11.0.0.1", ["10.0.0.0/8"])
    assert not network.allowed("garbage", ["10.0.0.0/8"]) and network.allowed(None, [])


async def test_requests_from_outside_the_allowlist_are_refused(client, services, settings):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    b = f"/api/v1/orgs/{org['slug']}"
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, org["slug"], member, settings.mail_dir)
    here = (await owner.get(f"{b}/ip-allowlist")).json()["your_address"]
    r = await owner.put(f"{b}/ip-allowlist", json={"ranges": ["10.0.0.0/8"]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "would_lock_you_out"
    assert (await owner.put(f"{b}/ip-allowlist", json={"ranges": ["not-an-ip"]})).status_code == 422
    assert (await member.put(f"{b}/ip-allowlist", json={"ranges": []})).status_code == 403
    assert (await owner.put(f"{b}/ip-allowlist", json={"ranges": [f"{here}/32", "10.0.0.0/8"]})).status_code == 200
    assert (await member.get(f"{b}/feed")).status_code == 200
    # Behind a trusted proxy, the forwarded address decides.
    services.settings = __import__("dataclasses").replace(services.settings, trusted_proxies=(f"{here}/32",))
    r = await member.get(f"{b}/feed", headers={"x-forwarded-for": "198.51.100.7"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "ip_not_allowed"
    assert (await member.get(f"{b}/feed", headers={"x-forwarded-for": "10.9.9.9"})).status_code == 200
    # Not a member: the answer stays "no such org", whatever the address.
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    r = await stranger.get(b, headers={"x-forwarded-for": "198.51.100.7"})
    assert r.status_code == 404
