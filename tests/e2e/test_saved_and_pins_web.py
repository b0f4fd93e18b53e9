"""Pinned posts and saved items in a browser: an admin pins, a member's page shows it on top at once;
a member saves a post and finds it under Saved."""

from __future__ import annotations

import pytest

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_pin_reaches_a_member_live_and_a_saved_post_is_listed_under_saved(web):
    admin, bob = await web.user("Admin"), await web.user("Bob")
    slug = await web.org(admin, bob)
    base = f"/api/v1/orgs/{slug}"
    assert (await bob.post(f"{base}/posts", json={"body": "Quarterly numbers are in"})).status_code == 201
    assert (await bob.post(f"{base}/posts", json={"body": "Lunch at noon"})).status_code == 201

    a = await web.page(admin, f"/#/org/{slug}/feed")
    b = await web.page(bob, f"/#/org/{slug}/feed")
    on_a = a.locator(".feed article.item", has_text="Quarterly numbers are in")
    await expect(b.locator(".feed article.item", has_text="Quarterly numbers are in").get_by_role("button", name="Pin", exact=True)).to_be_hidden()

    await on_a.get_by_role("button", name="Pin", exact=True).click()
    pinned_on_b = b.locator(".pinned-posts article.item", has_text="Quarterly numbers are in")
    await expect(pinned_on_b).to_be_visible(timeout=2000)
    await expect(pinned_on_b.locator(".pin-badge")).to_be_visible()
    # On top: the pinned section comes before the feed's newest post.
    assert await b.locator(".feed-wrap > :not([hidden])").first.get_attribute("class") == "pinned-posts"
    await expect(on_a.get_by_role("button", name="Unpin", exact=True)).to_be_visible()

    lunch = b.locator(".feed article.item", has_text="Lunch at noon")
    await lunch.get_by_role("button", name="Save", exact=True).click()
    await expect(lunch.get_by_role("button", name="Saved", exact=True)).to_be_visible()
    await b.get_by_role("link", name="Saved", exact=True).click()
    await expect(b.get_by_role("heading", name="Saved")).to_be_visible()
    await expect(b.locator(".feed article.item", has_text="Lunch at noon")).to_be_visible()
    await expect(b.locator(".feed article.item", has_text="Quarterly numbers are in")).to_have_count(0)

    # Unpinned live as well: the pinned section empties on the member's feed.
    await b.get_by_role("link", name="Feed", exact=True).click()
    await expect(b.locator(".pinned-posts article.item")).to_have_count(1)
    await a.locator(".pinned-posts article.item").get_by_role("button", name="Unpin", exact=True).click()
    await expect(b.locator(".pinned-posts article.item")).to_have_count(0, timeout=2000)


async def test_a_group_pin_shows_on_top_of_the_group_page(web):
    owner, bob = await web.user("Owner"), await web.user("Bob")
    slug = await web.org(owner, bob)
    base = f"/api/v1/orgs/{slug}"
    r = await owner.post(f"{base}/groups", json={"name": "Deals desk", "sources": [{"type": "user", "id": owner.id}, {"type": "user", "id": bob.id}]})
    group_id = r.json()["group"]["id"]
    assert (await bob.post(f"{base}/posts", json={"body": "Desk rota for December", "group_id": group_id})).status_code == 201
    assert (await bob.post(f"{base}/posts", json={"body": "Coffee machine fixed", "group_id": group_id})).status_code == 201

    a = await web.page(owner, f"/#/org/{slug}/group/{group_id}")
    b = await web.page(bob, f"/#/org/{slug}/group/{group_id}")
    await a.locator(".feed article.item", has_text="Desk rota for December").get_by_role("button", name="Pin", exact=True).click()
    pinned_on_b = b.locator(".pinned-posts article.item", has_text="Desk rota for December")
    await expect(pinned_on_b).to_be_visible(timeout=2000)
    await expect(pinned_on_b.locator(".pin-badge")).to_be_visible()
    # Not on the org feed: the pin belongs to the group.
    await b.get_by_role("link", name="Feed", exact=True).click()
    await expect(b.locator(".feed article.item", has_text="Desk rota for December")).to_be_visible()
    await expect(b.locator(".pinned-posts article.item")).to_have_count(0)
