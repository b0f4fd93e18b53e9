"""Web Push subscriptions through the API: the server's key, what an endpoint and its keys may be,
one row per endpoint and org, the cap per person, and nobody reaching another's subscriptions."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from feeds_server import limits
from feeds_server.api.app import create_app
from feeds_server.runtime.services import Services
from feeds_server.store.models import PushSubscription
from feeds_server.store.scope import account_session
from tests import factory
from tests.notify.push_service import b64, unb64
from tests.notify.push_service import browser_subscription as browser

base = factory.org_path


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    return await factory.team(client, settings.mail_dir)


async def test_public_key_is_an_uncompressed_p256_point_and_stable(client):
    r = await client.get("/api/v1/push/public-key")
    assert r.status_code == 200
    point = unb64(r.json()["public_key"])
    assert len(point) == 65 and point[0] == 4
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert (await client.get("/api/v1/push/public-key")).json() == r.json()



@pytest.mark.parametrize("subject, enabled", [("mailto:ops@feeds-server.net", True), ("", False)])
async def test_the_public_key_says_whether_pushes_go_out(settings, subject, enabled):
    """The laptop defaults (feeds@localhost, http://localhost) give no subject push services
    accept: the client is told pushes are off rather than subscribing for nothing."""
    laptop = replace(settings, vapid_subject=subject, mail_from="Feeds <feeds@localhost>", public_url="http://localhost:8000")
    services = Services.build(laptop)
    try:
        transport = httpx.ASGITransport(app=create_app(services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            body = (await c.get("/api/v1/push/public-key")).json()
    finally:
        await services.close()
    assert body["enabled"] is enabled and body["public_key"]


async def test_subscribe_list_refresh_and_remove(team):
    owner, ann, bob, org = team
    sub = browser()
    r = await ann.post(f"{base(org)}/push-subscriptions", json=sub)
    assert r.status_code == 201, r.text
    created = r.json()["subscription"]
    assert created["endpoint"] == sub["endpoint"] and set(created) == {"id", "endpoint", "created_at"}
    again = await ann.post(f"{base(org)}/push-subscriptions", json={**sub, "keys": browser()["keys"]})
    assert again.status_code == 201 and again.json()["subscription"]["id"] == created["id"]
    listed = (await ann.get(f"{base(org)}/push-subscriptions")).json()["subscriptions"]
    assert [s["id"] for s in listed] == [created["id"]]
    assert (await bob.get(f"{base(org)}/push-subscriptions")).json()["subscriptions"] == []
    # Bob signs in on the same browser: the subscription moves to him.
    moved = await bob.post(f"{base(org)}/push-subscriptions", json=sub)
    assert moved.json()["subscription"]["id"] == created["id"]
    assert (await ann.get(f"{base(org)}/push-subscriptions")).json()["subscriptions"] == []
    assert (await ann.delete(f"{base(org)}/push-subscriptions/{created['id']}")).status_code == 404
    assert (await bob.delete(f"{base(org)}/push-subscriptions/{created['id']}")).status_code == 204
    assert (await bob.get(f"{base(org)}/push-subscriptions")).json()["subscriptions"] == []


@pytest.mark.parametrize("endpoint", [
    "http://push.example.com/send/1",
    "ftp://push.example.com/send/1",
    "https://user:pw@push.example.com/send/1",
    "https://127.0.0.1/send/1",
    "https://10.1.2.3/send/1",
    "https://[::1]/send/1",
    "https://169.254.169.254/latest",
    "http://127.0.0.1:9/send/1",
    "https:///nohost",
    "https://push.example.com/a b",
])
async def test_endpoints_that_are_not_https_or_are_internal_are_refused(team, endpoint):
    _, ann, _, org = team
    r = await ann.post(f"{base(org)}/push-subscriptions", json=browser(endpoint))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in {"push_endpoint_not_allowed", "validation_failed"}


async def test_loopback_over_http_is_accepted_only_inside_the_allowed_networks(client, services, team):
    _, ann, _, org = team
    endpoint = "http://127.0.0.1:8999/push/x"
    assert (await ann.post(f"{base(org)}/push-subscriptions", json=browser(endpoint))).status_code == 422
    services.settings = replace(services.settings, push_allow_networks=("127.0.0.1/32",))
    assert (await ann.post(f"{base(org)}/push-subscriptions", json=browser(endpoint))).status_code == 201
    assert (await ann.post(f"{base(org)}/push-subscriptions", json=browser("http://10.0.0.1/push/x"))).status_code == 422


async def test_the_webhooks_allowed_networks_do_not_open_push_endpoints(client, services, team):
    """An operator's allowlist for the webhooks they configure is not one for endpoints any member picks."""
    _, ann, _, org = team
    services.settings = replace(services.settings, webhook_allow_networks=("127.0.0.0/8", "10.0.0.0/8"))
    for endpoint in ("http://127.0.0.1:8999/push/x", "https://10.1.2.3:8443/push/x", "https://127.0.0.1/push/x"):
        r = await ann.post(f"{base(org)}/push-subscriptions", json=browser(endpoint))
        assert r.status_code == 422, (endpoint, r.text)


async def test_padded_keys_are_kept_unpadded_and_overlong_padding_is_refused(services, team):
    _, ann, _, org = team
    sub = browser()
    padded = {"p256dh": sub["keys"]["p256dh"] + "=", "auth": sub["keys"]["auth"] + "=="}
    r = await ann.post(f"{base(org)}/push-subscriptions", json={**sub, "keys": padded})
    assert r.status_code == 201, r.text
    async with account_session(services.sessions) as session:
        row = (await session.execute(select(PushSubscription))).scalar_one()
    assert (row.p256dh, row.auth) == (sub["keys"]["p256dh"], sub["keys"]["auth"])
    # Padding that would not fit the column (and means nothing) is a 422, not a database error.
    for keys in ({**sub["keys"], "p256dh": sub["keys"]["p256dh"] + "=" * 100}, {**sub["keys"], "p256dh": sub["keys"]["p256dh"] + "==="}):
        r = await ann.post(f"{base(org)}/push-subscriptions", json={**sub, "keys": keys})
        assert r.status_code == 422, r.text


async def test_endpoint_length_boundary(team):
    _, ann, _, org = team
    prefix = "https://push.example.com/"
    longest = prefix + "a" * (limits.MAX_PUSH_ENDPOINT_CHARS - len(prefix))
    assert (await ann.post(f"{base(org)}/push-subscriptions", json=browser(longest))).status_code == 201
    assert (await ann.post(f"{base(org)}/push-subscriptions", json=browser(longest + "a"))).status_code == 422


@pytest.mark.parametrize("keys", [
    {"p256dh": b64(b"\x04" + b"\x01" * 64), "auth": b64(b"0123456789abcdef")},  # not on the curve
    {"p256dh": b64(b"\x04" + b"\x01" * 10), "auth": b64(b"0123456789abcdef")},  # too short
    {"p256dh": "not base64!", "auth": b64(b"0123456789abcdef")},
    {"p256dh": None, "auth": b64(b"0123456789abcdef")},
    {"auth": b64(b"0123456789abcdef")},
    {"p256dh": "PLACEHOLDER", "auth": b64(b"short")},
    {"p256dh": "PLACEHOLDER", "auth": b64(b"0123456789abcdefg")},
])
async def test_keys_that_cannot_encrypt_are_refused(team, keys):
    _, ann, _, org = team
    sub = browser()
    if keys.get("p256dh") == "PLACEHOLDER":
        keys = {**keys, "p256dh": sub["keys"]["p256dh"]}
    r = await ann.post(f"{base(org)}/push-subscriptions", json={**sub, "keys": keys})
    assert r.status_code == 422, r.text


async def test_at_most_the_limit_of_browsers_per_person_and_org(team):
    _, ann, _, org = team
    for i in range(limits.MAX_PUSH_SUBSCRIPTIONS_PER_MEMBER):
        assert (await ann.post(f"{base(org)}/push-subscriptions", json=browser(f"https://push.example.com/{i}"))).status_code == 201
    r = await ann.post(f"{base(org)}/push-subscriptions", json=browser("https://push.example.com/one-more"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "too_many_push_subscriptions"
    # Refreshing one already kept is not one more.
    assert (await ann.post(f"{base(org)}/push-subscriptions", json=browser("https://push.example.com/0"))).status_code == 201


async def test_another_orgs_subscription_is_404_and_untouched(client, settings, team):
    owner, ann, _, org = team
    sub_id = (await ann.post(f"{base(org)}/push-subscriptions", json=browser())).json()["subscription"]["id"]
    other = await factory.sign_up(client, factory.unique("Eve"))
    other_org = await factory.create_org(other)
    assert (await other.delete(f"{base(other_org)}/push-subscriptions/{sub_id}")).status_code == 404
    assert (await other.get(f"{base(other_org)}/push-subscriptions")).json()["subscriptions"] == []
    assert (await owner.delete(f"{base(org)}/push-subscriptions/{sub_id}")).status_code == 404
    assert [s["id"] for s in (await ann.get(f"{base(org)}/push-subscriptions")).json()["subscriptions"]] == [sub_id]


async def test_a_removed_member_keeps_no_subscription_in_the_org(client, services, team):
    owner, ann, bob, org = team
    await ann.post(f"{base(org)}/push-subscriptions", json=browser("https://push.example.com/ann"))
    await bob.post(f"{base(org)}/push-subscriptions", json=browser("https://push.example.com/bob"))
    assert (await owner.delete(f"{base(org)}/members/{ann.id}")).status_code in (200, 204)
    async with account_session(services.sessions) as session:
        left = {s.endpoint for s in (await session.execute(select(PushSubscription))).scalars()}
    assert left == {"https://push.example.com/bob"}
