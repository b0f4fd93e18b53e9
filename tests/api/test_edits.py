"""Editing posts and comments, their history, hiding an earlier text, and the org's edit window (F-POST-9)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select

from feeds_server import limits
from feeds_server.api.app import create_app
from feeds_server.realtime.history import recover
from feeds_server.runtime.services import Services
from feeds_server.store.models import EmailJob, Event, ItemVersion, Mention, Post, PostAudience
from feeds_server.store.scope import org_session
from tests import factory


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    return await factory.team(client, settings.mail_dir)


base = factory.org_path


async def _events(services, org_id: int, type_: str) -> list[Event]:  # type: ignore[no-untyped-def]
    async with org_session(services.sessions, org_id) as s:
        return list((await s.execute(select(Event).where(Event.type == type_).order_by(Event.seq))).scalars())


async def _mention_notes(actor, org, post_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    notes = (await actor.get(f"{base(org)}/notifications")).json()["notifications"]
    return [n for n in notes if n["kind"] == "mention" and n["post_id"] == post_id]


async def test_an_edit_obeys_the_limits_of_a_new_message(team):
    """F-POST-2 on edits: 31,999 code points accepted, 32,000 refused; empty and NUL refused."""
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "first"})).json()["post"]
    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "c"})).json()["comment"]
    for url in (f"{base(org)}/posts/{post['id']}", f"{base(org)}/comments/{comment['id']}"):
        ok = await ann.patch(url, json={"body": "😀" * limits.MAX_POST_CHARS})
        assert ok.status_code == 200, ok.text
        r = await ann.patch(url, json={"body": "😀" * (limits.MAX_POST_CHARS + 1)})
        assert r.status_code == 422 and r.json()["error"]["code"] == "message_too_long"
        assert r.json()["error"]["details"]["limit"] == limits.MAX_POST_CHARS
        assert (await ann.patch(url, json={"body": "  "})).json()["error"]["code"] == "empty_message"
        assert (await ann.patch(url, json={"body": "a\x00b"})).status_code == 422


async def test_only_the_author_edits_and_a_record_update_is_not_editable(team, services):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "mine"})).json()["post"]
    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "my comment"})).json()["comment"]
    for other in (bob, owner):  # an admin moderates by hiding or deleting, not by rewriting
        r = await other.patch(f"{base(org)}/posts/{post['id']}", json={"body": "theirs"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_author"
        r = await other.patch(f"{base(org)}/comments/{comment['id']}", json={"body": "theirs"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_author"
    async with org_session(services.sessions, org["id"]) as s:
        record = Post(kind="record", author_id=ann.id, body="Deal changed", module="Deals", data={}, created_at=services.clock())
        s.add(record)
        await s.flush()
        s.add(PostAudience(post_id=record.id, channel="org", module="Deals", created_at=record.created_at))
        record_id = record.id
    r = await ann.patch(f"{base(org)}/posts/{record_id}", json={"body": "rewritten"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_editable"


async def test_an_unchanged_text_is_no_edit(team, services):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "same"})).json()["post"]
    r = await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "same"})
    assert r.status_code == 200 and r.json()["post"]["edited_at"] is None
    assert await _events(services, org["id"], "post.edited") == []
    history = (await ann.get(f"{base(org)}/posts/{post['id']}/history")).json()
    assert [v["current"] for v in history["versions"]] == [True]


async def test_history_lists_every_text_newest_first_with_who_and_when(team, services):
    owner, ann, bob, org = team
    start = services.clock()
    post = (await ann.post(f"{base(org)}/posts", json={"body": "v1"})).json()["post"]
    assert post["edited_at"] is None
    services.clock = lambda: start + timedelta(seconds=10)
    first = (await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "v2"})).json()["post"]
    services.clock = lambda: start + timedelta(seconds=20)
    second = (await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "v3"})).json()["post"]
    assert first["edited_at"] < second["edited_at"]
    shown = (await bob.get(f"{base(org)}/posts/{post['id']}")).json()["post"]
    assert shown["body"] == "v3" and shown["edited_at"] == second["edited_at"]
    assert (await bob.get(f"{base(org)}/feed")).json()["items"][0]["edited_at"] == second["edited_at"]

    versions = (await bob.get(f"{base(org)}/posts/{post['id']}/history")).json()["versions"]
    assert [v["body"] for v in versions] == ["v3", "v2", "v1"]
    assert [v["current"] for v in versions] == [True, False, False]
    assert all(v["author"] == {"id": ann.id, "name": ann.name} for v in versions)
    assert [v["written_at"] for v in versions] == [second["edited_at"], first["edited_at"], post["created_at"]]
    assert versions[1]["replaced_at"] == second["edited_at"]

    page = (await bob.get(f"{base(org)}/posts/{post['id']}/history", params={"limit": 1})).json()
    assert [v["body"] for v in page["versions"]] == ["v3", "v2"] and page["next_before"] == versions[1]["version_id"]
    rest = (await bob.get(f"{base(org)}/posts/{post['id']}/history", params={"before": page["next_before"]})).json()
    assert [v["body"] for v in rest["versions"]] == ["v1"] and rest["next_before"] is None


async def test_a_comment_keeps_its_history_apart_from_its_post(team):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "post"})).json()["post"]
    comment = (await bob.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "c1"})).json()["comment"]
    edited = (await bob.patch(f"{base(org)}/comments/{comment['id']}", json={"body": "c2"})).json()["comment"]
    assert edited["body"] == "c2" and edited["edited_at"] is not None
    listed = (await ann.get(f"{base(org)}/posts/{post['id']}/comments")).json()["comments"]
    assert listed[0]["body"] == "c2" and listed[0]["edited_at"] == edited["edited_at"]
    assert (await ann.get(f"{base(org)}/posts/{post['id']}")).json()["post"]["latest_comments"][0]["edited_at"] == edited["edited_at"]
    versions = (await ann.get(f"{base(org)}/comments/{comment['id']}/history")).json()["versions"]
    assert [v["body"] for v in versions] == ["c2", "c1"]
    assert [v["body"] for v in (await ann.get(f"{base(org)}/posts/{post['id']}/history")).json()["versions"]] == ["post"]


async def test_a_newly_mentioned_person_is_notified_once_and_mentions_follow_the_text(team, services):
    """F-POST-3 on edits: the one the edit adds is notified (in the app and by email), the one
    mentioned before is not notified again, nor is one removed and mentioned again."""
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": f"hi @[user:{bob.id}]"})).json()["post"]
    assert len(await _mention_notes(bob, org, post["id"])) == 1
    url = f"{base(org)}/posts/{post['id']}"
    r = await ann.patch(url, json={"body": f"hi @[user:{bob.id}] and @[user:{owner.id}]"})
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["post"]["segments"] if s["type"] == "mention"] == [bob.name, owner.name]
    assert len(await _mention_notes(bob, org, post["id"])) == 1
    notes = await _mention_notes(owner, org, post["id"])
    assert len(notes) == 1 and notes[0]["data"]["via"] == "user" and owner.name in notes[0]["data"]["excerpt"]
    await ann.patch(url, json={"body": "nobody now"})
    await ann.patch(url, json={"body": f"again @[user:{owner.id}] @[user:{bob.id}]"})
    assert len(await _mention_notes(owner, org, post["id"])) == 1
    assert len(await _mention_notes(bob, org, post["id"])) == 1
    async with org_session(services.sessions, org["id"]) as s:
        rows = (await s.execute(select(Mention.kind, Mention.target_id).where(Mention.post_id == post["id"]))).all()
        jobs = (await s.execute(select(EmailJob.user_id).where(EmailJob.kind == "mention"))).scalars().all()
    assert sorted(rows) == sorted([("user", owner.id), ("user", bob.id)])
    assert sorted(jobs) == sorted([bob.id, owner.id])

    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "plain"})).json()["comment"]
    await ann.patch(f"{base(org)}/comments/{comment['id']}", json={"body": f"cc @[user:{bob.id}]"})
    from_comment = [n for n in await _mention_notes(bob, org, post["id"]) if n["comment_id"] == comment["id"]]
    assert len(from_comment) == 1
    await ann.patch(f"{base(org)}/comments/{comment['id']}", json={"body": f"cc @[user:{bob.id}] again"})
    assert len([n for n in await _mention_notes(bob, org, post["id"]) if n["comment_id"] == comment["id"]]) == 1


async def test_mentions_in_an_edit_are_checked_as_on_creation(team, client):
    owner, ann, bob, org = team
    group = (await owner.post(f"{base(org)}/groups", json={"name": "Inner", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]
    post = (await ann.post(f"{base(org)}/posts", json={"body": "inside", "group_id": group["id"]})).json()["post"]
    r = await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "@[user:999999]"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "mention_target_not_found"
    r = await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": f"see @[user:{bob.id}]"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "mention_outside_audience"
    assert (await ann.get(f"{base(org)}/posts/{post['id']}")).json()["post"]["body"] == "inside"


async def test_a_member_who_cannot_see_the_item_gets_404(team, client):
    """F-SEC-1: history, edits and moderation of an item outside one's audience answer as if it did not exist."""
    owner, ann, bob, org = team
    group = (await owner.post(f"{base(org)}/groups", json={"name": "Closed", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]
    post = (await ann.post(f"{base(org)}/posts", json={"body": "secret", "group_id": group["id"]})).json()["post"]
    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "secret c"})).json()["comment"]
    await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "secret 2"})
    for url in (f"/posts/{post['id']}/history", f"/comments/{comment['id']}/history"):
        r = await bob.get(base(org) + url)
        assert r.status_code == 404, r.text
    assert (await bob.patch(f"{base(org)}/posts/{post['id']}", json={"body": "x"})).status_code == 404
    assert (await bob.patch(f"{base(org)}/comments/{comment['id']}", json={"body": "x"})).status_code == 404
    assert (await ann.get(f"{base(org)}/posts/{post['id']}/history")).status_code == 200
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    other = await factory.create_org(stranger)
    assert (await stranger.get(f"/api/v1/orgs/{other['slug']}/posts/{post['id']}/history")).status_code == 404


async def test_an_admin_hides_a_version_from_everyone_else_and_shows_it_again(team, services):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "rude words"})).json()["post"]
    await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "kind words"})
    old = (await bob.get(f"{base(org)}/posts/{post['id']}/history")).json()["versions"][1]
    url = f"{base(org)}/versions/{old['version_id']}"
    r = await ann.patch(url, json={"hidden": True})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    r = await owner.patch(url, json={"hidden": True})
    assert r.status_code == 200, r.text
    assert r.json()["version"]["hidden"] is True and r.json()["version"]["hidden_by"]["id"] == owner.id
    for reader in (ann, bob):
        entry = (await reader.get(f"{base(org)}/posts/{post['id']}/history")).json()["versions"][1]
        assert entry["hidden"] is True and entry["body"] is None and entry["segments"] is None
        assert entry["version_id"] == old["version_id"] and entry["written_at"] == old["written_at"]
    entry = (await owner.get(f"{base(org)}/posts/{post['id']}/history")).json()["versions"][1]
    assert entry["hidden"] is True and entry["body"] == "rude words"
    audit = (await owner.get(f"{base(org)}/audit", params={"action": "version.*"})).json()
    entries = audit.get("entries") or audit.get("items")
    assert [e["action"] for e in entries] == ["version.hidden"]
    assert entries[0]["target"] == {"type": "item_version", "id": old["version_id"]}

    [hidden_event] = await _events(services, org["id"], "version.hidden")
    assert hidden_event.channels == ["org"] and "rude" not in orjson.dumps(hidden_event.payload).decode()
    assert hidden_event.payload == {"version_id": old["version_id"], "post_id": post["id"], "comment_id": None}

    assert (await owner.patch(url, json={"hidden": False})).json()["version"]["hidden"] is False
    assert (await bob.get(f"{base(org)}/posts/{post['id']}/history")).json()["versions"][1]["body"] == "rude words"
    assert (await owner.patch(f"{base(org)}/versions/999999", json={"hidden": True})).status_code == 404


async def test_the_edit_window_is_unlimited_by_default_closes_after_its_seconds_and_0_turns_editing_off(team, services):
    owner, ann, bob, org = team
    assert (await ann.get(base(org))).json()["org"]["edit_window_seconds"] is None
    start = services.clock()
    post = (await ann.post(f"{base(org)}/posts", json={"body": "v1"})).json()["post"]
    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "c1"})).json()["comment"]
    services.clock = lambda: start + timedelta(days=6)  # within the sign-in's lifetime
    assert (await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "v2"})).status_code == 200

    assert (await ann.patch(base(org), json={"edit_window_seconds": 60})).status_code == 403
    assert (await owner.patch(base(org), json={"edit_window_seconds": -1})).status_code == 422
    too_long = await owner.patch(base(org), json={"edit_window_seconds": limits.MAX_EDIT_WINDOW_SECONDS + 1})
    assert too_long.status_code == 422
    r = await owner.patch(base(org), json={"edit_window_seconds": 60})
    assert r.status_code == 200 and r.json()["org"]["edit_window_seconds"] == 60
    assert r.json()["org"]["name"] == org["name"]
    services.clock = lambda: start + timedelta(seconds=60)
    assert (await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "v3"})).status_code == 200
    services.clock = lambda: start + timedelta(seconds=61)
    for url in (f"/posts/{post['id']}", f"/comments/{comment['id']}"):
        r = await ann.patch(base(org) + url, json={"body": "late"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "edit_window_closed", r.text

    assert (await owner.patch(base(org), json={"edit_window_seconds": 0})).json()["org"]["edit_window_seconds"] == 0
    fresh = (await ann.post(f"{base(org)}/posts", json={"body": "new"})).json()["post"]
    r = await ann.patch(f"{base(org)}/posts/{fresh['id']}", json={"body": "newer"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "editing_disabled"

    r = await owner.patch(base(org), json={"edit_window_seconds": None})
    assert r.json()["org"]["edit_window_seconds"] is None
    assert (await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "v4"})).status_code == 200
    # Renaming the org leaves its window alone.
    await owner.patch(base(org), json={"edit_window_seconds": 30})
    assert (await owner.patch(base(org), json={"name": "Renamed"})).json()["org"]["edit_window_seconds"] == 30
    audit = (await owner.get(f"{base(org)}/audit", params={"action": "org.edit_window_changed"})).json()
    assert len(audit.get("entries") or audit.get("items")) == 4


async def test_edits_are_events_on_the_items_audience_and_are_recovered(team, services):
    """F-RT-1, F-RT-2: `post.edited` and `comment.edited` go where `post.created` went, and a client
    that reconnects gets them from history."""
    owner, ann, bob, org = team
    group = (await owner.post(f"{base(org)}/groups", json={"name": "Crew", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]
    post = (await ann.post(f"{base(org)}/posts", json={"body": "g1", "group_id": group["id"]})).json()["post"]
    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "k1"})).json()["comment"]
    edited_post = (await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "g2"})).json()["post"]
    edited_comment = (await ann.patch(f"{base(org)}/comments/{comment['id']}", json={"body": "k2"})).json()["comment"]

    created = (await _events(services, org["id"], "post.created"))[-1]
    [post_event] = await _events(services, org["id"], "post.edited")
    [comment_event] = await _events(services, org["id"], "comment.edited")
    assert post_event.channels == created.channels == [f"g:{group['id']}"]
    assert comment_event.channels == created.channels
    assert post_event.actor_user_id == ann.id
    assert post_event.payload["post"]["body"] == "g2" and post_event.payload["post"]["edited_at"] == edited_post["edited_at"]
    assert comment_event.payload["post_id"] == post["id"]
    assert {k: comment_event.payload["comment"][k] for k in ("id", "body", "edited_at")} == {k: edited_comment[k] for k in ("id", "body", "edited_at")}

    async with org_session(services.sessions, org["id"]) as session:
        recovered = await recover(session, org["id"], f"g:{group['id']}", created.seq, [])
        outside = await recover(session, org["id"], "org", created.seq, [])
        versions = (await session.execute(select(ItemVersion.body).order_by(ItemVersion.id))).scalars().all()
    assert recovered.recovered
    types = [orjson.loads(data)["type"] for _, data in recovered.publications]
    assert types == ["comment.created", "post.edited", "comment.edited"]
    assert all(orjson.loads(data)["type"] not in {"post.edited", "comment.edited"} for _, data in outside.publications)
    assert versions == ["g1", "k1"]


@pytest.mark.parametrize("backend", ["sqlite"])  # the limits are the same on PostgreSQL
async def test_an_edit_spends_the_posting_rate(settings):
    """An edit counts against `posts_per_user` like a post or a comment (docs/operations.md)."""
    services = Services.build(replace(settings, rate_posts_per_user=(2, 60)))
    app = create_app(services=services)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            ann = await factory.sign_up(client, factory.unique("Ann"))
            org = await factory.create_org(ann)
            post = (await ann.post(f"{base(org)}/posts", json={"body": "one"})).json()["post"]
            assert (await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "two"})).status_code == 200
            r = await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "three"})
            assert r.status_code == 429 and r.json()["error"]["details"]["limit"] == "posts_per_user"
            assert (await ann.get(f"{base(org)}/posts/{post['id']}")).json()["post"]["body"] == "two"
    finally:
        await app.state.limiter.close()
        await app.state.hub.broker.close()
        await services.close()


async def test_erasing_a_member_takes_their_mentions_out_of_earlier_texts(team):
    """A person erased from the org (GDPR) is no longer named by the history of others' items."""
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": f"thanks @[user:{bob.id}]"})).json()["post"]
    await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "thanks all"})
    r = await owner.post(f"{base(org)}/members/{bob.id}/erase")
    assert r.status_code == 200, r.text
    versions = (await ann.get(f"{base(org)}/posts/{post['id']}/history")).json()["versions"]
    assert [v["body"] for v in versions][0] == "thanks all"
    assert f"@[user:{bob.id}]" not in versions[1]["body"] and versions[1]["body"].startswith("thanks ")


async def test_a_persons_export_holds_the_earlier_texts_of_their_items(team):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "draft"})).json()["post"]
    await ann.patch(f"{base(org)}/posts/{post['id']}", json={"body": "final"})
    comment = (await bob.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "bob's first"})).json()["comment"]
    await bob.patch(f"{base(org)}/comments/{comment['id']}", json={"body": "bob's second"})
    [mine] = [o for o in (await ann.get("/api/v1/me/export")).json()["orgs"] if o["org"]["slug"] == org["slug"]]
    assert [(v["post_id"], v["comment_id"], v["body"]) for v in mine["earlier_versions"]] == [(post["id"], None, "draft")]
