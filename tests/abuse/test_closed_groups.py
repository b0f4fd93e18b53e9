"""Closed groups and private messages hold against members of the same org (F-POST-3, F-POST-4,
F-POST-5, F-POST-6): a mention never widens who sees an item, and only a group's members write to it.

The attacker is a member of the org who is in neither the group nor the conversation. Being
mentioned used to let them in (the item, its comments, its files, live and in their feed), and they
could send a private message into a group they are not in. Now a mention of someone outside the
item's audience is refused with 422 `mention_outside_audience` naming them, and nothing of the
message is written; a non-member writing to a group gets the 404 of a group that does not exist.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import func, select

from feeds_server.store.models import Comment, EmailJob, Event, EventChannel, Mention, Notification, Post, PostAudience
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.records_helpers import crm, ev, items, send  # noqa: F401 - fixture
from tests.realtime.helpers import Recorder, centrifuge_client

COUNTED = (Post, PostAudience, Comment, Mention, Event, EventChannel, Notification, EmailJob)


async def _circle(client, settings, services=None):  # type: ignore[no-untyped-def]
    """An org where `member` and the owner are in group Inner, and `outsider` and `colleague` are not.
    `member` and `outsider` hold role Rep."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner, factory.unique("circle"))
    b = f"/api/v1/orgs/{org['slug']}"
    ceo = (await owner.get(f"{b}/roles")).json()["roles"][0]["id"]
    rep = (await owner.post(f"{b}/roles", json={"name": "Rep", "parent_id": ceo})).json()["role"]["id"]
    people: dict[str, Any] = {"owner": owner}
    for name, role in (("member", rep), ("outsider", rep), ("colleague", None)):
        actor = await factory.sign_up(client, factory.unique(name.title()))
        await factory.invite_and_join(owner, org["slug"], actor, settings.mail_dir, services, **({"role_id": role} if role else {}))
        people[name] = actor
    sources = [{"type": "user", "id": owner.id}, {"type": "user", "id": people["member"].id}]
    inner = (await owner.post(f"{b}/groups", json={"name": "Inner", "sources": sources})).json()["group"]["id"]
    return org, b, people, {"inner": inner, "rep": rep}


async def _written(services, org_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with org_session(services.sessions, org_id) as s:
        return {m.__tablename__: (await s.execute(select(func.count()).select_from(m))).scalar_one() for m in COUNTED}


def _refused_naming(r, *actors) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "mention_outside_audience"
    assert error["details"]["users"] == [{"id": a.id, "name": a.name} for a in sorted(actors, key=lambda a: a.id)]
    assert all(a.name in error["message"] for a in actors)


async def _sees_nothing(actor, b: str, *post_ids: int) -> None:  # type: ignore[no-untyped-def]
    feed = {i["id"] for i in (await actor.get(f"{b}/feed", params={"limit": "100"})).json()["items"]}
    assert not feed & set(post_ids)
    for post_id in post_ids:
        assert (await actor.get(f"{b}/posts/{post_id}")).status_code == 404
    notes = (await actor.get(f"{b}/notifications")).json()
    assert notes["unread"] == 0 and notes["notifications"] == []


async def test_a_mention_of_a_non_member_in_a_group_post_is_refused_and_nothing_is_written(client, settings, services):
    """F-POST-3, F-POST-4: the outsider named, no post, audience row, event, notification or email;
    the same through the multipart path with a file (nothing left in storage)."""
    org, b, p, ids = await _circle(client, settings)
    before = await _written(services, org["id"])
    body = {"body": f"@[user:{p['outsider'].id}] have a look", "group_id": ids["inner"]}
    _refused_naming(await p["member"].post(f"{b}/posts", json=body), p["outsider"])
    r = await p["member"].post(f"{b}/posts", files=[("files", ("plan.txt", b"secret plan", "text/plain"))], data={"message": json.dumps(body)})
    _refused_naming(r, p["outsider"])
    both = {"body": f"@[user:{p['colleague'].id}] and @[user:{p['outsider'].id}], @[user:{p['owner'].id}]", "group_id": ids["inner"]}
    _refused_naming(await p["member"].post(f"{b}/posts", json=both), p["outsider"], p["colleague"])
    assert await _written(services, org["id"]) == before
    files = settings.files_dir
    assert not files.exists() or not [f for f in files.rglob("*") if f.is_file()]
    await _sees_nothing(p["outsider"], b)


async def test_a_mention_of_a_non_member_in_a_comment_on_a_group_post_is_refused(client, settings, services):
    """F-POST-3, F-POST-6: a comment follows its post's audience; mentioning someone outside it is refused."""
    org, b, p, ids = await _circle(client, settings)
    post = (await p["member"].post(f"{b}/posts", json={"body": "inner only", "group_id": ids["inner"]})).json()["post"]
    before = await _written(services, org["id"])
    r = await p["owner"].post(f"{b}/posts/{post['id']}/comments", json={"body": f"cc @[user:{p['outsider'].id}]"})
    _refused_naming(r, p["outsider"])
    assert await _written(services, org["id"]) == before
    assert (await p["owner"].get(f"{b}/posts/{post['id']}")).json()["post"]["comment_count"] == 0
    await _sees_nothing(p["outsider"], b, post["id"])
    ok = await p["owner"].post(f"{b}/posts/{post['id']}/comments", json={"body": f"cc @[user:{p['member'].id}]"})
    assert ok.status_code == 201, ok.text


async def test_a_private_message_mentioning_a_third_person_is_refused_and_so_is_such_a_reply(client, settings, services):
    """F-POST-3, F-POST-5: only the two participants see a private message, and it stays so."""
    org, b, p, ids = await _circle(client, settings)
    before = await _written(services, org["id"])
    body = {"body": f"between us, about @[user:{p['outsider'].id}]", "recipient_id": p["colleague"].id}
    _refused_naming(await p["member"].post(f"{b}/posts", json=body), p["outsider"])
    assert await _written(services, org["id"]) == before
    ok = await p["member"].post(f"{b}/posts", json={"body": f"hi @[user:{p['colleague'].id}]", "recipient_id": p["colleague"].id})
    assert ok.status_code == 201, ok.text
    post_id = ok.json()["post"]["id"]
    before = await _written(services, org["id"])
    r = await p["colleague"].post(f"{b}/posts/{post_id}/comments", json={"body": f"ask @[user:{p['outsider'].id}]"})
    _refused_naming(r, p["outsider"])
    assert await _written(services, org["id"]) == before
    await _sees_nothing(p["outsider"], b, post_id)


async def test_a_non_member_cannot_post_or_send_privately_to_a_group(client, settings, services):
    """F-POST-4: only members write to a group. A non-member gets the very answer given for a group
    that does not exist (404 `group_not_found`), so they learn nothing of it; members still can."""
    org, b, p, ids = await _circle(client, settings)
    before = await _written(services, org["id"])
    missing = factory.answer_of(await p["outsider"].post(f"{b}/posts", json={"body": "hello?", "group_id": ids["inner"] + 1000, "private": True}))
    for private in (True, False):
        r = await p["outsider"].post(f"{b}/posts", json={"body": "let me in", "group_id": ids["inner"], "private": private})
        assert r.status_code == 404 and factory.answer_of(r) == missing, r.text
    assert missing["error"]["code"] == "group_not_found"
    assert await _written(services, org["id"]) == before
    for private in (True, False):
        r = await p["member"].post(f"{b}/posts", json={"body": f"hi @[user:{p['owner'].id}]", "group_id": ids["inner"], "private": private})
        assert r.status_code == 201, r.text
        assert (await p["owner"].get(f"{b}/posts/{r.json()['post']['id']}")).status_code == 200
    await _sees_nothing(p["outsider"], b)


async def test_a_mention_of_someone_who_does_not_follow_a_record_in_a_comment_on_its_update_is_refused(crm, services):  # noqa: F811
    """F-POST-3, F-POST-6, F-FOLLOW-3: a record update is seen by the record's followers only; a
    comment on it cannot bring in a colleague who does not follow it (nor send them its note)."""
    assert (await send(crm, ev("c1", name="Globex", owner_email=crm["rep"].email))).status_code == 200
    item = (await items(crm["rep"], crm))[0]
    before = await _written(services, crm["org"]["id"])
    r = await crm["rep"].post(f"{crm['b']}/posts/{item['id']}/comments", json={"body": f"@[user:{crm['manager'].id}] see this"})
    _refused_naming(r, crm["manager"])
    assert await _written(services, crm["org"]["id"]) == before
    await _sees_nothing(crm["manager"], crm["b"], item["id"])


async def test_role_and_group_mentions_in_a_group_post_reach_only_its_members(client, settings, services):
    """F-POST-3, F-NOTIF-1: @role and @group inside a group post notify those of the group who hold
    the role or are in the mentioned group; the outsider who also holds it sees and hears nothing."""
    org, b, p, ids = await _circle(client, settings)
    reps = [{"type": "user", "id": p["member"].id}, {"type": "user", "id": p["outsider"].id}]
    pair = (await p["owner"].post(f"{b}/groups", json={"name": "Pair", "sources": reps})).json()["group"]["id"]
    for mention in (f"@[role:{ids['rep']}]", f"@[group:{pair}]"):
        r = await p["owner"].post(f"{b}/posts", json={"body": f"{mention} please", "group_id": ids["inner"]})
        assert r.status_code == 201, r.text
        post_id = r.json()["post"]["id"]
        async with org_session(services.sessions, org["id"]) as s:
            channels = set((await s.execute(select(PostAudience.channel).where(PostAudience.post_id == post_id))).scalars())
            events = list((await s.execute(select(Event.channels).where(Event.type == "post.created").order_by(Event.seq))).scalars())
        assert channels == {f"g:{ids['inner']}"} and events[-1] == [f"g:{ids['inner']}"]
        await _sees_nothing(p["outsider"], b, post_id)
    notes = (await p["member"].get(f"{b}/notifications")).json()
    assert notes["unread"] == 2 and {n["data"]["via"] for n in notes["notifications"]} == {"role", "group"}


async def test_the_outsider_receives_nothing_live(node, settings, services):
    """F-POST-3, F-RT-1: with a real WebSocket client connected, the outsider gets none of the group's
    posts, mentions or notifications, only what the whole org sees (the marker that ends the test)."""
    client = httpx.AsyncClient(base_url=node.url, timeout=10)
    org, b, p, ids = await _circle(client, settings, services)
    recorder = Recorder()
    ws = centrifuge_client(node.ws_url, p["outsider"], org["slug"], recorder)
    await ws.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    mention = f"@[user:{p['outsider'].id}]"
    assert (await p["member"].post(f"{b}/posts", json={"body": f"{mention} look", "group_id": ids["inner"]})).status_code == 422
    assert (await p["member"].post(f"{b}/posts", json={"body": f"{mention} psst", "recipient_id": p["colleague"].id})).status_code == 422
    r = await p["member"].post(f"{b}/posts", json={"body": f"@[role:{ids['rep']}] inner only", "group_id": ids["inner"]})
    assert r.status_code == 201, r.text
    hidden = r.json()["post"]["id"]
    assert (await p["owner"].post(f"{b}/posts/{hidden}/comments", json={"body": f"and {mention}"})).status_code == 422
    assert (await p["owner"].post(f"{b}/posts/{hidden}/comments", json={"body": "fine"})).status_code == 201
    marker = (await p["owner"].post(f"{b}/posts", json={"body": "marker for everyone"})).json()["post"]["id"]
    await recorder.wait_for(lambda: any(d["payload"].get("post", {}).get("id") == marker for d in recorder.of_type("post.created")))
    await asyncio.sleep(0.3)
    await ws.disconnect()
    assert [d["payload"]["post"]["id"] for d in recorder.of_type("post.created")] == [marker]
    assert recorder.of_type("comment.created") == [] and recorder.of_type("notifications.created") == []
    await _sees_nothing(p["outsider"], b, hidden)

