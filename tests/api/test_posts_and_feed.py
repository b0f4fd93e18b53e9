"""Posting and what feeds show (F-POST-1 … F-POST-8, F-FEED-1 … F-FEED-5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from feeds_server import limits
from feeds_server.store.models import Event, Post, PostAudience
from feeds_server.store.scope import org_session
from tests import factory


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    return await factory.team(client, settings.mail_dir)


base = factory.org_path


async def test_message_of_31999_code_points_is_accepted_and_32000_refused(team):
    """F-POST-2, counted in code points: astral characters count once."""
    owner, ann, bob, org = team
    for char in ("a", "😀"):
        ok = await ann.post(f"{base(org)}/posts", json={"body": char * limits.MAX_POST_CHARS})
        assert ok.status_code == 201, ok.text
        r = await ann.post(f"{base(org)}/posts", json={"body": char * (limits.MAX_POST_CHARS + 1)})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "message_too_long" and err["details"]["limit"] == limits.MAX_POST_CHARS
        c_ok = await bob.post(f"{base(org)}/posts/{ok.json()['post']['id']}/comments", json={"body": char * limits.MAX_POST_CHARS})
        assert c_ok.status_code == 201
        c_bad = await bob.post(f"{base(org)}/posts/{ok.json()['post']['id']}/comments", json={"body": char * (limits.MAX_POST_CHARS + 1)})
        assert c_bad.status_code == 422 and c_bad.json()["error"]["code"] == "message_too_long"


@pytest.mark.parametrize("body", ["", "   ", "\n\t "])
async def test_empty_or_whitespace_messages_are_refused(team, body):
    owner, ann, bob, org = team
    r = await ann.post(f"{base(org)}/posts", json={"body": body})
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_message"


async def test_nul_is_refused_and_script_is_kept_as_text(team):
    owner, ann, bob, org = team
    assert (await ann.post(f"{base(org)}/posts", json={"body": "a\x00b"})).status_code == 422
    r = await ann.post(f"{base(org)}/posts", json={"body": "<script>alert(1)</script>"})
    assert r.json()["post"]["segments"] == [{"type": "text", "text": "<script>alert(1)</script>"}]


async def test_a_refused_post_stores_nothing_and_adds_no_event(team, services):
    owner, ann, bob, org = team
    async with org_session(services.sessions, org["id"]) as s:
        events_before = len((await s.execute(select(Event.id))).all())
    await ann.post(f"{base(org)}/posts", json={"body": "x" * (limits.MAX_POST_CHARS + 1)})
    await ann.post(f"{base(org)}/posts", json={"body": "@[user:999999]"})
    async with org_session(services.sessions, org["id"]) as s:
        assert len((await s.execute(select(Event.id))).all()) == events_before
        assert (await s.execute(select(Post.id))).all() == []


async def test_every_change_is_an_event_with_a_strictly_increasing_sequence(team, services):
    owner, ann, bob, org = team
    p = (await ann.post(f"{base(org)}/posts", json={"body": "one"})).json()["post"]
    c = (await bob.post(f"{base(org)}/posts/{p['id']}/comments", json={"body": "two"})).json()["comment"]
    await bob.delete(f"{base(org)}/comments/{c['id']}")
    await ann.delete(f"{base(org)}/posts/{p['id']}")
    async with org_session(services.sessions, org["id"]) as s:
        rows = (await s.execute(select(Event.seq, Event.type).order_by(Event.id))).all()
    seqs = [seq for seq, _ in rows]
    assert seqs == list(range(1, len(seqs) + 1))
    types = [t for _, t in rows]
    assert types[-4:] == ["post.created", "comment.created", "comment.deleted", "post.deleted"]
    assert "member.joined" in types and "org.created" in types


async def test_mentions_are_checked_and_rendered_with_names(team):
    """F-POST-3: structured mentions of users, roles and groups."""
    owner, ann, bob, org = team
    role = (await owner.get(f"{base(org)}/roles")).json()["roles"][0]
    group = (await owner.post(f"{base(org)}/groups", json={"name": "Crew", "sources": [{"type": "user", "id": bob.id}]})).json()["group"]
    body = f"hi @[user:{bob.id}], @[role:{role['id']}] and @[group:{group['id']}]!"
    post = (await ann.post(f"{base(org)}/posts", json={"body": body})).json()["post"]
    mentions = [(s["kind"], s["name"]) for s in post["segments"] if s["type"] == "mention"]
    assert mentions == [("user", bob.name), ("role", "CEO"), ("group", "Crew")]
    for token in ("@[user:999999]", "@[role:999999]", "@[group:999999]"):
        r = await ann.post(f"{base(org)}/posts", json={"body": token})
        assert r.status_code == 422 and r.json()["error"]["code"] == "mention_target_not_found"


async def test_private_messages_and_replies_are_seen_by_participants_only(team):
    """F-POST-5."""
    owner, ann, bob, org = team
    dm = (await ann.post(f"{base(org)}/posts", json={"body": "just us", "recipient_id": bob.id})).json()["post"]
    reply = await bob.post(f"{base(org)}/posts/{dm['id']}/comments", json={"body": "sure"})
    assert reply.status_code == 201
    for who, sees in ((ann, True), (bob, True), (owner, False)):
        feed = [i["id"] for i in (await who.get(f"{base(org)}/feed")).json()["items"]]
        assert (dm["id"] in feed) is sees
        r = await who.get(f"{base(org)}/posts/{dm['id']}/comments")
        assert r.status_code == (200 if sees else 404)
    r = await owner.post(f"{base(org)}/posts/{dm['id']}/comments", json={"body": "me too"})
    assert r.status_code == 404


async def test_authors_delete_their_own_others_cannot_admins_moderate(team):
    """F-POST-8 (admin deletion is the documented moderation feature)."""
    owner, ann, bob, org = team
    p1 = (await ann.post(f"{base(org)}/posts", json={"body": "mine"})).json()["post"]
    r = await bob.delete(f"{base(org)}/posts/{p1['id']}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_author"
    c = (await bob.post(f"{base(org)}/posts/{p1['id']}/comments", json={"body": "c"})).json()["comment"]
    assert (await ann.delete(f"{base(org)}/comments/{c['id']}")).status_code == 403
    assert (await bob.delete(f"{base(org)}/comments/{c['id']}")).status_code == 204
    assert (await owner.delete(f"{base(org)}/posts/{p1['id']}")).status_code == 204
    assert (await ann.get(f"{base(org)}/posts/{p1['id']}")).status_code == 404
    assert p1["id"] not in [i["id"] for i in (await ann.get(f"{base(org)}/feed")).json()["items"]]


async def _add_record_item(services, org_id: int, module: str, users: list[int], at):  # type: ignore[no-untyped-def]
    """A record-update item as the records integration writes it (followers' channels, a module)."""
    async with org_session(services.sessions, org_id) as s:
        post = Post(kind="record", author_id=None, body=f"{module} record changed", module=module, data={}, created_at=at)
        s.add(post)
        await s.flush()
        s.add_all(PostAudience(post_id=post.id, channel=f"u:{u}", module=module, created_at=at) for u in users)
        return post.id


async def test_feed_filters_by_module_and_time_and_pages_by_cursor(team, services):
    """F-FEED-1, F-FEED-2: newest first; module and time filters; keyset pages with no gaps or repeats."""
    owner, ann, bob, org = team
    now = services.clock()
    deal = await _add_record_item(services, org["id"], "Deals", [ann.id], now - timedelta(days=3))
    lead = await _add_record_item(services, org["id"], "Leads", [ann.id], now - timedelta(days=1))
    ids = [(await ann.post(f"{base(org)}/posts", json={"body": f"p{i}"})).json()["post"]["id"] for i in range(20)]
    only_deals = (await ann.get(f"{base(org)}/feed", params={"module": "Deals"})).json()["items"]
    assert [i["id"] for i in only_deals] == [deal]
    window = {"from": (now - timedelta(days=2)).isoformat(), "to": (now - timedelta(hours=1)).isoformat()}
    assert [i["id"] for i in (await ann.get(f"{base(org)}/feed", params=window)).json()["items"]] == [lead]
    naive = await ann.get(f"{base(org)}/feed", params={"from": "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    seen, cursor = [], None
    while True:
        page = (await ann.get(f"{base(org)}/feed", params={"limit": 7, **({"cursor": cursor} if cursor else {})})).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids)) + [lead, deal]
    assert (await bob.get(f"{base(org)}/feed", params={"module": "Deals"})).json()["items"] == []
    for bad in ("garbage", "AAAA", "MTIz"):
        r = await ann.get(f"{base(org)}/feed", params={"cursor": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"


async def test_pagination_is_stable_while_new_posts_arrive(team):
    owner, ann, bob, org = team
    first = [(await ann.post(f"{base(org)}/posts", json={"body": f"old {i}"})).json()["post"]["id"] for i in range(15)]
    page = (await bob.get(f"{base(org)}/feed", params={"limit": 5})).json()
    seen = [i["id"] for i in page["items"]]
    cursor = page["next_cursor"]
    while cursor:
        await asyncio.gather(*(ann.post(f"{base(org)}/posts", json={"body": "new"}) for _ in range(3)))
        page = (await bob.get(f"{base(org)}/feed", params={"limit": 5, "cursor": cursor})).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen == list(reversed(first))


async def test_unticked_modules_vanish_from_every_feed_and_only_admins_choose(team, services):
    """F-FEED-5."""
    owner, ann, bob, org = team
    deal = await _add_record_item(services, org["id"], "Deals", [ann.id], services.clock())
    r = await ann.put(f"{base(org)}/feed-modules", json={"modules": {"Deals": False}})
    assert r.status_code == 403
    assert (await ann.get(f"{base(org)}/feed-modules")).status_code == 403
    r = await owner.put(f"{base(org)}/feed-modules", json={"modules": {"Deals": False}})
    assert {m["module"]: m["enabled"] for m in r.json()["modules"]}["Deals"] is False
    assert deal not in [i["id"] for i in (await ann.get(f"{base(org)}/feed")).json()["items"]]
    assert (await ann.get(f"{base(org)}/feed", params={"module": "Deals"})).json()["items"] == []
    await owner.put(f"{base(org)}/feed-modules", json={"modules": {"Deals": True}})
    assert deal in [i["id"] for i in (await ann.get(f"{base(org)}/feed")).json()["items"]]


async def test_page_size_limits(team):
    owner, ann, bob, org = team
    assert (await ann.get(f"{base(org)}/feed", params={"limit": limits.MAX_PAGE_SIZE})).status_code == 200
    for bad in (0, limits.MAX_PAGE_SIZE + 1, 10**12):
        assert (await ann.get(f"{base(org)}/feed", params={"limit": bad})).status_code == 422


async def test_idempotency_key_creates_once_and_refuses_another_body(team):
    owner, ann, bob, org = team
    h = {"Idempotency-Key": "retry-1"}
    results = await asyncio.gather(*(ann.post(f"{base(org)}/posts", json={"body": "once"}, headers=h) for _ in range(5)))
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["post"]["id"] for r in results}) == 1
    feed = (await ann.get(f"{base(org)}/feed")).json()["items"]
    assert [i["body"] for i in feed].count("once") == 1
    r = await ann.post(f"{base(org)}/posts", json={"body": "other"}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "idempotency_key_reused"
    r = await bob.post(f"{base(org)}/posts", json={"body": "once"}, headers=h)
    assert r.status_code == 201 and r.json()["post"]["author"]["id"] == bob.id
