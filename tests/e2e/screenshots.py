"""Screenshots of the web client's main pages for the docs, taken from a demo server in Chromium.

    .venv/bin/python -m tests.e2e.screenshots            # writes docs/screenshots/*.png
    .venv/bin/python -m tests.e2e.screenshots --out DIR

It starts its own server on a fresh demo database (the data `./run.sh` creates), adds a little
activity through the API, and photographs: sign-in, feed, group page, dormant records,
notifications and the rule editor with its preview.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from feeds_server.cli.demo import DEMO_EMAIL, DEMO_PASSWORD, DEMO_SLUG
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, web_env
from tests.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
SIZE = {"width": 1280, "height": 860}


async def sign_in(client: httpx.AsyncClient, email: str) -> str:
    r = await client.post("/api/v1/auth/signin", json={"email": email, "password": DEMO_PASSWORD})
    r.raise_for_status()
    return r.json()["token"]


async def add_activity(client: httpx.AsyncClient) -> dict[str, str]:
    """A mention of the demo admin, a comment, record changes and two records gone quiet."""
    demo = {"authorization": f"Bearer {await sign_in(client, DEMO_EMAIL)}"}
    maya = {"authorization": f"Bearer {await sign_in(client, f'maya.patel@{DEMO_SLUG}.example.com')}"}
    org = f"/api/v1/orgs/{DEMO_SLUG}"
    me = (await client.get("/api/v1/me", headers=demo)).json()["user"]
    groups = {g["name"]: g["id"] for g in (await client.get(f"{org}/groups", headers=maya)).json()["groups"]}

    r = await client.post(f"{org}/integrations", headers=demo, json={"name": "CRM back end"})
    crm = {"authorization": f"Bearer {r.json()['token']}"}
    quiet = (datetime.now(UTC) - timedelta(days=45)).isoformat()
    older = (datetime.now(UTC) - timedelta(days=96)).isoformat()
    events = [
        {"event_id": "shot-1", "type": "created", "module": "Deals", "occurred_at": older,
         "record": {"id": "D-0420", "name": "Fjord Shipping — fleet pilot", "owner_email": DEMO_EMAIL,
                    "fields": {"Amount": 38000, "Stage": "Qualification", "Closing Date": "2027-03-31"}}},
        {"event_id": "shot-2", "type": "created", "module": "Accounts", "occurred_at": quiet,
         "record": {"id": "A-0777", "name": "Cobol Corp", "owner_email": DEMO_EMAIL,
                    "fields": {"Industry": "Software", "Employees": 85, "Account Type": "Prospect"}}},
        {"event_id": "shot-3", "type": "edited", "module": "Deals", "actor_email": f"anna.schmidt@{DEMO_SLUG}.example.com",
         "record": {"id": "D-1001"}, "changes": [{"field": "Amount", "old": 84000, "new": 96000},
                                                  {"field": "Stage", "old": "Negotiation/Review", "new": "Closed Won"}]},
    ]
    (await client.post(f"{org}/integration/record-events", headers=crm, json={"events": events})).raise_for_status()

    r = await client.post(f"{org}/posts", headers=maya, json={
        "body": f"@[user:{me['id']}] Müller GmbH signed for 96k! Thanks to @[group:{groups['Sales Team']}] for the push."})
    post_id = r.json()["post"]["id"]
    await client.post(f"{org}/posts/{post_id}/comments", headers=demo, json={"body": "Fantastic work, team. Drinks on Friday?"})
    await client.post(f"{org}/posts", headers=maya, json={
        "body": "Pipeline review moved to Thursday 10:00, same room.", "group_id": groups["Sales Team"]})
    return {"demo": demo["authorization"].split()[1], "maya": maya["authorization"].split()[1], "sales": str(groups["Sales Team"])}


async def shoot(base: str, tokens: dict[str, str], out: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

        async def page_as(token: str | None, path: str) -> Any:
            ctx = await browser.new_context(viewport=SIZE, device_scale_factor=1)
            if token:
                await ctx.add_init_script(f"window.localStorage.setItem('feeds.token', {token!r});")
            page = await ctx.new_page()
            await page.goto(base + path)
            if token:
                await page.locator('#live-status[data-state="live"]').wait_for()
            return page

        async def save(page: Any, name: str) -> None:
            await page.evaluate("window.scrollTo(0, 0)")
            await page.wait_for_timeout(400)  # fonts and last renders
            await page.screenshot(path=str(out / f"{name}.png"))
            print(out / f"{name}.png")

        page = await page_as(None, "/")
        await page.get_by_label("Email").fill(DEMO_EMAIL)
        await save(page, "sign-in")

        page = await page_as(tokens["demo"], f"/#/org/{DEMO_SLUG}/feed")
        await page.locator("article.item").first.wait_for()
        await page.get_by_label("Write a post").fill("Great quarter so far! ")
        await save(page, "feed")

        page = await page_as(tokens["maya"], f"/#/org/{DEMO_SLUG}/group/{tokens['sales']}")
        await page.locator("article.item").first.wait_for()
        await save(page, "group")

        page = await page_as(tokens["demo"], f"/#/org/{DEMO_SLUG}/records?tab=dormant")
        await page.locator("#panel-dormant .record-row").first.wait_for()
        await save(page, "records-dormant")

        page = await page_as(tokens["demo"], f"/#/org/{DEMO_SLUG}/notifications")
        await page.locator(".notification").first.wait_for()
        await save(page, "notifications")

        page = await page_as(tokens["demo"], f"/#/org/{DEMO_SLUG}/rules")
        await page.get_by_role("button", name="Edit").first.click()
        await page.get_by_role("button", name="Preview").click()
        await page.locator(".preview table").wait_for()
        await page.set_viewport_size({"width": SIZE["width"], "height": 1180})  # the editor and its preview
        await save(page, "rules")
        await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = web_env(url, Path(tmp), f"sqlite+aiosqlite:///{Path(tmp) / 'feeds.db'}")
        run_env = {**os.environ, **env, "FEEDS_PORT": str(port)}
        for command in ("migrate", "demo"):
            subprocess.run([sys.executable, "-m", "feeds_server.cli", command], env=run_env, check=True, stdout=subprocess.DEVNULL)
        server = ServerProcess(env, port=port, log_path=Path(tmp) / "server.log").start()
        try:
            async def run() -> None:
                async with httpx.AsyncClient(base_url=url, timeout=20) as client:
                    tokens = await add_activity(client)
                await shoot(url, tokens, args.out)

            asyncio.run(run())
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
