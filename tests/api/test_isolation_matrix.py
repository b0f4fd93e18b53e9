"""Generated from the route table: permissions of every admin-only action, and isolation between
orgs for every org endpoint (F-ORG-8, F-ORG-9, F-SEC-1, F-SEC-3)."""

from __future__ import annotations

import pytest

from feeds_server.domain import permissions as perms
from feeds_server.notify.previews import make_previews
from tests import factory
from tests.api.routes_matrix import ep_id, example, fill, org_endpoints
from tests.notify.push_service import browser_subscription as push_subscription

ADMIN_ONLY = org_endpoints(lambda ep: ep.permission in {perms.ADMIN, perms.SUPER_ADMIN})
MANAGE_GROUPS = org_endpoints(lambda ep: ep.permission == perms.MANAGE_GROUPS)
WITH_IDS = org_endpoints(lambda ep: ":int}" in ep.path)
assert len(WITH_IDS) > 20, "the isolation matrix covers the routes with ids"
ANY_ID = {"user_id": 1, "node_id": 1, "profile_id": 1, "invitation_id": 1, "integration_id": 1, "group_id": 1,
          "post_id": 1, "comment_id": 1, "attachment_id": 1, "notification_id": 1, "record_id": 1, "rule_id": 1,
          "version_id": 1, "subscription_id": 1}
# A 2×2 PNG: the attachment of the populated org gets a thumbnail.
TINY_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x02\x08\x02\x00\x00\x00\xfd\xd4\x9as\x00\x00\x00"
            b"\x16IDATx\x9cc\xfc\xcf\xc0\xc0\xc0\xc0\xc0\xc4\xc0\xc0\xc0\xc0\xc0\x00\x00\r\x1d\x01\x03j\xc2\x9b\xe9\x00\x00\x00\x00IEND\xaeB`\x82")


async def _org_with_standard_member(client, settings):  # type: ignore[no-untyped-def]
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    member = await factory.sign_up(client, factory.unique("Member"))
    await factory.invite_and_join(owner, org["slug"], member, settings.mail_dir)
    return owner, org, member


async def test_every_admin_only_action_is_refused_to_a_standard_member(client, settings):
    """F-ORG-9: each admin-only endpoint answers 403 to a member without the permission, changing nothing."""
    owner, org, member = await _org_with_standard_member(client, settings)
    assert ADMIN_ONLY, "the route table has admin-only endpoints"
    for ep in ADMIN_ONLY + MANAGE_GROUPS:
        r = await member.client.request(ep.method, fill(ep, org["slug"], {**ANY_ID, "user_id": owner.id}), json=example(ep.body), headers=member.headers)
        assert r.status_code == 403, (ep_id(ep), r.text)
        assert r.json()["error"]["code"].endswith("_required"), ep_id(ep)


async def _populated_org(client, settings, services):  # type: ignore[no-untyped-def]
    """An org with one of everything an id in a path can name."""
    owner = await factory.sign_up(client, factory.unique("OwnerA"))
    org = await factory.create_org(owner, load_sample_data=True)
    slug = org["slug"]
    member = await factory.sign_up(client, factory.unique("MemberA"))
    await factory.invite_and_join(owner, slug, member, settings.mail_dir)
    ids = {"user_id": member.id}
    ids["profile_id"] = (await owner.get(f"/api/v1/orgs/{slug}/profiles")).json()["profiles"][-1]["id"]
    ids["invitation_id"] = (await owner.post(f"/api/v1/orgs/{slug}/invitations", json={"email": "later@example.com"})).json()["invitation"]["id"]
    integration = (await owner.post(f"/api/v1/orgs/{slug}/integrations", json={"name": "CRM"})).json()
    ids["integration_id"] = integration["integration"]["id"]
    r = await client.post(
        f"/api/v1/orgs/{slug}/integration/record-events", headers={"authorization": f"Bearer {integration['token']}"},
        json={"events": [{"event_id": "m1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Deal", "owner_email": owner.email}}]},
    )
    ids["record_id"] = r.json()["results"][0]["record_id"]
    ids["rule_id"] = (await owner.post(f"/api/v1/orgs/{slug}/rules", json={
        "name": "R", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1}})).json()["rule"]["id"]
    ids["group_id"] = (await owner.post(f"/api/v1/orgs/{slug}/groups", json={"name": "G", "sources": [{"type": "user", "id": owner.id}]})).json()["group"]["id"]
    post = (await owner.post(f"/api/v1/orgs/{slug}/posts", files=[("files", ("a.png", TINY_PNG, "image/png"))], data={"message": f'{{"body": "hi @[user:{member.id}]"}}'})).json()["post"]
    ids["post_id"] = post["id"]
    ids["attachment_id"] = post["attachments"][0]["id"]
    assert await make_previews(services, burst=True) == 1  # its preview and inline image exist: still 404 elsewhere
    ids["comment_id"] = (await owner.post(f"/api/v1/orgs/{slug}/posts/{post['id']}/comments", json={"body": "c"})).json()["comment"]["id"]
    await owner.patch(f"/api/v1/orgs/{slug}/posts/{post['id']}", json={"body": f"hello @[user:{member.id}]"})
    ids["version_id"] = (await owner.get(f"/api/v1/orgs/{slug}/posts/{post['id']}/history")).json()["versions"][1]["version_id"]
    for path in (f"posts/{post['id']}", f"comments/{ids['comment_id']}"):
        assert (await member.put(f"/api/v1/orgs/{slug}/{path}/reactions", json={"emoji": "👍", "on": True})).status_code == 200
    notes = (await member.get(f"/api/v1/orgs/{slug}/notifications")).json()["notifications"]
    ids["notification_id"] = notes[0]["id"]
    assert (await owner.put(f"/api/v1/orgs/{slug}/posts/{post['id']}/saved")).status_code == 200
    assert (await owner.put(f"/api/v1/orgs/{slug}/posts/{post['id']}/pin")).status_code == 200
    sub = (await owner.post(f"/api/v1/orgs/{slug}/push-subscriptions", json=push_subscription())).json()["subscription"]
    ids["subscription_id"] = sub["id"]
    assert (await owner.put(f"/api/v1/orgs/{slug}/mutes/record/{ids['record_id']}")).status_code == 200
    return owner, member, org, ids


async def _snapshot(owner, slug: str) -> dict:  # type: ignore[no-untyped-def]
    paths = ["", "/members?limit=100", "/roles", "/profiles", "/territories", "/groups", "/feed?limit=100",
             "/invitations", "/integrations", "/feed-modules", "/rules", "/followed-records", "/saved", "/pins",
             "/search?q=hello", "/search?q=type:comment", "/search?q=type:record", "/push-subscriptions",
             "/mutes", "/notification-settings"]
    return {p: (await owner.get(f"/api/v1/orgs/{slug}{p}")).json() for p in paths}


@pytest.mark.parametrize("node_kind", ["role", "territory"])
async def test_other_orgs_ids_answer_404_on_every_endpoint_and_change_nothing(client, settings, services, node_kind):
    """F-ORG-8: an admin of org B using org A's ids, through B's slug or A's, gets 404 every time."""
    owner_a, member_a, org_a, ids = await _populated_org(client, settings, services)
    ids["node_id"] = (await owner_a.get(f"/api/v1/orgs/{org_a['slug']}/{node_kind}s" if node_kind == "role" else f"/api/v1/orgs/{org_a['slug']}/territories")).json()[
        "roles" if node_kind == "role" else "territories"][-1]["id"]
    owner_b = await factory.sign_up(client, factory.unique("OwnerB"))
    org_b = await factory.create_org(owner_b)
    before = await _snapshot(owner_a, org_a["slug"])
    for ep in WITH_IDS:
        if "{node_id" in ep.path and f"/{node_kind}" not in ep.path:
            continue
        for slug in (org_b["slug"], org_a["slug"]):
            r = await owner_b.client.request(ep.method, fill(ep, slug, ids), json=example(ep.body), headers=owner_b.headers)
            assert r.status_code == 404, (ep_id(ep), slug, r.text)
    assert await _snapshot(owner_a, org_a["slug"]) == before


async def test_a_foreign_org_answers_exactly_like_one_that_does_not_exist(client, settings):
    owner, org, member = await _org_with_standard_member(client, settings)
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    for ep in org_endpoints():
        real = await stranger.client.request(ep.method, fill(ep, org["slug"], ANY_ID), json=example(ep.body), headers=stranger.headers)
        fake = await stranger.client.request(ep.method, fill(ep, "no-such-org", ANY_ID), json=example(ep.body), headers=stranger.headers)
        assert (real.status_code, factory.answer_of(real)) == (fake.status_code, factory.answer_of(fake)), ep_id(ep)
        assert real.status_code in (401, 404), ep_id(ep)


async def test_ids_inside_bodies_from_another_org_are_unknown(client, settings, services):
    owner_a, member_a, org_a, ids = await _populated_org(client, settings, services)
    owner_b = await factory.sign_up(client, factory.unique("OwnerB"))
    slug = (await factory.create_org(owner_b))["slug"]
    base = f"/api/v1/orgs/{slug}"
    cases = [
        ("POST", "/posts", {"body": "x", "group_id": ids["group_id"]}, 404),
        ("POST", "/posts", {"body": "x", "recipient_id": member_a.id}, 404),
        ("POST", "/posts", {"body": f"@[user:{member_a.id}]"}, 422),
        ("POST", "/posts", {"body": f"@[group:{ids['group_id']}]"}, 422),
        ("POST", "/groups", {"name": "Y", "sources": [{"type": "group", "id": ids["group_id"]}]}, 404),
        ("POST", "/groups", {"name": "Z", "sources": [{"type": "user", "id": member_a.id}]}, 404),
        ("POST", "/invitations", {"email": "n@example.com", "profile_id": ids["profile_id"]}, 404),
        ("PATCH", f"/members/{owner_b.id}", {"profile_id": ids["profile_id"]}, 404),
    ]
    for method, path, body, status in cases:
        r = await owner_b.client.request(method, base + path, json=body, headers=owner_b.headers)
        assert r.status_code == status, (method, path, r.text)


FEED_ENDPOINTS = org_endpoints(lambda ep: ep.permission == perms.FEEDS_TAB)


async def test_a_profile_without_the_feeds_tab_gets_403_on_every_feed_endpoint(client, settings):
    """F-ORG-9: a hidden Feeds tab means no feed at all."""
    owner, org, member = await _org_with_standard_member(client, settings)
    slug = org["slug"]
    prof = (await owner.post(f"/api/v1/orgs/{slug}/profiles", json={"name": "No feed", "permissions": []})).json()["profile"]
    assert (await owner.patch(f"/api/v1/orgs/{slug}/members/{member.id}", json={"profile_id": prof["id"]})).status_code == 200
    assert len(FEED_ENDPOINTS) > 10
    for ep in FEED_ENDPOINTS:
        r = await member.client.request(ep.method, fill(ep, slug, ANY_ID), json=example(ep.body), headers=member.headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "feeds_tab_required", ep_id(ep)


async def test_search_finds_nothing_of_another_org(client, settings, services):
    """F-ORG-8: org A's posts, comments and record updates are found in A, never through B or with B's caller."""
    owner_a, member_a, org_a, ids = await _populated_org(client, settings, services)
    owner_b = await factory.sign_up(client, factory.unique("OwnerB"))
    org_b = await factory.create_org(owner_b)
    queries = ["hello", "deal", "type:comment", "type:record", f"from:{owner_a.id}", f"in:{ids['group_id']}", "has:file"]
    found_in_a = {q: (await owner_a.get(f"/api/v1/orgs/{org_a['slug']}/search", params={"q": q})).json()["items"] for q in queries}
    assert all(found_in_a[q] for q in ("hello", "type:comment", "type:record", "has:file")), found_in_a
    for q in queries:
        r = await owner_b.get(f"/api/v1/orgs/{org_b['slug']}/search", params={"q": q})
        assert r.status_code == 200 and r.json()["items"] == [], (q, r.text)
        assert (await owner_b.get(f"/api/v1/orgs/{org_a['slug']}/search", params={"q": q})).status_code == 404
