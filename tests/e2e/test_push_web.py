"""Desktop notifications in Chromium: the service worker shows what is pushed to it, and the settings
page subscribes the browser and unsubscribes it.

Chromium's own push service is out of reach here, so a push message is delivered to the worker through
the DevTools protocol (`ServiceWorker.deliverPushMessage`), and the subscription the page sends the
server is one of the local push endpoint's: `PushManager.subscribe`, the one call that needs Chromium's
push service, hands the page that endpoint's URL and keys instead.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factory
from tests.e2e.conftest import web_env
from tests.notify.push_service import PushService, push_service  # noqa: F401 - a fixture
from tests.server import ServerProcess, free_port

try:
    from playwright.async_api import expect
except ImportError:  # the `chromium` fixture reports it: a skip here, a failure under CI
    expect = None

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUBSCRIPTION_KEY = "test.push-subscription"
WAIT_SECONDS = 10  # for the worker to start and show a notification, on a busy machine too
WAIT_MS = WAIT_SECONDS * 1000

# PushManager without Chromium's push service: `subscribe` answers with the endpoint and keys given
# (and remembers the applicationServerKey it was called with), `getSubscription` finds it again.
FAKE_PUSH_MANAGER = """
(() => {
  const fake = %s;
  const KEY = %s;
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  const make = (serverKey) => ({
    endpoint: fake.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true, applicationServerKey: bytes(serverKey) },
    toJSON() { return { endpoint: fake.endpoint, expirationTime: null, keys: fake.keys }; },
    async unsubscribe() { localStorage.removeItem(KEY); return true; },
  });
  PushManager.prototype.subscribe = async function (options) {
    const key = btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey)));
    localStorage.setItem(KEY, key);
    return make(key);
  };
  PushManager.prototype.getSubscription = async function () {
    const key = localStorage.getItem(KEY);
    return key ? make(key) : null;
  };
})();
"""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def web_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The e2e server, allowed to push to a loopback endpoint (the local push service)."""
    data_dir = tmp_path_factory.mktemp("web-push")
    shutil.copy(sqlite_template, data_dir / "feeds.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = web_env(url, data_dir, f"sqlite+aiosqlite:///{data_dir / 'feeds.db'}")
    env["FEEDS_PUSH_ALLOW_NETWORKS"] = "127.0.0.0/8"
    env["FEEDS_VAPID_SUBJECT"] = "mailto:ops@example.com"
    server = ServerProcess(env, port=port, log_path=data_dir / "server.log")
    server.start()
    yield server
    server.stop()


def run_notifier(env: dict[str, str]) -> None:
    """`feeds-server notifier --burst` against the page's server: sends what is due, then exits."""
    done = subprocess.run(
        [sys.executable, "-m", "feeds_server.cli", "notifier", "--burst"], env={**os.environ, **env},
        capture_output=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def wait_away(env: dict[str, str], user_id: int, timeout: float = 15.0) -> None:
    """Until the server has dropped the person's presence row (written a second after they leave)."""
    path = env["FEEDS_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    deadline = time.monotonic() + timeout
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout) as db:
        while db.execute("SELECT count(*) FROM presence WHERE user_id = ?", (user_id,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the person still counts as online"
            time.sleep(0.1)


async def push_page(web: Any, actor: Any, path: str, subscription: dict[str, Any]) -> Any:
    """A signed-in page whose browser may show notifications and subscribes to `subscription`."""
    ctx = await web.context()
    await ctx.grant_permissions(["notifications"], origin=web.url)
    await ctx.add_init_script(f"window.localStorage.setItem('feeds.token', {actor.token!r});")
    await ctx.add_init_script(FAKE_PUSH_MANAGER % (json.dumps(subscription), json.dumps(SUBSCRIPTION_KEY)))
    page = await ctx.new_page()
    page.on("pageerror", lambda exc: web.errors.append(str(exc)))
    await page.goto(web.url + path)
    return page


class WorkerPush:
    """Delivers push messages to the page's service worker through the DevTools protocol."""

    def __init__(self, page: Any, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.registrations: dict[str, str] = {}
        self.cdp: Any = None

    async def start(self) -> None:
        self.cdp = await self.page.context.new_cdp_session(self.page)
        self.cdp.on("ServiceWorker.workerRegistrationUpdated", self._registrations)
        await self.cdp.send("ServiceWorker.enable")

    def _registrations(self, event: dict[str, Any]) -> None:
        for reg in event["registrations"]:
            if not reg.get("isDeleted"):
                self.registrations[reg["scopeURL"]] = reg["registrationId"]

    async def deliver(self, data: str) -> None:
        scope = self.origin + "/"
        deadline = time.monotonic() + WAIT_SECONDS
        while scope not in self.registrations and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.cdp.send("ServiceWorker.deliverPushMessage",
                            {"origin": self.origin, "registrationId": self.registrations[scope], "data": data})


async def shown(page: Any, tag: str = "", count: int = 1) -> list[dict[str, Any]]:
    """The notifications the service worker shows (with `tag`), once there are `count` of them."""
    script = """async (tag) => {
      const reg = await navigator.serviceWorker.ready;
      return (await reg.getNotifications(tag ? { tag } : {})).map((n) => ({
        title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url }));
    }"""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = await page.evaluate(script, tag)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} notification(s) tagged {tag!r} expected, the worker shows {found}")


async def test_turning_on_subscribes_the_browser_and_the_worker_shows_a_push(web, push_service: PushService):
    bob = await web.user("Bob")
    slug = await web.org(bob)
    subscription = push_service.new_subscription()
    endpoint = subscription["endpoint"]
    page = await push_page(web, bob, f"/#/org/{slug}/notifications/settings", subscription)
    worker = WorkerPush(page, web.url)
    await worker.start()

    box = page.locator("#push-settings .push-settings")
    await expect(box).to_have_attribute("data-state", "off", timeout=WAIT_MS)
    await box.get_by_role("button", name="Turn on").click()
    await expect(box).to_have_attribute("data-state", "on", timeout=WAIT_MS)
    await expect(box.get_by_role("button", name="Turn off")).to_be_visible()

    # The server keeps the browser's endpoint for this org; the browser subscribed with the server's key.
    [stored] = (await bob.get(f"/api/v1/orgs/{slug}/push-subscriptions")).json()["subscriptions"]
    assert stored["endpoint"] == endpoint
    server_key = (await bob.get("/api/v1/push/public-key")).json()["public_key"]
    used_key = await page.evaluate(f"localStorage.getItem({json.dumps(SUBSCRIPTION_KEY)})")
    assert b64url(base64.b64decode(used_key)) == server_key

    # A push shaped as the server sends it shows as a notification, tagged, opening a page of the app.
    payload = {"title": "Ann mentioned you", "body": "hello @Bob", "url": f"/#/org/{slug}/notifications",
               "tag": f"{slug}:n:1", "kind": "mention", "org": slug, "notification_id": 1}
    await worker.deliver(json.dumps(payload))
    [note] = await shown(page, payload["tag"])
    assert note == {"title": "Ann mentioned you", "body": "hello @Bob", "tag": payload["tag"], "url": f"{web.url}/#/org/{slug}/notifications"}

    # Whatever arrives shows something (a silent push would cost the permission); a foreign url is not followed.
    await worker.deliver("not json")
    await worker.deliver(json.dumps({"title": "Elsewhere", "url": "https://example.com/phish", "tag": "other"}))
    [elsewhere] = await shown(page, "other")
    assert elsewhere["url"] == web.url + "/"
    titles = [n["title"] for n in await shown(page, count=3)]
    assert sorted(titles) == ["Ann mentioned you", "Elsewhere", "Feeds"]

    # A click on it brings the open page to its url (the worker's click handler, called as a click
    # would; a page cannot click a desktop notification). A foreign url leads to the start page.
    [sw] = page.context.service_workers
    await sw.evaluate(f"openApp(sameOriginUrl({json.dumps(payload['url'])})).catch(() => null)")
    await expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    assert page.url == note["url"]
    await sw.evaluate("openApp(sameOriginUrl('https://example.com/#/org/x/feed')).catch(() => null)")
    await page.wait_for_url(web.url + "/")
    await page.goto(f"{web.url}/#/org/{slug}/notifications/settings")

    await box.get_by_role("button", name="Turn off").click()
    await expect(box).to_have_attribute("data-state", "off", timeout=WAIT_MS)
    assert (await bob.get(f"/api/v1/orgs/{slug}/push-subscriptions")).json()["subscriptions"] == []
    assert await page.evaluate(f"localStorage.getItem({json.dumps(SUBSCRIPTION_KEY)})") is None


async def test_turning_off_in_one_org_keeps_the_browser_subscribed_for_another_and_signing_out_ends_it(web, push_service: PushService):
    bob = await web.user("Bob")
    first, second = await web.org(bob), await web.org(bob)
    subscription = push_service.new_subscription()
    endpoint = subscription["endpoint"]
    page = await push_page(web, bob, f"/#/org/{first}/notifications/settings", subscription)
    box = page.locator("#push-settings .push-settings")
    await box.get_by_role("button", name="Turn on").click()
    await expect(box).to_have_attribute("data-state", "on", timeout=WAIT_MS)
    await page.goto(f"{web.url}/#/org/{second}/notifications/settings")
    await expect(box).to_have_attribute("data-state", "off", timeout=WAIT_MS)
    await box.get_by_role("button", name="Turn on").click()
    await expect(box).to_have_attribute("data-state", "on", timeout=WAIT_MS)

    await box.get_by_role("button", name="Turn off").click()
    await expect(box).to_have_attribute("data-state", "off", timeout=WAIT_MS)
    assert (await bob.get(f"/api/v1/orgs/{second}/push-subscriptions")).json()["subscriptions"] == []
    [kept] = (await bob.get(f"/api/v1/orgs/{first}/push-subscriptions")).json()["subscriptions"]
    assert kept["endpoint"] == endpoint
    assert await page.evaluate(f"localStorage.getItem({json.dumps(SUBSCRIPTION_KEY)})") is not None

    # Signing out (the browser may be shared) ends its pushes in every org, then the token.
    elsewhere = await factory.sign_in(bob.client, bob.email)
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/#/signin")
    assert (await elsewhere.get(f"/api/v1/orgs/{first}/push-subscriptions")).json()["subscriptions"] == []
    assert await page.evaluate(f"localStorage.getItem({json.dumps(SUBSCRIPTION_KEY)})") is None


async def test_a_sign_in_that_ends_without_signing_out_unsubscribes_the_browser(web, push_service: PushService):
    """Revoked elsewhere (or expired, or the account deleted): the page cannot tell the server, but the
    browser stops receiving this person's pushes, for whoever uses it next."""
    cid = await web.user("Cid")
    org = await web.org(cid)
    page = await push_page(web, cid, f"/#/org/{org}/notifications/settings", push_service.new_subscription())
    box = page.locator("#push-settings .push-settings")
    await box.get_by_role("button", name="Turn on").click()
    await expect(box).to_have_attribute("data-state", "on", timeout=WAIT_MS)
    key = json.dumps(SUBSCRIPTION_KEY)
    assert await page.evaluate(f"localStorage.getItem({key})") is not None

    assert (await cid.post("/api/v1/auth/signout")).status_code == 204  # the page's sign-in, revoked elsewhere
    await page.reload()
    await page.wait_for_url("**/#/signin", timeout=WAIT_MS)
    await page.wait_for_function(f"localStorage.getItem({key}) === null", timeout=WAIT_MS)


async def test_blocked_notifications_say_so_and_offer_no_button(web):
    bob = await web.user("Bob")
    slug = await web.org(bob)
    ctx = await web.context()
    await ctx.add_init_script(f"window.localStorage.setItem('feeds.token', {bob.token!r});")
    await ctx.add_init_script("Object.defineProperty(Notification, 'permission', { get: () => 'denied' });")
    page = await ctx.new_page()
    await page.goto(f"{web.url}/#/org/{slug}/notifications/settings")
    box = page.locator("#push-settings .push-settings")
    await expect(box).to_have_attribute("data-state", "blocked", timeout=WAIT_MS)
    await expect(box).to_contain_text("blocked")
    await expect(box.get_by_role("button")).to_be_hidden()


async def test_a_mention_is_pushed_to_the_browser_away_and_its_worker_shows_it(web, push_service: PushService):
    """The whole way: the page subscribes (with the local push service's endpoint), the person leaves,
    a mention is pushed by the notifier and decrypted by the push service, and that very payload,
    delivered to the service worker, shows as the notification."""
    ann, bob = await web.user("Ann"), await web.user("Bob")
    slug = await web.org(ann, bob)
    subscription = push_service.new_subscription()
    page = await push_page(web, bob, f"/#/org/{slug}/notifications/settings", subscription)
    box = page.locator("#push-settings .push-settings")
    await box.get_by_role("button", name="Turn on").click()
    await expect(box).to_have_attribute("data-state", "on", timeout=WAIT_MS)
    await page.goto(web.url + "/healthz")  # the app's socket closes: Bob is away
    await asyncio.to_thread(wait_away, web.server.env, bob.id)

    r = await ann.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"Can you call the client, @[user:{bob.id}]?"})
    assert r.status_code == 201, r.text
    await asyncio.to_thread(run_notifier, web.server.env)
    [payload] = push_service.delivered(subscription)
    assert payload["kind"] == "mention" and payload["org"] == slug
    assert ann.name in payload["title"] and "call the client" in payload["body"]
    assert payload["url"].startswith(("/", web.url + "/"))

    page = await push_page(web, bob, f"/#/org/{slug}/feed", subscription)
    worker = WorkerPush(page, web.url)
    await worker.start()
    await page.evaluate("import('/app/push.js').then((push) => push.registration())")
    await worker.deliver(json.dumps(payload))
    [note] = await shown(page, payload["tag"])
    assert note["title"] == payload["title"] and note["body"] == payload["body"]
    assert note["url"] == (payload["url"] if payload["url"].startswith(web.url) else web.url + payload["url"])


async def test_the_worker_is_served_from_the_root_under_the_pages_policy(web_server):
    """At /sw.js so that its scope is the whole app; the page's policy lets it run and binds it too."""
    async with httpx.AsyncClient(base_url=web_server.url, timeout=10) as http:
        page = await http.get("/")
        assert "worker-src 'self'" in page.headers["content-security-policy"]
        r = await http.get("/sw.js")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"] == page.headers["content-security-policy"]
        assert "addEventListener('push'" in r.text
        assert (await http.get("/sw.js", headers={"If-None-Match": r.headers["etag"]})).status_code == 304
