"""Why something reached the reader, in a browser: the line under a notification and a feed item, and
its stop action (a muted record then shows on the settings page)."""

from __future__ import annotations

import pytest

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_mention_says_why_in_the_notification_and_in_the_feed(web):
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"Pricing review, @[user:{bob.id}]?"})
    assert r.status_code == 201, r.text

    b = await web.page(bob, f"/#/org/{slug}/notifications", live=False)
    row = b.locator(".notification", has_text=f"{alice.name} mentioned you")
    await expect(row.locator(".reason")).to_have_text("You were mentioned")
    await b.goto(f"{web.url}/#/org/{slug}/feed")
    item = b.locator(".feed article.item", has_text="Pricing review")
    await expect(item.locator(".reason-text")).to_have_text("You were mentioned")


async def test_muting_a_record_from_its_notification_lists_it_among_the_mutes(web):
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    token = (await alice.post(f"/api/v1/orgs/{slug}/integrations", json={"name": "CRM"})).json()["token"]
    events = [{"event_id": "m1", "type": "created", "module": "Deals",
               "record": {"id": "D-1", "name": "Globex <b>renewal</b>", "owner_email": bob.email}}]
    r = await alice.post(f"/api/v1/orgs/{slug}/integration/record-events", json={"events": events}, headers={"Authorization": f"Bearer {token}"})
    assert r.json()["results"][0]["status"] == "applied", r.text
    record_id = r.json()["results"][0]["record_id"]

    b = await web.page(bob, f"/#/org/{slug}/notifications", live=False)
    row = b.locator(".notification", has_text="Globex <b>renewal</b>")
    await expect(row.locator(".reason-text")).to_have_text("Because you own “Globex <b>renewal</b>”")
    await row.get_by_role("button", name="Mute record").click()
    await expect(row.locator(".reason .stopped")).to_have_text("Record muted.")
    mutes = (await bob.get(f"/api/v1/orgs/{slug}/mutes")).json()["mutes"]
    assert [(m.get("target_kind", m.get("kind")), m.get("target_id", m.get("id"))) for m in mutes] == [("record", record_id)]

    await b.get_by_role("link", name="Settings", exact=True).click()
    muted = b.locator("#mute-list .mute-row")
    await expect(muted).to_have_count(1)
    await expect(muted).to_contain_text("Globex <b>renewal</b>")
    await muted.get_by_role("button", name="Unmute Record: Globex <b>renewal</b>").click()
    await expect(muted).to_have_count(0)
    assert (await bob.get(f"/api/v1/orgs/{slug}/mutes")).json()["mutes"] == []
