"""Erasure reaches live clients: others' feeds drop the person's items, the person's connections close
(GDPR, F-OPS-3, F-POST-8, F-RT-1)."""

from __future__ import annotations

import asyncio

import orjson
import websockets
from websockets.exceptions import ConnectionClosed

from feeds_server.cli import data as data_cli
from tests import factory
from tests.realtime.helpers import Recorder, centrifuge_client, connection_token, org_with_reader


async def _live_pair(node, settings, services):  # type: ignore[no-untyped-def]
    """Alice reading live, Bob (who posted) connected with a raw socket."""
    alice, bob, slug = await org_with_reader(node.url, settings, services, "erase")
    r = await bob.post(f"/api/v1/orgs/{slug}/posts", json={"body": "soon gone"})
    assert r.status_code == 201
    post_id = r.json()["post"]["id"]
    recorder = Recorder()
    client = centrifuge_client(node.ws_url, alice, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": await connection_token(bob, slug)}}).decode())
    await ws.recv()
    return alice, bob, slug, post_id, recorder, client, ws


async def _closed_with(ws) -> int:  # type: ignore[no-untyped-def]
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else -1


async def test_erasing_oneself_drops_ones_items_from_live_feeds_and_closes_ones_sockets(node, settings, services):
    alice, bob, slug, post_id, recorder, client, ws = await _live_pair(node, settings, services)
    closing = asyncio.create_task(_closed_with(ws))
    assert (await bob.post("/api/v1/me/erase", json={"password": factory.PASSWORD})).status_code == 202
    await recorder.wait_for(lambda: recorder.of_type("post.deleted"))
    assert recorder.of_type("post.deleted")[0]["payload"] == {"post_id": post_id}
    assert await closing in (3500, 3503)
    await client.disconnect()


async def test_an_erasure_on_the_command_line_reaches_a_running_server(node, settings, services):
    """The command writes to the database; the server finds the events there and delivers them."""
    alice, bob, slug, post_id, recorder, client, ws = await _live_pair(node, settings, services)
    closing = asyncio.create_task(_closed_with(ws))
    assert await data_cli.erase_user(settings, bob.email, confirmed=True) == 0
    await recorder.wait_for(lambda: recorder.of_type("post.deleted"))
    assert recorder.of_type("post.deleted")[0]["payload"] == {"post_id": post_id}
    assert await closing == 3503
    await client.disconnect()
