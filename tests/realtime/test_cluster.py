"""Several nodes behind a load balancer share events through Redis (F-RT-3)."""

from __future__ import annotations

import asyncio

from tests import factory
from tests.realtime.helpers import Recorder, centrifuge_client, org_with_reader
from tests.server import FailoverProxy


async def test_client_on_node_a_sees_post_made_through_node_b(cluster, settings, services):
    """F-RT-3: one publish per event through Redis; every node delivers to its own connections."""
    a, b = cluster
    alice, bob, slug = await org_with_reader(a.url, settings, services)
    alice_b = factory.Actor(factory.httpx.AsyncClient(base_url=b.url), alice.id, alice.email, alice.name, alice.token)

    recorder = Recorder()
    client = centrifuge_client(a.ws_url, bob, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    r = await alice_b.post(f"/api/v1/orgs/{slug}/posts", json={"body": "through B"})
    assert r.status_code == 201
    await recorder.wait_for(lambda: recorder.of_type("post.created"), timeout=5)
    assert recorder.of_type("post.created")[0]["payload"]["post"]["body"] == "through B"
    await client.disconnect()


async def test_kill_9_node_a_clients_reconnect_to_b_and_miss_nothing(cluster, settings, services):
    """F-RT-2/F-RT-3: `kill -9` of the node a client is on; it reconnects through the balancer to
    the other node and recovers every post made meanwhile, in order, none twice."""
    a, b = cluster
    alice, bob, slug = await org_with_reader(b.url, settings, services)
    proxy = await FailoverProxy([a.port, b.port]).start()
    recorders = [Recorder() for _ in range(3)]
    clients = [centrifuge_client(proxy.ws_url, bob, slug, r) for r in recorders]
    for c, r in zip(clients, recorders):
        await c.connect()
        await asyncio.wait_for(r.connected.wait(), 5)

    async def post(i: int) -> None:
        r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"post {i}"})
        assert r.status_code == 201

    for i in range(10):
        await post(i)
    a.kill()
    for i in range(10, 40):
        await post(i)
    expected = [f"post {i}" for i in range(40)]
    for r in recorders:
        await r.wait_for(lambda r=r: len(r.of_type("post.created")) >= 40, timeout=15)
    await asyncio.sleep(0.3)
    for r in recorders:
        assert [d["payload"]["post"]["body"] for d in r.of_type("post.created")] == expected
    for c in clients:
        await c.disconnect()
    await proxy.close()
