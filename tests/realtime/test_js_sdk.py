"""The official JavaScript SDK (`centrifuge` from npm) as a client, from Node (F-RT-1, F-RT-2)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from tests import factory
from tests.conftest import unavailable
from tests.realtime.helpers import actor_on

JS_DIR = Path(__file__).with_name("js")


class NodeClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict] = []

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        await self.proc.stdin.drain()

    async def wait_for(self, predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        assert self.proc.stdout is not None
        async def loop() -> None:
            while not predicate(self.events):
                line = await self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"node client exited; events: {self.events[-5:]}")
                self.events.append(json.loads(line))

        await asyncio.wait_for(loop(), timeout)

    def posts(self) -> list[str]:
        return [e["data"]["payload"]["post"]["body"] for e in self.events if e["event"] == "publication" and e["data"]["type"] == "post.created"]


@pytest.fixture
def js_ready() -> None:
    if shutil.which("node") is None or not (JS_DIR / "node_modules" / "centrifuge").exists():
        unavailable("the centrifuge npm package", "run ./test.sh, which installs it with npm")


async def test_js_sdk_receives_live_posts_and_recovers_fifty_missed(js_ready, node, settings, services):
    """F-RT-2 with the browser SDK: 50 posts made while disconnected all arrive, in order, once."""
    alice = await actor_on(node.url, "Alice Js")
    bob = await actor_on(node.url, "Bob Js")
    org = await factory.create_org(alice, factory.unique("js"))
    slug = org["slug"]
    await factory.invite_and_join(alice, slug, bob, settings.mail_dir, services)

    proc = await asyncio.create_subprocess_exec(
        "node", str(JS_DIR / "client.mjs"), node.ws_url, node.url, bob.token, slug,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    client = NodeClient(proc)
    try:
        await client.wait_for(lambda ev: any(e["event"] == "connected" for e in ev))
        await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "live one"})
        await client.wait_for(lambda ev: client.posts() == ["live one"])

        await client.send("disconnect")
        await client.wait_for(lambda ev: any(e["event"] == "disconnected" for e in ev))
        for i in range(50):
            r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"missed {i}"})
            assert r.status_code == 201
        await client.send("connect")
        await client.wait_for(lambda ev: len(client.posts()) >= 51, timeout=15)
        await asyncio.sleep(0.3)
        assert client.posts() == ["live one"] + [f"missed {i}" for i in range(50)]
        resub = [e for e in client.events if e["event"] == "subscribed" and e["channel"] == "org"]
        assert resub[-1]["recovered"] is True
    finally:
        await client.send("exit")
        await asyncio.wait_for(proc.wait(), 5)
