"""Editing in a browser: the author edits a post in place, a colleague's page shows the new text live
with its "edited" marker, and the history dialog lists both texts (F-POST-9, F-RT-1)."""

from __future__ import annotations

import pytest

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_an_edit_reaches_a_colleague_live_and_the_history_shows_both_texts(web):
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"Quote for ACME ready, @[user:{bob.id}]"})
    assert r.status_code == 201, r.text

    a = await web.page(alice, f"/#/org/{slug}/feed")
    b = await web.page(bob, f"/#/org/{slug}/feed")
    on_a = a.locator("article.item", has_text="Quote for ACME")
    on_b = b.locator("article.item", has_text="Quote for ACME")
    await expect(on_b).to_be_visible()
    await expect(on_b.get_by_role("button", name="Edit this post")).to_have_count(0)  # not Bob's
    await expect(on_b.locator(".edited-marker")).to_be_hidden()

    await on_a.get_by_role("button", name="Edit this post").click()
    editor = on_a.get_by_label("Edit the post")
    await expect(editor).to_have_value(f"Quote for ACME ready, @{bob.name}")  # names, not tokens
    await editor.fill(f"Quote for ACME sent, @{bob.name}")
    await on_a.get_by_role("button", name="Save changes").click()
    await expect(on_a.locator(":scope > .text")).to_have_text(f"Quote for ACME sent, @{bob.name}")

    await expect(on_b.locator(":scope > .text")).to_have_text(f"Quote for ACME sent, @{bob.name}", timeout=2000)
    await expect(on_b.locator(".mention")).to_have_text(f"@{bob.name}")
    marker = on_b.locator(".edited-marker")
    await expect(marker).to_be_visible()
    assert (await marker.get_attribute("title")).startswith("Edited ")

    feed = (await bob.get(f"/api/v1/orgs/{slug}/feed")).json()["items"]
    assert feed[0]["body"] == f"Quote for ACME sent, @[user:{bob.id}]" and feed[0]["edited_at"]

    await marker.click()
    dialog = b.get_by_role("dialog", name="Edit history")
    await expect(dialog).to_be_visible()
    versions = dialog.locator(".version")
    await expect(versions).to_have_count(2)
    await expect(versions.nth(0)).to_contain_text("Quote for ACME sent")
    await expect(versions.nth(0)).to_contain_text("Current")
    await expect(versions.nth(1)).to_contain_text("Quote for ACME ready")
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_have_count(0)
