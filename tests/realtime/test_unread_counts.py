"""Unread counts across orgs: `GET /api/v1/me` gives each org's count, and the `$counts` channel of
every connection tells, live, when the count of any of the person's orgs changes. Only numbers
cross orgs, only the person's own, and an org they left says nothing more."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import ANY

import orjson
from sqlalchemy import event

from feeds_server.realtime.broker_memory import MemoryBroker
from feeds_server.realtime.counts import CHANNEL, UnreadCounts
from feeds_server.store.base import utcnow
from feeds_server.store.events import NewEvent
from tests import factory
from tests.realtime.helpers import Recorder, actor_on, centrifuge_client


async def _two_orgs(client: Any, settings: Any, services: Any = None) -> dict[str, Any]:
    """Owner's orgs A and B; Ann in both, Bob in A only."""
    owner = await factory.sign_up(client, factory.unique("Owner")) if not isinstance(client, str) else await actor_on(client, factory.unique("Owner"))
    ann = await factory.sign_up(owner.client, factory.unique("Ann"))
    bob = await factory.sign_up(owner.client, factory.unique("Bob"))
    a = await factory.create_org(owner, factory.unique("orga"))
    b = await factory.create_org(owner, factory.unique("orgb"))
    for org, members in ((a, (ann, bob)), (b, (ann,))):
        for m in members:
            await factory.invite_and_join(owner, org["slug"], m, settings.mail_dir, services)
    return {"owner": owner, "ann": ann, "bob": bob, "a": a, "b": b}


async def _mention(actor: factory.Actor, org: dict[str, Any], *who: factory.Actor) -> None:
    body = " ".join(f"@[user:{w.id}]" for w in who)
    r = await actor.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": f"hey {body}"})
    assert r.status_code == 201, r.text


def _unread(me: dict[str, Any]) -> dict[str, int]:
    return {entry["org"]["slug"]: entry["unread"] for entry in me["orgs"]}


async def test_me_gives_each_orgs_unread_count_in_one_query(client, settings, services):
    w = await _two_orgs(client, settings)
    owner, ann, bob, a, b = w["owner"], w["ann"], w["bob"], w["a"], w["b"]
    await _mention(owner, a, ann, bob)
    await _mention(owner, a, ann)
    await _mention(owner, b, ann)
    seen: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(services.engine.sync_engine, "before_cursor_execute", count)
    try:
        me = (await ann.get("/api/v1/me")).json()
    finally:
        event.remove(services.engine.sync_engine, "before_cursor_execute", count)
    assert sum("notifications" in s for s in seen) == 1
    assert _unread(me) == {a["slug"]: 2, b["slug"]: 1}
    assert _unread((await bob.get("/api/v1/me")).json()) == {a["slug"]: 1}  # Bob's own rows only
    assert _unread((await owner.get("/api/v1/me")).json()) == {a["slug"]: 0, b["slug"]: 0}
    assert (await ann.post(f"/api/v1/orgs/{a['slug']}/notifications/read-all")).status_code == 200
    assert _unread((await ann.get("/api/v1/me")).json()) == {a["slug"]: 0, b["slug"]: 1}


async def test_an_org_without_the_feeds_tab_for_the_person_gives_no_count(client, settings, services):
    """An org that keeps its feed from a member keeps the number of their notifications there too:
    neither /me nor the `$counts` channel of a session in another org tells it."""
    w = await _two_orgs(client, settings)
    owner, ann, a, b = w["owner"], w["ann"], w["a"], w["b"]
    await _mention(owner, b, ann)
    assert _unread((await ann.get("/api/v1/me")).json())[b["slug"]] == 1
    profiles = (await owner.get(f"/api/v1/orgs/{b['slug']}/profiles")).json()["profiles"]
    [standard] = [p for p in profiles if p["name"] == "Standard"]
    r = await owner.patch(f"/api/v1/orgs/{b['slug']}/profiles/{standard['id']}", json={"permissions": []})
    assert r.status_code == 200, r.text
    assert _unread((await ann.get("/api/v1/me")).json()) == {a["slug"]: 0, b["slug"]: 0}
    broker = MemoryBroker()
    counts = UnreadCounts(services, broker)

    async def nothing(*_: Any) -> None:
        pass

    await broker.start(nothing, nothing, counts.deliver)
    anns = _FakeConnection(ann.id)
    await counts.joined(anns)
    counts.note([_changed(b["id"], ann.id), _changed(a["id"], ann.id)])
    assert await counts.publish_pending() == 1
    assert [f["pub"]["data"]["org"] for f in anns.frames] == [a["slug"]]
    await broker.close()


class _FakeConnection:
    """What the counts relay needs of a connection: its person, and the frames pushed to it."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.frames: list[dict[str, Any]] = []

    def push(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame)["push"])


def _changed(org_id: int, *users: int, type_: str = "notifications.created") -> NewEvent:
    return NewEvent(org_id, type_, {}, None, [f"u:{u}" for u in users], utcnow())


async def test_counts_reach_only_their_person_and_stop_for_an_org_they_left(client, settings, services):
    """Through the broker: {org, unread} and nothing else, to the person's connections only."""
    w = await _two_orgs(client, settings)
    owner, ann, bob, a, b = w["owner"], w["ann"], w["bob"], w["a"], w["b"]
    broker = MemoryBroker()
    counts = UnreadCounts(services, broker)

    async def nothing() -> None:
        pass

    async def org_events(org_id: int | None, message: bytes) -> None:
        pass

    await broker.start(org_events, nothing, counts.deliver)
    anns, bobs = _FakeConnection(ann.id), _FakeConnection(bob.id)
    await counts.joined(anns)
    await counts.joined(bobs)
    await _mention(owner, b, ann)
    counts.note([_changed(b["id"], ann.id), _changed(a["id"], bob.id, type_="post.created")])
    assert await counts.publish_pending() == 1
    assert anns.frames == [{"channel": CHANNEL, "pub": {"data": {"org": b["slug"], "unread": 1, "at": ANY}}}]
    assert bobs.frames == []  # another person's count never reaches Bob
    # Ann leaves B: her counts there are not published any more.
    assert (await ann.delete(f"/api/v1/orgs/{b['slug']}/membership")).status_code == 204
    counts.note([_changed(b["id"], ann.id, type_="notifications.read")])
    assert await counts.publish_pending() == 0 and len(anns.frames) == 1
    # A connection that left hears nothing more; its person's broker channel is dropped with the last one.
    await counts.left(anns)
    counts.note([_changed(a["id"], ann.id)])
    assert await counts.publish_pending() == 1 and len(anns.frames) == 1
    await broker.close()


async def _connected(ws_url: str, actor: factory.Actor, slug: str) -> tuple[Any, Recorder]:
    recorder = Recorder()
    client = centrifuge_client(ws_url, actor, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    return client, recorder


def _counts(recorder: Recorder) -> list[dict[str, Any]]:
    """The counts heard, without `at` (when each was read: checked to grow in the order heard)."""
    counts = [data for channel, _, data in recorder.pubs if channel == CHANNEL]
    stamps = [c["at"] for c in counts]
    assert all(isinstance(t, int) for t in stamps) and stamps == sorted(stamps)
    return [{k: v for k, v in c.items() if k != "at"} for c in counts]


async def test_a_client_of_one_org_learns_another_orgs_count_live(node, settings, services):
    """On one node (the in-process broker): Ann, connected to org A, hears B's count change."""
    w = await _two_orgs(node.url, settings, services)
    owner, ann, bob, a, b = w["owner"], w["ann"], w["bob"], w["a"], w["b"]
    ann_client, ann_rec = await _connected(node.ws_url, ann, a["slug"])
    bob_client, bob_rec = await _connected(node.ws_url, bob, a["slug"])
    try:
        await _mention(owner, b, ann)
        await ann_rec.wait_for(lambda: _counts(ann_rec))
        assert _counts(ann_rec) == [{"org": b["slug"], "unread": 1}]
        assert (await ann.post(f"/api/v1/orgs/{b['slug']}/notifications/read-all")).status_code == 200
        await ann_rec.wait_for(lambda: len(_counts(ann_rec)) == 2)
        assert _counts(ann_rec)[-1] == {"org": b["slug"], "unread": 0}
        await _mention(owner, a, bob)
        await bob_rec.wait_for(lambda: _counts(bob_rec))
        assert _counts(bob_rec) == [{"org": a["slug"], "unread": 1}]  # his own, and none of Ann's
    finally:
        await ann_client.disconnect()
        await bob_client.disconnect()


async def test_counts_cross_nodes_through_redis(cluster, settings, services):
    """Ann is connected to node A in org A; a mention in org B made through node B reaches her."""
    node_a, node_b = cluster
    w = await _two_orgs(node_b.url, settings, services)
    owner, ann, a, b = w["owner"], w["ann"], w["a"], w["b"]
    client, recorder = await _connected(node_a.ws_url, ann, a["slug"])
    try:
        await asyncio.sleep(0.2)  # node A's subscription to Ann's channel is in place
        await _mention(owner, b, ann)
        await recorder.wait_for(lambda: _counts(recorder))
        assert _counts(recorder) == [{"org": b["slug"], "unread": 1}]
    finally:
        await client.disconnect()


async def test_the_worker_publishes_the_counts_it_changes_through_redis(client, settings, services, redis_url):
    """The notifier has no hub: its commits' counts go straight to the people's Redis channels."""
    import uuid

    from feeds_server.realtime.broker_redis import RedisBroker
    from feeds_server.realtime.counts import counts_sink

    w = await _two_orgs(client, settings)
    owner, ann, bob, b = w["owner"], w["ann"], w["bob"], w["b"]
    await _mention(owner, b, ann)
    prefix = f"feedstest{uuid.uuid4().hex[:8]}"
    worker_broker, node_broker = RedisBroker(redis_url, prefix), RedisBroker(redis_url, prefix)
    node = UnreadCounts(services, node_broker)

    async def nothing(*_: Any) -> None:
        pass

    await node_broker.start(nothing, nothing, node.deliver)
    anns, bobs = _FakeConnection(ann.id), _FakeConnection(bob.id)
    await node.joined(anns)
    await node.joined(bobs)
    try:
        for _ in range(100):
            if node_broker._ready.is_set():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        sink = counts_sink(services, worker_broker)
        await sink([_changed(b["id"], ann.id)])
        for _ in range(100):
            if anns.frames:
                break
            await asyncio.sleep(0.02)
        assert anns.frames == [{"channel": CHANNEL, "pub": {"data": {"org": b["slug"], "unread": 1, "at": ANY}}}]
        assert bobs.frames == []
    finally:
        await worker_broker.close()
        await node_broker.close()


async def _redis_broker(redis_url: str, received: list) -> Any:  # type: ignore[type-arg]
    import uuid

    from feeds_server.realtime.broker_redis import RedisBroker

    broker = RedisBroker(redis_url, f"feedstest{uuid.uuid4().hex[:8]}")

    async def on_message(org_id: int | None, data: bytes) -> None:
        pass

    async def on_reconnect() -> None:
        pass

    async def on_user(user_id: int, data: bytes) -> None:
        received.append((user_id, data))

    return broker, lambda: broker.start(on_message, on_reconnect, on_user)


async def _until(predicate: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_a_person_joining_while_the_broker_subscribes_is_subscribed_once_it_is_ready(redis_url):
    """The reader subscribes to a snapshot of who is wanted; someone joining during that round trip
    is subscribed right after it, not only at the next reconnect."""
    received: list = []
    broker, start = await _redis_broker(redis_url, received)
    real_pubsub = broker._redis.pubsub

    def pubsub(**kwargs: Any) -> Any:
        ps = real_pubsub(**kwargs)
        first = ps.subscribe

        async def subscribe(*channels: Any) -> Any:
            await broker.subscribe_user(7)  # joins between the snapshot and the reader being ready
            return await first(*channels)

        ps.subscribe = subscribe
        return ps

    broker._redis.pubsub = pubsub
    await start()
    try:
        await _until(broker._ready.is_set)
        await _until(lambda: broker._user_channel(7) in broker._subscribed)
        await broker.publish_to_users([(7, b"n")])
        await _until(lambda: received == [(7, b"n")])
    finally:
        await broker.close()


async def test_leaving_never_waits_on_a_stalled_redis(redis_url):
    received: list = []
    broker, start = await _redis_broker(redis_url, received)
    await start()
    try:
        await _until(broker._ready.is_set)
        await broker.subscribe_user(3)
        await broker.subscribe(9)
        await _until(lambda: broker._user_channel(3) in broker._subscribed)

        async def stalled(*channels: Any) -> None:
            await asyncio.Event().wait()  # Redis never answers

        broker._pubsub.unsubscribe = stalled  # type: ignore[union-attr]
        await asyncio.wait_for(broker.unsubscribe_user(3), 0.2)
        await asyncio.wait_for(broker.unsubscribe(9), 0.2)
        counts = UnreadCounts(services=None, broker=broker)  # type: ignore[arg-type]

        class Conn:
            user_id = 4

            def push(self, frame: bytes) -> None:
                pass

        conn = Conn()
        await asyncio.wait_for(counts.joined(conn), 0.2)
        await asyncio.wait_for(counts.left(conn), 0.2)
    finally:
        await broker.close()
