"""The notification settings page in a browser: a choice saved there is what the server keeps, and
what the server refuses is shown with its own message."""

from __future__ import annotations

import pytest

from tests.e2e.test_pages import A11Y_PROBLEMS

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_preference_saved_on_the_settings_page_is_kept_after_a_reload(web):
    alice = await web.user("Alice")
    slug = await web.org(alice)
    page = await web.page(alice, f"/#/org/{slug}/notifications/settings", live=False)

    push_for_records = page.get_by_label("Changes to records I follow: Push")
    await expect(push_for_records).not_to_be_checked()
    await page.locator("#mute-list").wait_for(state="attached")
    assert await page.evaluate(A11Y_PROBLEMS) == []
    await push_for_records.check()
    await page.get_by_label("Quiet hours: hold email and push from").check()
    await page.get_by_label("Quiet hours start").fill("21:30")
    await page.get_by_label("Quiet hours end").fill("06:45")
    await page.get_by_label("Digest email").select_option("weekly")
    await page.get_by_label("On", exact=True).select_option("Friday")
    await page.get_by_label("Time zone").select_option("Europe/Paris")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.get_by_text("Notification settings saved.")).to_be_visible()

    settings = (await alice.get(f"/api/v1/orgs/{slug}/notification-settings")).json()["settings"]
    assert settings["channels"]["record_followed"]["push"] is True
    assert settings["quiet_hours"] == {"start": "21:30", "end": "06:45"}
    assert settings["digest"]["frequency"] == "weekly" and settings["digest"]["weekday"] == 4
    assert settings["time_zone"] == "Europe/Paris"

    await page.reload()
    await expect(page.get_by_label("Changes to records I follow: Push")).to_be_checked()
    await expect(page.get_by_label("Quiet hours start")).to_have_value("21:30")
    await expect(page.get_by_label("Time zone")).to_have_value("Europe/Paris")
    await expect(page.get_by_label("On", exact=True)).to_have_value("4")

    # Out of range: the server's message is shown, and nothing changes.
    await page.get_by_label("Merge changes to one record within (seconds)").fill("999999")
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.locator("#notification-settings .error")).to_be_visible()
    settings = (await alice.get(f"/api/v1/orgs/{slug}/notification-settings")).json()["settings"]
    assert settings["record_merge_seconds"] == 60

    # Snooze for an hour: the page says until when.
    await page.get_by_role("button", name="For 1 hour").click()
    await expect(page.locator("#snooze-state")).to_contain_text("Snoozed until")
    assert (await alice.get(f"/api/v1/orgs/{slug}/notification-settings")).json()["settings"]["snooze_until"]


async def test_the_org_switcher_shows_another_orgs_unread_count_live(web):
    alice, bob = await web.user("Alice"), await web.user("Bob")
    home = await web.org(bob)
    other = await web.org(alice, bob)
    page = await web.page(bob, f"/#/org/{home}/feed")
    option = page.locator(f'#org-switch option[value="{other}"]')
    await expect(option).not_to_contain_text("unread")

    r = await alice.post(f"/api/v1/orgs/{other}/posts", json={"body": f"Budget sign-off, @[user:{bob.id}]"})
    assert r.status_code == 201, r.text
    await expect(option).to_contain_text("· 1 unread")
    # The open org's own count is the bell's, not the switcher's.
    await expect(page.locator(f'#org-switch option[value="{home}"]')).not_to_contain_text("unread")
