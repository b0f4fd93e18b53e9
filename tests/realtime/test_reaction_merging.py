"""Live reactions, merged: a burst of toggles on one item reaches clients as a few publications (one
per item per window) that end with the final counts, offsets only growing; a client that was away
recovers the final counts. With both SDKs (centrifuge-python and the JS `centrifuge`)."""

from __future__ import annotations

import asyncio
import json
import time

from feeds_server import limits
from tests import factory
from tests.realtime.helpers import Recorder, actor_on, centrifuge_client, org_with_reader
from tests.realtime.test_js_sdk import JS_DIR, NodeClient, js_ready  # noqa: F401 - js_ready is a fixture

THUMBS = [{"emoji": "👍", "count": 1}]


async def _burst(actor: factory.Actor, slug: str, post_id: int, toggles: int, post_midway: bool = False) -> float:
    """`toggles` changes of the actor's 👍 (off, on, off … ending on), as fast as the server takes
    them; a post halfway when asked. Returns how long the burst took."""
    start = time.monotonic()
    for i in range(toggles):
        r = await actor.put(f"/api/v1/orgs/{slug}/posts/{post_id}/reactions", json={"emoji": "👍", "on": (toggles - 1 - i) % 2 == 0})
        assert r.status_code == 200, r.text
        if post_midway and i == toggles // 2:
            assert (await actor.post(f"/api/v1/orgs/{slug}/posts", json={"body": "midway"})).status_code == 201
    return time.monotonic() - start


def _most_publications(elapsed: float) -> int:
    """One per window the burst lasted, one for the window it started in, one for the tail, one
    that a post in the middle may send early, and one for the time a request takes to publish."""
    return int(elapsed / limits.REACTION_MERGE_SECONDS) + 4


async def _drain(client: NodeClient, quiet: float = 3 * limits.REACTION_MERGE_SECONDS) -> None:
    """Read what the JS client printed until it has been quiet for `quiet` seconds."""
    assert client.proc.stdout is not None
    while True:
        try:
            line = await asyncio.wait_for(client.proc.stdout.readline(), quiet)
        except asyncio.TimeoutError:
            return
        if not line:
            return
        client.events.append(json.loads(line))


async def test_a_burst_of_fifty_toggles_reaches_a_client_as_a_few_merged_updates(node, settings, services):
    alice, bob, slug = await org_with_reader(node.url, settings, services, "burst")
    recorder = Recorder()
    client = centrifuge_client(node.ws_url, bob, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    post = (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "react to me"})).json()["post"]
    await recorder.wait_for(lambda: recorder.of_type("post.created"))

    elapsed = await _burst(alice, slug, post["id"], 50, post_midway=True)
    await recorder.wait_for(lambda: recorder.of_type("reaction.changed") and recorder.of_type("reaction.changed")[-1]["payload"]["reactions"] == THUMBS)
    await asyncio.sleep(3 * limits.REACTION_MERGE_SECONDS)  # nothing held back comes after the final counts

    merged = recorder.of_type("reaction.changed")
    assert 1 <= len(merged) <= min(_most_publications(elapsed), 25), (len(merged), elapsed)
    assert merged[-1]["payload"] == {"post_id": post["id"], "comment_id": None, "module": None, "reactions": THUMBS}
    assert [d["payload"]["post"]["body"] for d in recorder.of_type("post.created")] == ["react to me", "midway"]
    offsets = [off for ch, off, _ in recorder.pubs if ch == "org"]
    assert offsets == sorted(set(offsets))  # skipped offsets, never one going back
    got = (await bob.get(f"/api/v1/orgs/{slug}/posts/{post['id']}/reactions")).json()
    assert got["reactions"] == THUMBS
    await client.disconnect()


async def test_a_client_that_was_away_recovers_the_final_counts_once(node, settings, services):
    alice, bob, slug = await org_with_reader(node.url, settings, services, "away")
    recorder = Recorder()
    client = centrifuge_client(node.ws_url, bob, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    post = (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "react to me"})).json()["post"]
    await recorder.wait_for(lambda: recorder.of_type("post.created"))

    await client.disconnect()
    await _burst(alice, slug, post["id"], 21)
    await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "after"})
    seen = len(recorder.pubs)
    await client.connect()
    await recorder.wait_for(lambda: len(recorder.of_type("post.created")) == 2, timeout=10)
    await asyncio.sleep(3 * limits.REACTION_MERGE_SECONDS)
    recovered = [d for _, _, d in recorder.pubs[seen:] if d["type"] == "reaction.changed"]
    assert [d["payload"]["reactions"] for d in recovered] == [THUMBS]
    offsets = [off for ch, off, _ in recorder.pubs if ch == "org"]
    assert offsets == sorted(set(offsets))
    await client.disconnect()


async def test_js_sdk_takes_merged_updates_and_recovers_the_final_counts(js_ready, node, settings, services):  # noqa: F811
    alice = await actor_on(node.url, factory.unique("Alice Js"))
    bob = await actor_on(node.url, factory.unique("Bob Js"))
    org = await factory.create_org(alice, factory.unique("jsreact"))
    slug = org["slug"]
    await factory.invite_and_join(alice, slug, bob, settings.mail_dir, services)
    post = (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "react to me"})).json()["post"]

    proc = await asyncio.create_subprocess_exec(
        "node", str(JS_DIR / "client.mjs"), node.ws_url, node.url, bob.token, slug,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    client = NodeClient(proc)

    def reactions() -> list[dict]:
        return [e for e in client.events if e["event"] == "publication" and e["data"]["type"] == "reaction.changed"]

    def final(events: list[dict]) -> bool:
        return bool(reactions()) and reactions()[-1]["data"]["payload"]["reactions"] == THUMBS

    try:
        await client.wait_for(lambda ev: any(e["event"] == "connected" for e in ev))
        elapsed = await _burst(alice, slug, post["id"], 50)
        await client.wait_for(final)
        await _drain(client)
        assert final(client.events)
        assert 1 <= len(reactions()) <= min(_most_publications(elapsed), 25)

        await client.send("disconnect")
        await client.wait_for(lambda ev: any(e["event"] == "disconnected" for e in ev))
        live = len(reactions())
        await alice.put(f"/api/v1/orgs/{slug}/posts/{post['id']}/reactions", json={"emoji": "🎉", "on": True})
        await _burst(alice, slug, post["id"], 20)  # 👍 off, then on again: after 🎉 now
        await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": "after"})
        await client.send("connect")
        await client.wait_for(lambda ev: any(e["event"] == "publication" and e["data"]["type"] == "post.created" for e in ev), timeout=10)
        await _drain(client)
        recovered = reactions()[live:]
        assert [e["data"]["payload"]["reactions"] for e in recovered] == [[{"emoji": "🎉", "count": 1}, *THUMBS]]
        resub = [e for e in client.events if e["event"] == "subscribed" and e["channel"] == "org"]
        assert resub[-1]["recovered"] is True
        offsets = [int(e["offset"]) for e in client.events if e["event"] == "publication" and e["channel"] == "org"]
        assert offsets == sorted(set(offsets))
    finally:
        await client.send("exit")
