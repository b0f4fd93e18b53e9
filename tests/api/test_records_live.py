"""Record items reach connected followers live, over a real WebSocket (F-RT-1, F-FOLLOW-3, F-NOTIF-1)."""

from __future__ import annotations

import asyncio

from tests import factory
from tests.realtime.conftest import node  # noqa: F401 - a running server process (fixture)
from tests.realtime.helpers import Recorder, centrifuge_client, org_with_reader


async def test_a_record_change_reaches_a_connected_follower_and_nobody_else(node, settings, services):  # noqa: F811
    alice, bob, slug = await org_with_reader(node.url, settings, services, "records")
    carol = await factory.sign_up(alice.client, factory.unique("Carol"))
    await factory.invite_and_join(alice, slug, carol, settings.mail_dir, services)
    token = (await alice.post(f"/api/v1/orgs/{slug}/integrations", json={"name": "CRM"})).json()["token"]
    recorders = {"bob": Recorder(), "carol": Recorder()}
    clients = {name: centrifuge_client(node.ws_url, who, slug, recorders[name]) for name, who in (("bob", bob), ("carol", carol))}
    for name, client in clients.items():
        await client.connect()
        await asyncio.wait_for(recorders[name].connected.wait(), 5)

    event = {"event_id": "live-1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Live deal", "owner_email": bob.email}}
    r = await alice.client.post(f"/api/v1/orgs/{slug}/integration/record-events", json={"events": [event]}, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied"

    bob_rec = recorders["bob"]
    await bob_rec.wait_for(lambda: bob_rec.of_type("post.created") and bob_rec.of_type("notifications.created"))
    post = bob_rec.of_type("post.created")[0]["payload"]["post"]
    assert post["kind"] == "record" and post["data"]["record"]["name"] == "Live deal" and post["data"]["change"] == "created"
    assert {ch for ch, _, _ in bob_rec.pubs} == {f"u:{bob.id}"}
    assert bob_rec.of_type("notifications.created")[0]["payload"]["notifications"][0]["kind"] == "record_owned"
    await asyncio.sleep(0.3)
    assert recorders["carol"].pubs == []
    for client in clients.values():
        await client.disconnect()
