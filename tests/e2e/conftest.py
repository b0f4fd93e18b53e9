"""The web client in a real browser: Debian's Chromium driven by Playwright against a real server process.

One server (SQLite) and one browser serve a whole test module; each test makes its own org, and each
user gets their own browser context (their own storage, so their own sign-in). Under CI=true a
missing Chromium, Playwright or centrifuge npm package fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from feeds_server.api.web import CENTRIFUGE_ESM
from tests import factory
from tests.conftest import unavailable
from tests.server import ServerProcess, free_port

SECRET_KEY = "e2e-secret-key"
CHROMIUM = os.environ.get("FEEDS_TEST_CHROMIUM", "/usr/bin/chromium")
# The machine has no outside network: no background fetches, no updates, no QUIC probing.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1200, "height": 900}


def web_env(url: str, data_dir: Path, database_url: str) -> dict[str, str]:
    return {
        "FEEDS_DATABASE_URL": database_url,
        "FEEDS_DATA_DIR": str(data_dir),
        "FEEDS_SECRET_KEY": SECRET_KEY,
        # Every user of a module's server signs up from 127.0.0.1.
        "FEEDS_RATE_SIGNUPS_PER_IP": "1000/3600",
        "FEEDS_ARGON2_TIME_COST": "1",
        "FEEDS_ARGON2_MEMORY_KIB": "64",
        "FEEDS_PUBLIC_URL": url,
        "FEEDS_ALLOWED_ORIGINS": url,
        "FEEDS_LOG_LEVEL": "warning",
    }


@pytest.fixture(scope="module")
def centrifuge_sdk() -> Path:
    if not CENTRIFUGE_ESM.exists():
        unavailable("the centrifuge npm package", "run ./test.sh, which runs npm ci in feeds_server/web")
    return CENTRIFUGE_ESM


@pytest.fixture(scope="module")
def chromium(centrifuge_sdk: Path) -> str:
    if not Path(CHROMIUM).exists():
        unavailable("Chromium", f"{CHROMIUM} is missing (./test.sh installs Debian's chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        unavailable("playwright", repr(exc))
    return CHROMIUM


@pytest.fixture(scope="module")
def web_server(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`feeds-server serve` on a copy of the migrated SQLite template; the page's origin is allowed."""
    data_dir = tmp_path_factory.mktemp("web")
    shutil.copy(sqlite_template, data_dir / "feeds.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(web_env(url, data_dir, f"sqlite+aiosqlite:///{data_dir / 'feeds.db'}"), port=port, log_path=data_dir / "server.log")
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Headless Chromium; every launch gets a new, empty profile directory from Playwright."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        await b.close()


class Web:
    """Users (over HTTP) and their browser pages for one test; everything is closed after it."""

    def __init__(self, server: ServerProcess, browser: Any) -> None:
        self.server = server
        self.browser = browser
        self.clients: list[httpx.AsyncClient] = []
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    @property
    def url(self) -> str:
        return self.server.url

    async def user(self, name: str) -> factory.Actor:
        client = httpx.AsyncClient(base_url=self.url, timeout=10)
        self.clients.append(client)
        return await factory.sign_up(client, factory.unique(name), secret_key=SECRET_KEY)

    async def org(self, owner: factory.Actor, *members: factory.Actor) -> str:
        """A new org of `owner`; each member joins by accepting an invitation."""
        slug = (await factory.create_org(owner, factory.unique("web")))["slug"]
        for member in members:
            await self.join(owner, slug, member)
        return slug

    async def join(self, admin: factory.Actor, slug: str, member: factory.Actor) -> None:
        r = await admin.post(f"/api/v1/orgs/{slug}/invitations", json={"email": member.email})
        assert r.status_code == 201, r.text
        r = await member.post(f"/api/v1/me/invitations/{r.json()['invitation']['id']}/accept")
        assert r.status_code == 200, r.text

    async def context(self) -> Any:
        ctx = await self.browser.new_context(viewport=VIEWPORT)
        self.contexts.append(ctx)
        return ctx

    async def page(self, actor: factory.Actor | None = None, path: str = "/", live: bool = True, frames: list[str] | None = None) -> Any:
        """A page of a new browser context, signed in as `actor` (token in local storage); every
        WebSocket frame it receives is appended to `frames` when given."""
        ctx = await self.context()
        if actor is not None:
            await ctx.add_init_script(f"window.localStorage.setItem('feeds.token', {actor.token!r});")
        page = await ctx.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if frames is not None:
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
        await page.goto(self.url + path)
        if actor is not None and live:
            await wait_live(page)
        return page

    async def close(self) -> None:
        for ctx in self.contexts:
            await ctx.close()
        for client in self.clients:
            await client.aclose()


async def wait_live(page: Any, timeout: float = 5000) -> None:
    await page.locator('#live-status[data-state="live"]').wait_for(timeout=timeout)


@pytest_asyncio.fixture(loop_scope="module")
async def web(web_server: ServerProcess, browser: Any) -> AsyncIterator[Web]:
    w = Web(web_server, browser)
    try:
        yield w
    finally:
        await w.close()
    assert not w.errors, f"errors in the page: {w.errors}"
