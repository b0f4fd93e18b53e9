"""Emoji reactions on posts, messages, record updates and comments: validation, limits, toggles,
counts in every view, who reacted, visibility, the author's merged notification, and events."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from feeds_server import limits
from feeds_server.store.models import EmailJob, Event, Reaction
from feeds_server.store.scope import org_session
from tests import factory

# Twenty-one distinct emojis: the limit's boundary on both sides.
MANY = ["😀", "😂", "😍", "😎", "😢", "😡", "👍", "👎", "👏", "🙏", "🎉", "🔥", "💯", "✅", "❌", "🚀", "👀", "🤔", "🙌", "💡", "🌟"]
assert len(MANY) == limits.MAX_REACTIONS_PER_ITEM + 1


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    return await factory.team(client, settings.mail_dir)


base = factory.org_path


async def react(actor, org, post_id: int, emoji: str, on: bool = True, comment_id: int | None = None):  # type: ignore[no-untyped-def]
    path = f"{base(org)}/comments/{comment_id}/reactions" if comment_id else f"{base(org)}/posts/{post_id}/reactions"
    return await actor.put(path, json={"emoji": emoji, "on": on})


async def _events(services, org, type_: str) -> list[Event]:  # type: ignore[no-untyped-def]
    async with org_session(services.sessions, org["id"]) as s:
        return list((await s.execute(select(Event).where(Event.type == type_).order_by(Event.seq))).scalars())


@pytest.mark.parametrize("emoji", ["x", "ok", "👍👍", "a👍", "👍 ", "", "🏽", "👍\n", "\u200d", "1"])
async def test_text_several_emojis_and_control_characters_are_refused(team, emoji):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    r = await react(bob, org, post["id"], emoji)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_emoji"
    assert (await bob.get(f"{base(org)}/posts/{post['id']}")).json()["post"]["reactions"] == []


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("👍", "👍"), ("👍🏽", "👍🏽"), ("👨‍👩‍👧", "👨‍👩‍👧"), ("🇫🇷", "🇫🇷"), ("❤", "❤️"), ("❤️", "❤️"), ("1️⃣", "1️⃣")],
)
async def test_one_emoji_sequence_is_accepted_in_its_fully_qualified_form(team, sent, stored):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    r = await react(bob, org, post["id"], sent)
    assert r.status_code == 200, r.text
    assert r.json()["reactions"] == [{"emoji": stored, "count": 1}]
    assert r.json()["my_reactions"] == [stored]


async def test_a_heart_with_or_without_its_variation_selector_is_one_reaction(team):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    await react(bob, org, post["id"], "❤")
    r = await react(bob, org, post["id"], "❤️")
    assert r.json()["reactions"] == [{"emoji": "❤️", "count": 1}]
    r = await react(bob, org, post["id"], "❤", on=False)
    assert r.json()["reactions"] == []


async def test_toggling_is_idempotent_and_each_change_is_one_event_with_absolute_counts(team, services):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    for actor in (bob, bob, owner):
        r = await react(actor, org, post["id"], "👍")
        assert r.status_code == 200
    assert r.json() == {"post_id": post["id"], "comment_id": None, "reactions": [{"emoji": "👍", "count": 2}], "my_reactions": ["👍"]}
    r = await react(bob, org, post["id"], "🎉")
    assert r.json()["reactions"] == [{"emoji": "👍", "count": 2}, {"emoji": "🎉", "count": 1}]
    assert r.json()["my_reactions"] == ["👍", "🎉"]
    for _ in range(2):
        r = await react(bob, org, post["id"], "👍", on=False)
    assert r.json()["reactions"] == [{"emoji": "👍", "count": 1}, {"emoji": "🎉", "count": 1}]
    assert r.json()["my_reactions"] == ["🎉"]
    assert (await react(ann, org, post["id"], "🚀", on=False)).json()["reactions"] == r.json()["reactions"]

    events = await _events(services, org, "reaction.changed")
    assert [e.payload["reactions"] for e in events] == [
        [{"emoji": "👍", "count": 1}],
        [{"emoji": "👍", "count": 2}],
        [{"emoji": "👍", "count": 2}, {"emoji": "🎉", "count": 1}],
        [{"emoji": "👍", "count": 1}, {"emoji": "🎉", "count": 1}],
    ]
    assert {e.payload["post_id"] for e in events} == {post["id"]}
    assert [e.actor_user_id for e in events] == [bob.id, owner.id, bob.id, bob.id]
    assert all(e.channels == ["org"] for e in events)


async def test_twenty_distinct_emojis_are_accepted_and_a_twenty_first_refused(team):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    for emoji in MANY[: limits.MAX_REACTIONS_PER_ITEM]:
        assert (await react(bob, org, post["id"], emoji)).status_code == 200
    r = await react(owner, org, post["id"], MANY[-1])
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "too_many_reactions" and err["details"]["limit"] == limits.MAX_REACTIONS_PER_ITEM
    # One already there may still be added by someone else, and a freed place taken.
    assert (await react(owner, org, post["id"], MANY[0])).json()["reactions"][0] == {"emoji": MANY[0], "count": 2}
    await react(bob, org, post["id"], MANY[1], on=False)
    assert (await react(owner, org, post["id"], MANY[-1])).status_code == 200


async def test_counts_and_my_reactions_appear_in_the_feed_the_post_and_its_comments(team):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    comment = (await bob.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "c"})).json()["comment"]
    assert comment["reactions"] == []
    await react(bob, org, post["id"], "👍")
    await react(ann, org, post["id"], "👍")
    await react(ann, org, post["id"], "🎉", comment_id=comment["id"])

    feed = (await bob.get(f"{base(org)}/feed")).json()["items"]
    item = next(i for i in feed if i["id"] == post["id"])
    assert item["reactions"] == [{"emoji": "👍", "count": 2}] and item["my_reactions"] == ["👍"]
    assert item["latest_comments"][0]["reactions"] == [{"emoji": "🎉", "count": 1}]
    assert item["latest_comments"][0]["my_reactions"] == []

    got = (await ann.get(f"{base(org)}/posts/{post['id']}")).json()["post"]
    assert got["my_reactions"] == ["👍"] and got["latest_comments"][0]["my_reactions"] == ["🎉"]
    comments = (await ann.get(f"{base(org)}/posts/{post['id']}/comments")).json()["comments"]
    assert comments[0]["reactions"] == [{"emoji": "🎉", "count": 1}] and comments[0]["my_reactions"] == ["🎉"]
    # A comment's reactions are its own: the post's counts do not include them.
    assert (await owner.get(f"{base(org)}/posts/{post['id']}")).json()["post"]["reactions"] == [{"emoji": "👍", "count": 2}]


async def test_a_page_of_the_feed_reads_reactions_in_one_query_for_counts_and_one_for_mine(team, services):
    owner, ann, bob, org = team
    for n in range(6):
        post = (await ann.post(f"{base(org)}/posts", json={"body": f"p{n}"})).json()["post"]
        comment = (await bob.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "c"})).json()["comment"]
        await react(bob, org, post["id"], "👍")
        await react(ann, org, post["id"], "🎉", comment_id=comment["id"])
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine = services.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        items = (await bob.get(f"{base(org)}/feed")).json()["items"]
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)
    assert len(items) == 6 and all(i["reactions"] == [{"emoji": "👍", "count": 1}] for i in items)
    assert all(i["latest_comments"][0]["reactions"] == [{"emoji": "🎉", "count": 1}] for i in items)
    assert len([s for s in statements if "FROM reactions" in s]) == 2


async def test_who_reacted_is_listed_per_emoji_page_by_page(team, settings, client):
    owner, ann, bob, org = team
    post = (await owner.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    people = [owner, ann, bob]
    for actor in people:
        await react(actor, org, post["id"], "👍")
    await react(ann, org, post["id"], "🎉")
    url = f"{base(org)}/posts/{post['id']}/reactions"
    page = (await bob.get(url, params={"emoji": "👍", "limit": 2})).json()
    assert page["reactions"] == [{"emoji": "👍", "count": 3}, {"emoji": "🎉", "count": 1}]
    assert page["my_reactions"] == ["👍"]
    assert [p["user"]["id"] for p in page["people"]] == [owner.id, ann.id]
    assert page["people"][0]["user"]["name"] == owner.name and page["people"][0]["emoji"] == "👍"
    rest = (await bob.get(url, params={"emoji": "👍", "limit": 2, "after": page["next_after"]})).json()
    assert [p["user"]["id"] for p in rest["people"]] == [bob.id] and rest["next_after"] is None
    everyone = (await bob.get(url)).json()["people"]
    assert [(p["user"]["id"], p["emoji"]) for p in everyone] == [(owner.id, "👍"), (ann.id, "👍"), (bob.id, "👍"), (ann.id, "🎉")]
    # The emoji filter takes the same spellings as a toggle.
    assert (await bob.get(url, params={"emoji": "nope"})).json()["error"]["code"] == "invalid_emoji"


async def test_a_member_outside_a_group_or_a_private_message_gets_404(team):
    owner, ann, bob, org = team
    gid = (await owner.post(f"{base(org)}/groups", json={"name": "Pair", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]["id"]
    group_post = (await ann.post(f"{base(org)}/posts", json={"body": "inside", "group_id": gid})).json()["post"]
    dm = (await ann.post(f"{base(org)}/posts", json={"body": "just us", "recipient_id": owner.id})).json()["post"]
    for post in (group_post, dm):
        comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "c"})).json()["comment"]
        for path in (f"/posts/{post['id']}/reactions", f"/comments/{comment['id']}/reactions"):
            put = await bob.put(f"{base(org)}{path}", json={"emoji": "👍", "on": True})
            assert put.status_code == 404, put.text
            assert (await bob.get(f"{base(org)}{path}")).status_code == 404
        assert (await react(owner if post is dm else ann, org, post["id"], "👍")).status_code == 200
    # A comment id names a comment: its post's id does not stand for it.
    r = await bob.put(f"{base(org)}/comments/999999/reactions", json={"emoji": "👍", "on": True})
    assert r.status_code == 404 and r.json()["error"]["code"] == "comment_not_found"


async def test_a_record_update_takes_reactions_like_a_post(team, client):
    owner, ann, bob, org = team
    integration = (await owner.post(f"{base(org)}/integrations", json={"name": "CRM"})).json()
    r = await client.post(
        f"{base(org)}/integration/record-events", headers={"authorization": f"Bearer {integration['token']}"},
        json={"events": [{"event_id": "r1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Deal", "owner_email": owner.email}}]},
    )
    assert r.status_code in (200, 202), r.text
    feed = (await owner.get(f"{base(org)}/feed")).json()["items"]
    record_posts = [i for i in feed if i["kind"] == "record"]
    assert record_posts, feed
    r = await react(owner, org, record_posts[0]["id"], "🚀")
    assert r.status_code == 200 and r.json()["reactions"] == [{"emoji": "🚀", "count": 1}]


async def test_the_author_gets_one_unread_in_app_notification_per_item_updated_by_later_reactions(team, services):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi there"})).json()["post"]
    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "my comment"})).json()["comment"]
    async with org_session(services.sessions, org["id"]) as s:
        emails_before = len((await s.execute(select(EmailJob.id))).all())

    await react(ann, org, post["id"], "👍")  # one's own item: no notification
    assert (await ann.get(f"{base(org)}/notifications")).json()["notifications"] == []

    await react(bob, org, post["id"], "👍")
    await react(owner, org, post["id"], "🎉")
    await react(bob, org, post["id"], "🎉")
    await react(bob, org, post["id"], "🎉", comment_id=comment["id"])
    notes = (await ann.get(f"{base(org)}/notifications")).json()
    mine = [n for n in notes["notifications"] if n["kind"] == "reaction"]
    assert notes["unread"] == 2 and len(mine) == 2
    on_comment, on_post = mine
    assert (on_post["post_id"], on_post["comment_id"], on_post["actor_id"]) == (post["id"], None, bob.id)
    assert on_post["data"]["people"] == 3 and on_post["data"]["emoji"] == "🎉" and on_post["data"]["excerpt"] == "hi there"
    assert on_post["data"]["reactions"] == [{"emoji": "👍", "count": 2}, {"emoji": "🎉", "count": 2}]
    assert (on_comment["post_id"], on_comment["comment_id"]) == (post["id"], comment["id"])

    created = await _events(services, org, "notifications.created")
    updated = await _events(services, org, "notifications.updated")
    assert len([e for e in created if e.channels == [f"u:{ann.id}"]]) == 2
    assert [e.payload["notification"]["id"] for e in updated] == [on_post["id"], on_post["id"]]
    assert all(e.channels == [f"u:{ann.id}"] for e in updated)

    # Once read, the next reaction makes a new unread one.
    await ann.post(f"{base(org)}/notifications/{on_post['id']}/read")
    await react(owner, org, post["id"], "👍")
    fresh = [n for n in (await ann.get(f"{base(org)}/notifications", params={"unread": "true"})).json()["notifications"] if n["kind"] == "reaction"]
    assert len(fresh) == 2 and fresh[0]["id"] > on_post["id"]
    async with org_session(services.sessions, org["id"]) as s:
        assert len((await s.execute(select(EmailJob.id))).all()) == emails_before  # never an email


async def test_removing_a_reaction_neither_notifies_nor_touches_the_notification(team):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    await react(bob, org, post["id"], "👍")
    before = (await ann.get(f"{base(org)}/notifications")).json()["notifications"]
    await react(bob, org, post["id"], "👍", on=False)
    assert (await ann.get(f"{base(org)}/notifications")).json()["notifications"] == before


async def test_reaction_events_of_a_group_post_go_to_the_group_channel_only(team, services):
    owner, ann, bob, org = team
    gid = (await owner.post(f"{base(org)}/groups", json={"name": "Pair", "sources": [{"type": "user", "id": ann.id}]})).json()["group"]["id"]
    post = (await ann.post(f"{base(org)}/posts", json={"body": "inside", "group_id": gid})).json()["post"]
    await react(ann, org, post["id"], "👍")
    events = await _events(services, org, "reaction.changed")
    assert [e.channels for e in events] == [[f"g:{gid}"]]


async def test_deleting_a_post_takes_its_reactions_with_it(team, services):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    await react(bob, org, post["id"], "👍")
    assert (await ann.delete(f"{base(org)}/posts/{post['id']}")).status_code == 204
    assert (await react(bob, org, post["id"], "👍")).status_code == 404
    async with org_session(services.sessions, org["id"]) as s:
        assert (await s.execute(select(Reaction.id))).all() == []


async def test_a_persons_reactions_are_in_their_export_and_go_when_they_are_erased_with_new_counts_live(team, services):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    comment = (await ann.post(f"{base(org)}/posts/{post['id']}/comments", json={"body": "c"})).json()["comment"]
    await react(bob, org, post["id"], "👍")
    await react(owner, org, post["id"], "👍")
    await react(bob, org, post["id"], "🎉", comment_id=comment["id"])

    export = (await bob.get("/api/v1/me/export")).json()
    [mine] = [o for o in export["orgs"] if o["org"]["slug"] == org["slug"]]
    assert [(r["post_id"], r["comment_id"], r["emoji"]) for r in mine["reactions"]] == [(post["id"], None, "👍"), (post["id"], comment["id"], "🎉")]

    seen = [e.seq for e in await _events(services, org, "reaction.changed")]
    assert (await owner.post(f"{base(org)}/members/{bob.id}/erase")).status_code == 200
    got = (await ann.get(f"{base(org)}/posts/{post['id']}")).json()["post"]
    assert got["reactions"] == [{"emoji": "👍", "count": 1}] and got["latest_comments"][0]["reactions"] == []
    after = [e for e in await _events(services, org, "reaction.changed") if e.seq not in seen]
    assert sorted((e.payload["comment_id"] or 0, str(e.payload["reactions"])) for e in after) == sorted(
        [(0, str([{"emoji": "👍", "count": 1}])), (comment["id"], "[]")]
    )


@pytest.mark.parametrize("backend", ["postgres"])
async def test_concurrent_toggles_on_one_item_end_with_an_event_holding_the_final_counts(team, services, backend):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": "hi"})).json()["post"]
    calls = [react(actor, org, post["id"], emoji) for actor in (owner, ann, bob) for emoji in MANY[:5]]
    calls += [react(bob, org, post["id"], "👍") for _ in range(3)]  # the same toggle at once: one row
    answers = await asyncio.gather(*calls)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    final = (await owner.get(f"{base(org)}/posts/{post['id']}/reactions")).json()["reactions"]
    assert sorted((r["emoji"], r["count"]) for r in final) == sorted([(e, 3) for e in MANY[:5]] + [("👍", 1)])
    events = await _events(services, org, "reaction.changed")
    assert events[-1].payload["reactions"] == final


async def test_the_notification_shows_the_items_text_with_names_for_mentions(team):
    owner, ann, bob, org = team
    post = (await ann.post(f"{base(org)}/posts", json={"body": f"thanks @[user:{bob.id}]!"})).json()["post"]
    await react(bob, org, post["id"], "🙏")
    [note] = [n for n in (await ann.get(f"{base(org)}/notifications")).json()["notifications"] if n["kind"] == "reaction"]
    assert note["data"]["excerpt"] == f"thanks @{bob.name}!"
