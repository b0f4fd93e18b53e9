"""Reactions in the browser: the picker, chips with counts, one's own highlighted, and live counts on
a colleague's page."""

from __future__ import annotations

import re

import pytest

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

pytestmark = pytest.mark.asyncio(loop_scope="module")


def item(page, text: str):  # type: ignore[no-untyped-def]
    return page.locator("article.item", has_text=text)


def chip(item_locator, emoji: str):  # type: ignore[no-untyped-def]
    return item_locator.locator(f".reactions >> .reaction-chip[data-emoji='{emoji}']").first


async def test_a_reaction_in_one_browser_shows_live_with_its_count_in_another(web):
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "Shipped the new quote template"})
    assert r.status_code == 201
    a = await web.page(alice, f"/#/org/{slug}/feed")
    b = await web.page(bob, f"/#/org/{slug}/feed")
    on_a, on_b = item(a, "Shipped the new quote template"), item(b, "Shipped the new quote template")
    await expect(on_b).to_be_visible()

    # Bob picks 🎉: his chip is highlighted as his; Alice sees the count arrive live.
    await on_b.get_by_role("button", name="Add a reaction").first.click()
    await on_b.get_by_role("button", name="React with 🎉").first.click()
    await expect(chip(on_b, "🎉")).to_have_attribute("aria-pressed", "true")
    await expect(chip(on_b, "🎉").locator(".reaction-count")).to_have_text("1")
    await expect(chip(on_a, "🎉").locator(".reaction-count")).to_have_text("1", timeout=2000)
    await expect(chip(on_a, "🎉")).to_have_attribute("aria-pressed", "false")

    # Alice adds hers by clicking the chip: 2 on both pages, each highlighting their own.
    await chip(on_a, "🎉").click()
    await expect(chip(on_a, "🎉").locator(".reaction-count")).to_have_text("2")
    await expect(chip(on_a, "🎉")).to_have_attribute("aria-pressed", "true")
    await expect(chip(on_b, "🎉").locator(".reaction-count")).to_have_text("2", timeout=2000)

    # Any emoji typed in the picker; text is refused with the server's message.
    await on_b.get_by_role("button", name="Add a reaction").first.click()
    await on_b.get_by_label("Any emoji").first.fill("🚀")
    await on_b.get_by_label("Any emoji").first.press("Enter")
    await expect(chip(on_a, "🚀").locator(".reaction-count")).to_have_text("1", timeout=2000)

    # Bob takes his 🎉 back.
    await chip(on_b, "🎉").click()
    await expect(chip(on_b, "🎉")).to_have_attribute("aria-pressed", "false")
    await expect(chip(on_a, "🎉").locator(".reaction-count")).to_have_text("1", timeout=2000)
    got = (await alice.get(f"/api/v1/orgs/{slug}/posts/{r.json()['post']['id']}/reactions")).json()
    assert got["reactions"] == [{"emoji": "🎉", "count": 1}, {"emoji": "🚀", "count": 1}]

    # Pointing at a chip tells who reacted with it.
    await chip(on_a, "🚀").hover()
    await expect(chip(on_a, "🚀")).to_have_attribute("title", re.compile(re.escape(bob.name)))
