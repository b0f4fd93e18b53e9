"""The other pages in a browser: sign-up and sign-in, invitations, the org switcher and the default
org, group pages, records (followed, dormant, the Follow button), feed modules, rules, notifications."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

from tests import factory
from tests.e2e.conftest import SECRET_KEY, wait_live

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def invite(admin: factory.Actor, slug: str, email: str) -> None:
    r = await admin.post(f"/api/v1/orgs/{slug}/invitations", json={"email": email})
    assert r.status_code == 201, r.text


async def test_sign_up_answer_invitations_switch_orgs_and_pick_a_default(web):
    """F-ORG-5, F-ORG-6, F-ORG-7, F-ORG-4 through the pages a new user meets."""
    admin = await web.user("Admin")
    slugs = [(await factory.create_org(admin, factory.unique("web")))["slug"] for _ in range(3)]
    name = factory.unique("Newcomer")
    email = f"{name.lower()}@example.com"
    for slug in slugs:
        await invite(admin, slug, email)

    page = await web.page(None, "/#/signup")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(factory.PASSWORD)
    await page.get_by_role("button", name="Create account").click()

    # Invitations wait for the address: the page says so until the emailed link is opened.
    await expect(page.get_by_role("heading", name="Your orgs")).to_be_visible()
    await expect(page.locator("#verification-pending")).to_contain_text(email)
    invitations = page.locator("[data-invitation]")
    await expect(invitations).to_have_count(0)
    user_id = (await factory.sign_in(admin.client, email)).id
    token = factory.verification_link(SECRET_KEY, user_id, email, datetime.now(UTC))
    await page.goto(f"{web.url}/#/verify-email/{token}")
    await expect(page.locator("main").get_by_role("status")).to_contain_text(f"{email} is confirmed")
    await page.get_by_role("link", name="Go on to Feeds").click()
    await expect(page.locator("#verification-pending")).to_have_count(0)
    await expect(invitations).to_have_count(3)
    await invitations.nth(2).get_by_role("button", name="Decline").click()
    await expect(invitations).to_have_count(2)
    await invitations.first.get_by_role("button", name="Accept").click()
    await expect(page).to_have_url(f"{web.url}/#/org/{slugs[0]}/feed")
    await wait_live(page)
    await page.get_by_role("link", name="Your orgs").click()
    await invitations.first.get_by_role("button", name="Accept").click()
    await expect(page).to_have_url(f"{web.url}/#/org/{slugs[1]}/feed")

    # The switcher moves between orgs without signing in again, and the connection follows.
    switcher = page.get_by_label("Switch org")
    await expect(switcher.locator("option:checked")).to_have_text(f"{slugs[1].title()} Inc")
    await switcher.select_option(slugs[0])
    await expect(page).to_have_url(f"{web.url}/#/org/{slugs[0]}/feed")
    await expect(switcher.locator("option:checked")).to_have_text(f"{slugs[0].title()} Inc (default)")
    await wait_live(page)
    # The connection of the org left behind is closed: only the open org's posts arrive.
    newcomer = await factory.sign_in(admin.client, email)
    for slug in (slugs[1], slugs[0]):
        r = await admin.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"News of {slug} for @[user:{newcomer.id}]"})
        assert r.status_code == 201, r.text
    await expect(page.locator("article.item", has_text=f"News of {slugs[0]}")).to_be_visible()
    await expect(page.locator("article.item", has_text=f"News of {slugs[1]}")).to_have_count(0)
    await expect(page.locator("#bell-count")).to_have_text("1")

    # Removed from the default org: the next visit asks which org to make the default.
    assert (await admin.delete(f"/api/v1/orgs/{slugs[0]}/members/{newcomer.id}")).status_code == 204
    await page.goto(f"{web.url}/")
    await page.reload()
    await expect(page.get_by_text("Pick the org Feeds should open")).to_be_visible()
    await page.get_by_role("button", name="Make default").click()
    await expect(page.locator(".org-row", has_text=f"{slugs[1].title()} Inc").get_by_text("Default")).to_be_visible()

    # Signing in through an org's address opens that org (F-ORG-4).
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in to Feeds")).to_be_visible()
    await page.goto(f"{web.url}/#/org/{slugs[1]}/groups")
    await expect(page.get_by_label("Org", exact=True)).to_have_value(slugs[1])
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(factory.PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{web.url}/#/org/{slugs[1]}/feed")


async def test_the_invitation_emails_link_opens_a_page_to_accept_or_decline(web):
    """F-ORG-5: the link in the invitation email (the only way into IP-restricted orgs) leads to a
    page that accepts or declines it."""
    admin, guest = await web.user("Admin"), await web.user("Guest")
    slugs = [(await factory.create_org(admin, factory.unique("web")))["slug"] for _ in range(2)]
    for slug in slugs:
        await invite(admin, slug, guest.email)
    mail_dir = send_due_mail(web.server)
    bodies = [m.get_body(preferencelist=("plain",)).get_content() for m in factory.mails(mail_dir) if m["To"] == guest.email]
    assert len(bodies) == 2
    # The link of the email about each org, in the order of `slugs`.
    urls = [re.search(r"http\S+/#/invitation/\S+", next(b for b in bodies if f"{slug.title()} Inc" in b)).group(0) for slug in slugs]  # type: ignore[union-attr]

    page = await web.page(guest, live=False)
    await page.goto(urls[1])
    await expect(page.get_by_role("heading", name="You have been invited")).to_be_visible()
    await page.get_by_role("button", name="Decline").click()
    await expect(page.get_by_role("heading", name="Your orgs")).to_be_visible()
    await page.goto(urls[0])
    await page.get_by_role("button", name="Accept").click()
    await expect(page).to_have_url(f"{web.url}/#/org/{slugs[0]}/feed")
    await wait_live(page)
    assert [m["org"]["slug"] for m in (await guest.get("/api/v1/me")).json()["orgs"]] == [slugs[0]]


def send_due_mail(server) -> Path:  # type: ignore[no-untyped-def]
    """Run the notifier once over the server's outbox; the emails land in its mail folder."""
    env = {**os.environ, **server.env}
    subprocess.run([sys.executable, "-m", "feeds_server.cli", "notifier", "--burst"], env=env, check=True, capture_output=True)
    return Path(server.env["FEEDS_DATA_DIR"]) / "mail"


async def test_a_group_made_in_the_form_has_a_page_with_members_and_its_feed(web):
    """F-FEED-3 and F-POST-4: a group made from the form; its members see its page and its posts,
    others get nothing."""
    alice, bob, outsider = await web.user("Alice"), await web.user("Bob"), await web.user("Olga")
    slug = await web.org(alice, bob, outsider)

    a = await web.page(alice, f"/#/org/{slug}/groups")
    await a.get_by_label("Name").fill("Key accounts")
    await a.get_by_label("Description").fill("Our ten biggest customers.")
    people = a.get_by_label("People", exact=True)
    for person in (alice, bob):
        await people.press_sequentially(person.name)
        await a.get_by_role("option", name=person.name).click()
    await expect(a.get_by_role("list", name="People: chosen").get_by_role("listitem")).to_have_count(2)
    await a.get_by_role("button", name="Create group").click()
    await expect(a.get_by_role("heading", name="Key accounts")).to_be_visible()
    group_id = int(a.url.rsplit("/", 1)[1])
    await a.get_by_role("link", name="Feed", exact=True).click()

    b = await web.page(bob, f"/#/org/{slug}/groups")
    await b.get_by_role("link", name="Key accounts").click()
    await expect(b.get_by_role("heading", name="Key accounts")).to_be_visible()
    await expect(b.get_by_text("Our ten biggest customers.")).to_be_visible()
    members = b.get_by_role("list", name="Members")
    await expect(members.get_by_text(alice.name, exact=True)).to_be_visible()
    await expect(members.get_by_text(bob.name, exact=True)).to_be_visible()
    await expect(members.get_by_text(outsider.name, exact=True)).to_have_count(0)

    await b.get_by_label("Write a post").fill("Renewal calls start Monday")
    await b.get_by_role("button", name="Post", exact=True).click()
    await expect(b.locator("article.item", has_text="Renewal calls start Monday")).to_be_visible()
    on_a = a.locator("article.item", has_text="Renewal calls start Monday")
    await expect(on_a).to_be_visible()
    await expect(on_a.get_by_role("link", name="Key accounts")).to_be_visible()

    o = await web.page(outsider, f"/#/org/{slug}/group/{group_id}")
    await expect(o.get_by_role("heading", name="Not found")).to_be_visible()
    await o.goto(f"{web.url}/#/org/{slug}/feed")
    await wait_live(o)
    await expect(o.locator("article.item", has_text="Renewal calls")).to_have_count(0)


async def report_records(owner: factory.Actor, slug: str) -> dict[str, int]:
    """Two Deals from the CRM: one untouched for 40 days, one fresh; their ids by name."""
    r = await owner.post(f"/api/v1/orgs/{slug}/integrations", json={"name": "CRM"})
    token = r.json()["token"]
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    events = [
        {"event_id": "e1", "type": "created", "module": "Deals", "occurred_at": old,
         "record": {"id": "D-1", "name": "Quiet deal", "owner_email": owner.email, "fields": {"Amount": 1000, "Stage": "Qualification"}}},
        {"event_id": "e2", "type": "created", "module": "Deals",
         "record": {"id": "D-2", "name": "Busy deal", "owner_email": owner.email, "fields": {"Amount": 90000, "Stage": "Negotiation"}}},
    ]
    r = await owner.post(f"/api/v1/orgs/{slug}/integration/record-events", json={"events": events}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    return {"Quiet deal": results[0]["record_id"], "Busy deal": results[1]["record_id"]}


async def test_records_followed_dormant_and_the_follow_button(web):
    """F-FOLLOW-9, F-FOLLOW-8 (slider 1–180), F-FOLLOW-2 and the business card (F-FEED-4)."""
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    ids = await report_records(alice, slug)

    a = await web.page(alice, f"/#/org/{slug}/feed")
    card = a.locator("article.item", has_text="Busy deal").locator(".record-card")
    await expect(card.get_by_role("link", name="Busy deal")).to_be_visible()
    await expect(card.get_by_text("90,000")).to_be_visible()

    await a.get_by_role("link", name="Records").click()
    followed = a.locator("#panel-followed .record-row")
    await expect(followed).to_have_count(2)
    await a.get_by_role("tab", name="Dormant records").click()
    dormant = a.locator("#panel-dormant .record-row")
    slider = a.get_by_label("No update for at least")
    await expect(slider).to_have_attribute("min", "1")
    await expect(slider).to_have_attribute("max", "180")
    await expect(dormant).to_have_count(1)
    await expect(dormant.first).to_contain_text("Quiet deal")
    await slider.fill("41")
    await expect(a.locator("#panel-dormant output")).to_have_text("41 days")
    await expect(dormant).to_have_count(0)
    await expect(a.get_by_text("No dormant records")).to_be_visible()

    b = await web.page(bob, f"/#/org/{slug}/record/{ids['Busy deal']}")
    await b.get_by_role("button", name="Follow").click()
    await expect(b.get_by_role("button", name="Unfollow")).to_be_visible()
    await b.get_by_role("link", name="← Records").click()
    await expect(b.locator("#panel-followed .record-row")).to_have_count(1)
    await b.get_by_role("button", name="Unfollow").click()
    await expect(b.locator("#panel-followed .record-row")).to_have_count(0)

    # The owner cannot unfollow: the server says why.
    await a.goto(f"{web.url}/#/org/{slug}/record/{ids['Busy deal']}")
    await a.get_by_role("button", name="Unfollow").click()
    await expect(a.locator(".toast.error")).to_be_visible()


async def test_admin_unticks_a_module_and_feeds_drop_it_live(web):
    """F-FEED-5 from the admin page; the feed filter by module (F-FEED-2)."""
    alice = await web.user("Alice")
    slug = await web.org(alice)
    await report_records(alice, slug)
    await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "A plain status post"})

    feed = await web.page(alice, f"/#/org/{slug}/feed")
    items = feed.locator("article.item")
    await expect(items).to_have_count(3)
    await feed.get_by_label("Module").fill("Deals")
    await expect(items).to_have_count(2)
    await feed.get_by_role("button", name="Clear filters").click()
    await expect(items).to_have_count(3)

    admin = await feed.context.new_page()
    await admin.goto(f"{web.url}/#/org/{slug}/admin")
    await admin.get_by_label("Deals", exact=True).uncheck()
    await admin.get_by_role("button", name="Save").click()
    await expect(admin.get_by_text("Feed modules saved.")).to_be_visible()
    await expect(items).to_have_count(1)
    await expect(items.first).to_contain_text("A plain status post")


async def test_rule_editor_previews_and_saves_a_rule(web):
    """F-FOLLOW-4 … F-FOLLOW-7: criteria built in the editor, followers beyond the creator (an
    admin's), previewed, saved, listed — and shared with the colleague it makes follow."""
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    await report_records(alice, slug)
    a = await web.page(alice, f"/#/org/{slug}/rules")
    await a.get_by_role("button", name="New rule").click()
    await a.get_by_label("Name").fill("Big deals")
    await a.get_by_label("Field").fill("Amount")
    await a.get_by_label("Operator").select_option(label="greater than")
    await a.get_by_label("Value").fill("50000")
    await a.get_by_label("People", exact=True).press_sequentially(bob.name)
    await a.get_by_role("option", name=bob.name).click()
    await a.get_by_role("button", name="Preview").click()
    preview = a.locator(".preview")
    await expect(preview).to_contain_text("Amount > 50000")
    await expect(preview.get_by_role("link", name="Busy deal")).to_be_visible()
    await expect(preview.locator("tr", has_text="Busy deal")).to_contain_text(f"{alice.name}, {bob.name}")
    await expect(preview.get_by_role("link", name="Quiet deal")).to_have_count(0)

    await a.get_by_role("button", name="+ Condition").click()
    await a.get_by_label("Field").nth(1).fill("Stage")
    await a.get_by_label("Type").nth(1).select_option("picklist")
    await a.get_by_label("Operator").nth(1).select_option(label="is one of")
    await a.get_by_label("Values, separated by commas").fill("Negotiation, Proposal")
    await a.get_by_role("button", name="Create rule").click()
    rule = a.locator(".rule", has_text="Big deals")
    await expect(rule.locator(".criteria-text")).to_have_text("Amount > 50000 and Stage in (Negotiation, Proposal)")
    stored = (await alice.get(f"/api/v1/orgs/{slug}/rules")).json()["created_by_me"][0]
    assert stored["criteria"] == {"and": [
        {"field": "Amount", "type": "number", "op": "gt", "value": 50000},
        {"field": "Stage", "type": "picklist", "op": "in", "value": ["Negotiation", "Proposal"]},
    ]}
    assert stored["followers"]["users"] == [bob.id]

    b = await web.page(bob, f"/#/org/{slug}/rules")
    await expect(b.locator(".rule", has_text="Big deals").locator(".criteria-text")).to_have_text("Amount > 50000 and Stage in (Negotiation, Proposal)")
    await expect(b.locator(".rule", has_text="Big deals").get_by_role("button", name="Edit")).to_have_count(0)


async def test_notifications_page_lists_and_marks_read(web):
    """F-NOTIF-1: the list, live arrivals, opening one marks it read, the bell follows."""
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    b = await web.page(bob, f"/#/org/{slug}/notifications")
    await expect(b.get_by_text("No notifications yet")).to_be_visible()
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"Lunch, @[user:{bob.id}]?"})
    post_id = r.json()["post"]["id"]
    row = b.locator(".notification", has_text=f"{alice.name} mentioned you")
    await expect(row).to_be_visible()
    await expect(row).to_have_class("notification unread")
    await expect(b.locator("#bell-count")).to_have_text("1")
    await row.get_by_role("link").click()
    await expect(b).to_have_url(f"{web.url}/#/org/{slug}/post/{post_id}")
    await expect(b.locator("#bell-count")).to_be_hidden()
    await expect(b.locator("article.item", has_text="Lunch")).to_be_visible()

    for text in ("Coffee", "Tea"):
        await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"{text}, @[user:{bob.id}]?"})
    await expect(b.locator("#bell-count")).to_have_text("2")
    await b.get_by_role("link", name="Notifications: 2 unread").click()
    await expect(b.locator(".notification.unread")).to_have_count(2)
    await b.get_by_role("button", name="Mark all as read").click()
    await expect(b.locator(".notification.unread")).to_have_count(0)
    await expect(b.locator("#bell-count")).to_be_hidden()

    switch = b.get_by_label("Email me when someone mentions me or a group I am in")
    await expect(switch).to_be_checked()
    await switch.uncheck()
    await expect(b.get_by_text("Mention emails are off.")).to_be_visible()
    settings = (await bob.get(f"/api/v1/orgs/{slug}/notification-settings")).json()["settings"]
    assert settings["mention_emails"] is False


# Every field has a label and every button or link a name; every control the page shows can be
# reached with Tab (the checks a screen reader and a keyboard user depend on).
A11Y_PROBLEMS = """() => {
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const name = (el) => (el.getAttribute('aria-label') || el.getAttribute('title') || el.textContent || '').trim()
    || [...(el.labels || [])].map((l) => l.textContent.trim()).join('')
    || (el.getAttribute('aria-labelledby') || '').split(' ').map((id) => document.getElementById(id)?.textContent.trim() || '').join('');
  const problems = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')) problems.push(`no label: ${el.outerHTML}`);
  }
  for (const el of document.querySelectorAll('a[href], button')) {
    if (visible(el) && !name(el)) problems.push(`no name: ${el.outerHTML}`);
  }
  return problems;
}"""
FOCUSABLE = """() => [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
  .filter((el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0 && !el.closest('[hidden], [inert]'))"""



async def test_a_record_batch_reaches_the_bell_and_the_list_at_once(web):
    """F-NOTIF-1: the three items of one batch of record events arrive as one publication; the bell
    counts all three and the list shows them newest first."""
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    b = await web.page(bob, f"/#/org/{slug}/notifications")
    await expect(b.get_by_text("No notifications yet")).to_be_visible()
    token = (await alice.post(f"/api/v1/orgs/{slug}/integrations", json={"name": "CRM"})).json()["token"]
    events = [{"event_id": f"b{i}", "type": "created", "module": "Deals", "record": {"id": f"D-{i}", "name": f"Deal {i}", "owner_email": bob.email}}
              for i in range(3)]
    r = await alice.post(f"/api/v1/orgs/{slug}/integration/record-events", json={"events": events}, headers={"Authorization": f"Bearer {token}"})
    assert [x["status"] for x in r.json()["results"]] == ["applied"] * 3
    await expect(b.locator("#bell-count")).to_have_text("3")
    await expect(b.locator(".notification.unread")).to_have_count(3)
    await expect(b.locator(".notification .title")).to_have_text([f"Deals record “Deal {i}” was created" for i in (2, 1, 0)])

async def check_page(page) -> None:  # type: ignore[no-untyped-def]
    """No unnamed control, and Tab visits every control on the page."""
    assert await page.evaluate(A11Y_PROBLEMS) == [], page.url
    count = await page.evaluate(f"({FOCUSABLE})().length")
    await page.evaluate("() => { window.__tabbed = new Set(); document.addEventListener('focusin', (e) => window.__tabbed.add(e.target)); }")
    missed: list[str] = []
    for presses in range(1, 2 * count + 10):  # around the page once, from wherever the focus starts
        await page.keyboard.press("Tab")
        if presses >= count:
            missed = await page.evaluate(f"() => ({FOCUSABLE})().filter((el) => !window.__tabbed.has(el)).map((el) => el.outerHTML.slice(0, 120))")
            if not missed:
                return
    assert missed == [], page.url


async def tab_to(page, target) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until `target` (a locator) has the focus."""
    for _ in range(80):
        if await target.evaluate("(el) => el === document.activeElement"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {target}")


async def test_every_control_is_named_and_reachable_by_tab_on_every_page(web):
    """Keyboard and screen-reader basics on every page: labelled fields, named buttons and links,
    each control reachable with Tab, and sign-in driven by keys alone."""
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    ids = await report_records(alice, slug)
    group_id = (await alice.post(f"/api/v1/orgs/{slug}/groups", json={"name": "Key accounts", "sources": [{"type": "user", "id": alice.id}]})).json()["group"]["id"]
    r = await bob.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"Welcome @[user:{alice.id}]!"})
    await bob.post(f"/api/v1/orgs/{slug}/posts/{r.json()['post']['id']}/comments", json={"body": "Thanks!"})
    await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "Kick-off at 10"})

    page = await web.page(None, "/#/signin")
    await check_page(page)
    await page.get_by_label("Email").focus()
    await page.keyboard.type(alice.email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(factory.PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{web.url}/#/org/{slug}/feed")
    await wait_live(page)
    for path in ["feed", f"post/{r.json()['post']['id']}", "groups", f"group/{group_id}", "records", "records?tab=dormant",
                 f"record/{ids['Busy deal']}", "rules", "notifications", "admin"]:
        await page.goto(f"{web.url}/#/org/{slug}/{path}")
        await page.locator("main h1").first.wait_for()
        await page.locator("main .muted", has_text="Loading…").wait_for(state="detached")
        if path == "rules":
            await page.get_by_role("button", name="New rule").click()
            await page.get_by_role("button", name="+ Group").click()
        await check_page(page)
    await page.goto(f"{web.url}/#/orgs")
    await page.get_by_role("heading", name="Create an org").wait_for()
    await check_page(page)


async def test_posting_commenting_and_deleting_from_the_keyboard_alone(web):
    """The wall without a mouse: a post with a mention picked by arrows, a comment sent with
    Ctrl+Enter, a deletion confirmed — Tab, arrows, Enter only."""
    alice, bob = await web.user("Alice"), await web.user("Bob")
    slug = await web.org(alice, bob)
    a = await web.page(alice, f"/#/org/{slug}/feed")
    await page_ready(a)
    await a.keyboard.press("Tab")
    await expect(a.get_by_role("link", name="Skip to content")).to_be_focused()
    box = a.get_by_label("Write a post")
    await tab_to(a, box)
    await a.keyboard.type("Thanks @" + bob.name[:3])
    await expect(a.get_by_role("option", name=bob.name)).to_be_visible()
    await a.keyboard.press("ArrowDown")
    await a.keyboard.press("ArrowUp")
    await a.keyboard.press("Enter")
    await a.keyboard.type("for the intro.")
    await tab_to(a, a.get_by_role("button", name="Post", exact=True))
    await a.keyboard.press("Enter")
    posted = a.locator("article.item", has_text="for the intro.")
    await expect(posted.locator(".mention")).to_have_text(f"@{bob.name}")

    await tab_to(a, posted.get_by_role("button", name="Comment"))
    await a.keyboard.press("Enter")
    await expect(posted.get_by_label("Comment", exact=True)).to_be_focused()
    await a.keyboard.type("Meeting on Friday.")
    await a.keyboard.press("Control+Enter")
    await expect(posted.locator(".comment", has_text="Meeting on Friday.")).to_be_visible()

    await tab_to(a, posted.get_by_role("button", name="Delete this post"))
    await a.keyboard.press("Enter")
    await expect(posted.get_by_role("button", name="Delete post")).to_be_focused()
    await a.keyboard.press("Enter")
    await expect(posted).to_have_count(0)


async def page_ready(page) -> None:  # type: ignore[no-untyped-def]
    await page.locator("main h1").first.wait_for()
    await page.evaluate("document.activeElement?.blur()")
