"""The centrifuge-python SDK as a client (F-RT-1, F-RT-2)."""

from __future__ import annotations

import asyncio

from tests.realtime.helpers import Recorder, centrifuge_client, org_with_reader


async def test_python_sdk_receives_live_posts_and_recovers_fifty_missed(node, settings, services):
    """F-RT-2: after a disconnect during which 50 posts were made, all 50 arrive, in order, none twice."""
    alice, bob, slug = await org_with_reader(node.url, settings, services, "live")

    recorder = Recorder()
    client = centrifuge_client(node.ws_url, bob, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)

    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "live one"})
    assert r.status_code == 201
    await recorder.wait_for(lambda: recorder.of_type("post.created"))
    assert recorder.of_type("post.created")[0]["payload"]["post"]["body"] == "live one"

    await client.disconnect()
    for i in range(50):
        r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"missed {i}"})
        assert r.status_code == 201
    await client.connect()
    await recorder.wait_for(lambda: len(recorder.of_type("post.created")) >= 51, timeout=10)
    await asyncio.sleep(0.3)
    bodies = [d["payload"]["post"]["body"] for d in recorder.of_type("post.created")]
    assert bodies == ["live one"] + [f"missed {i}" for i in range(50)]
    offsets = [off for ch, off, d in recorder.pubs if d["type"] == "post.created"]
    assert offsets == sorted(set(offsets))
    await client.disconnect()


async def test_mention_notification_arrives_live_on_the_users_channel(node, settings, services):
    """F-NOTIF-1: notifications arrive live."""
    alice, bob, slug = await org_with_reader(node.url, settings, services, "notif")
    recorder = Recorder()
    client = centrifuge_client(node.ws_url, bob, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"ping @[user:{bob.id}]"})
    assert r.status_code == 201
    await recorder.wait_for(lambda: recorder.of_type("notifications.created"))
    channel = next(ch for ch, _, d in recorder.pubs if d["type"] == "notifications.created")
    assert channel == f"u:{bob.id}"
    assert recorder.of_type("notifications.created")[0]["payload"]["notifications"][0]["kind"] == "mention"
    await client.disconnect()
