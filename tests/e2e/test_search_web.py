"""Search in a browser: a member posts, another types words and a filter in the top bar's search box
and sees the hit with the matched word marked; markup in a post stays text."""

from __future__ import annotations

import pytest

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_post_is_found_from_the_search_box_with_its_words_marked(web):
    admin, bob = await web.user("Admin"), await web.user("Bob")
    slug = await web.org(admin, bob)
    base = f"/api/v1/orgs/{slug}"
    assert (await bob.post(f"{base}/posts", json={"body": "Les réunions <b>budget</b> commencent lundi"})).status_code == 201
    assert (await admin.post(f"{base}/posts", json={"body": "Lunch at noon"})).status_code == 201

    page = await web.page(admin, f"/#/org/{slug}/feed")
    box = page.get_by_role("searchbox", name="Search posts, messages and comments")
    await box.fill(f"reunion from:{bob.id}")
    await box.press("Enter")
    await expect(page.get_by_role("heading", name="Search")).to_be_visible()
    hits = page.locator(".search-hit")
    await expect(hits).to_have_count(1)
    await expect(hits.first).to_contain_text("Les réunions <b>budget</b> commencent lundi")
    await expect(hits.first.locator("mark")).to_have_text(["réunions"])
    assert await hits.first.locator("b").count() == 0  # the post's markup is text
    await box.fill("lunch from:me")
    await box.press("Enter")
    await expect(page.locator(".search-hit")).to_have_count(1)
    await expect(page.locator(".search-hit mark")).to_have_text(["Lunch"])
    await page.locator(".search-hit a").click()
    await expect(page.locator("article.item", has_text="Lunch at noon")).to_be_visible()
