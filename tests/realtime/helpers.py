"""Talking to a running node over real HTTP, and a recording Centrifuge client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from centrifuge import Client, ClientEventHandler, ServerPublicationContext

from tests import factory


async def actor_on(base_url: str, name: str) -> factory.Actor:
    client = httpx.AsyncClient(base_url=base_url, timeout=10)
    return await factory.sign_up(client, name)


async def connection_token(actor: factory.Actor, slug: str) -> str:
    r = await actor.post(f"/api/v1/orgs/{slug}/realtime/token")
    assert r.status_code == 200, r.text
    return r.json()["token"]


class Recorder(ClientEventHandler):
    """Collects publications of server-side subscriptions, in arrival order."""

    def __init__(self) -> None:
        self.pubs: list[tuple[str, int, dict[str, Any]]] = []
        self.connected = asyncio.Event()
        self.disconnects: list[int] = []
        self.new_pub = asyncio.Event()

    async def on_connected(self, ctx: Any) -> None:
        self.connected.set()

    async def on_disconnected(self, ctx: Any) -> None:
        self.disconnects.append(ctx.code)

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        data = ctx.pub.data if isinstance(ctx.pub.data, dict) else orjson.loads(ctx.pub.data)
        self.pubs.append((ctx.channel, ctx.pub.offset, data))
        self.new_pub.set()

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [d for _, _, d in self.pubs if d["type"] == type_]

    async def wait_for(self, predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
        async def loop() -> None:
            while not predicate():
                self.new_pub.clear()
                await self.new_pub.wait()

        await asyncio.wait_for(loop(), timeout)


def centrifuge_client(ws_url: str, actor: factory.Actor, slug: str, recorder: Recorder) -> Client:
    async def get_token() -> str:
        return await connection_token(actor, slug)

    return Client(ws_url, events=recorder, get_token=get_token, min_reconnect_delay=0.05, max_reconnect_delay=0.5)


async def org_with_reader(node_url: str, settings: Any, services: Any, prefix: str = "rt") -> tuple[factory.Actor, factory.Actor, str]:
    """A new org on a running node: its owner (the poster) and a member (the reader), and its slug."""
    alice = await actor_on(node_url, factory.unique("Alice"))
    bob = await actor_on(node_url, factory.unique("Bob"))
    org = await factory.create_org(alice, factory.unique(prefix))
    await factory.invite_and_join(alice, org["slug"], bob, settings.mail_dir, services)
    return alice, bob, org["slug"]
