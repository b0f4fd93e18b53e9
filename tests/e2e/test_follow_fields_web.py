"""Choosing the fields a follow cares about on a record's page: the choice is saved, survives a reload
and is what the API reports for the follow."""

from __future__ import annotations

import pytest

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

from tests.e2e.test_pages import report_records

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_follower_chooses_one_field_and_it_is_kept(web):
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    record_id = (await report_records(alice, slug))["Busy deal"]

    b = await web.page(bob, f"/#/org/{slug}/record/{record_id}", live=False)
    fields = b.locator("button.follow-fields")
    await expect(fields).to_be_hidden()
    await b.get_by_role("button", name="Follow", exact=True).click()
    await expect(fields).to_have_text("Fields: All fields")

    await fields.click()
    panel = b.locator(".follow-fields-panel")
    await expect(panel.get_by_label("All fields")).to_be_checked()
    # Nothing ticked is refused before it reaches the server.
    await panel.get_by_label("All fields").uncheck()
    await panel.get_by_role("button", name="Save").click()
    await expect(panel.get_by_role("alert")).to_have_text("Choose at least one field, or All fields.")
    await panel.get_by_label("Stage", exact=True).check()
    await panel.get_by_role("button", name="Save").click()
    await expect(panel).to_be_hidden()
    await expect(fields).to_have_text("Fields: Stage")

    await b.reload()
    await expect(b.locator("button.follow-fields")).to_have_text("Fields: Stage")
    r = await bob.get(f"/api/v1/orgs/{slug}/records/{record_id}")
    assert r.status_code == 200, r.text
    assert r.json()["follow"]["fields"] == ["Stage"]
