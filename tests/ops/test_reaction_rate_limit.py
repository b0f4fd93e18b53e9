"""Reaction toggles have a budget per user of their own (each is an event), apart from posting."""

from __future__ import annotations

import pytest

from tests import factory

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # the limits are the same on PostgreSQL


async def test_reactions_spend_their_own_budget_per_user(limited_client, settings, services):
    client = await limited_client(rate_reactions_per_user=(3, 60), rate_posts_per_user=(2, 60))
    alice = await factory.sign_up(client, factory.unique("Alice"))
    bob = await factory.sign_up(client, factory.unique("Bob"))
    org = await factory.create_org(alice)
    await factory.invite_and_join(alice, org["slug"], bob, settings.mail_dir, client._transport.app.state.services)
    base = f"/api/v1/orgs/{org['slug']}"
    post_id = (await alice.post(f"{base}/posts", json={"body": "one"})).json()["post"]["id"]
    url = f"{base}/posts/{post_id}/reactions"
    for on in (True, False, True):  # the 3rd: allowed
        assert (await alice.put(url, json={"emoji": "👍", "on": on})).status_code == 200
    r = await alice.put(url, json={"emoji": "🎉", "on": True})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["details"]["limit"] == "reactions_per_user"
    assert (await bob.put(url, json={"emoji": "🎉", "on": True})).status_code == 200  # his own budget
    assert (await alice.post(f"{base}/posts", json={"body": "posting is counted apart"})).status_code == 201
    got = (await bob.get(url)).json()["reactions"]
    assert got == [{"emoji": "👍", "count": 1}, {"emoji": "🎉", "count": 1}]
