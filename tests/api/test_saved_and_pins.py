"""Saved items (private bookmarks) and pinned posts: who may, where, how many, what each person sees,
and the events and audit lines they leave."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from feeds_server import limits
from feeds_server.store.models import Event, EventChannel, Pin, SavedItem
from feeds_server.store.scope import org_session
from tests import factory


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    """An org with its owner (admin), Ann (standard, may manage groups) and Bob (standard)."""
    owner, ann, bob, org = await factory.team(client, settings.mail_dir)
    slug = org["slug"]
    profile = (await owner.post(f"/api/v1/orgs/{slug}/profiles", json={"name": "Organiser", "permissions": ["feeds_tab", "manage_groups"]})).json()["profile"]
    assert (await owner.patch(f"/api/v1/orgs/{slug}/members/{ann.id}", json={"profile_id": profile["id"]})).status_code == 200
    return owner, ann, bob, org


base = factory.org_path


async def _post(actor, org, body: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    r = await actor.post(f"{base(org)}/posts", json={"body": body, **extra})
    assert r.status_code == 201, r.text
    return r.json()["post"]


async def _group(actor, org, name: str, *members) -> int:  # type: ignore[no-untyped-def]
    sources = [{"type": "user", "id": m.id} for m in members]
    r = await actor.post(f"{base(org)}/groups", json={"name": name, "sources": sources})
    assert r.status_code == 201, r.text
    return r.json()["group"]["id"]


async def _events(services, org, type_: str) -> list[tuple[dict, list[str]]]:  # type: ignore[no-untyped-def]
    """Events of one type, oldest first, each with the channels it was published on."""
    async with org_session(services.sessions, org["id"]) as s:
        rows = (await s.execute(select(Event.seq, Event.payload).where(Event.type == type_).order_by(Event.seq))).all()
        out = []
        for seq, payload in rows:
            channels = (await s.execute(select(EventChannel.channel).where(EventChannel.seq == seq).order_by(EventChannel.channel))).scalars()
            out.append((payload, list(channels)))
    return out


# --- saved items -------------------------------------------------------------------------------


async def test_saving_is_idempotent_private_and_listed_newest_saved_first(team, services):
    owner, ann, bob, org = team
    posts = [await _post(owner, org, f"post {i}") for i in range(3)]
    for p in (posts[1], posts[0], posts[2]):
        r = await ann.put(f"{base(org)}/posts/{p['id']}/saved")
        assert r.status_code == 200 and r.json()["saved"]["post_id"] == p["id"], r.text
    again = await ann.put(f"{base(org)}/posts/{posts[0]['id']}/saved")
    assert again.status_code == 200

    page = (await ann.get(f"{base(org)}/saved", params={"limit": 2})).json()
    assert [p["id"] for p in page["items"]] == [posts[2]["id"], posts[0]["id"]]
    assert all(p["saved"] is True and p["saved_at"] for p in page["items"])
    rest = (await ann.get(f"{base(org)}/saved", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [p["id"] for p in rest["items"]] == [posts[1]["id"]] and rest["next_cursor"] is None

    # The mark is the reader's own: Ann sees it in her feed and on the post, Bob does not.
    ann_feed = {p["id"]: p["saved"] for p in (await ann.get(f"{base(org)}/feed")).json()["items"]}
    assert ann_feed == {p["id"]: True for p in posts}
    bob_feed = (await bob.get(f"{base(org)}/feed")).json()["items"]
    assert {p["saved"] for p in bob_feed} == {False}
    assert (await bob.get(f"{base(org)}/posts/{posts[0]['id']}")).json()["post"]["saved"] is False
    assert (await ann.get(f"{base(org)}/posts/{posts[0]['id']}")).json()["post"]["saved"] is True
    assert (await bob.get(f"{base(org)}/saved")).json() == {"items": [], "next_cursor": None}

    # Saving twice wrote one event, on Ann's own channel only.
    saved = await _events(services, org, "post.saved")
    assert len(saved) == 3
    assert all(channels == [f"u:{ann.id}"] for _, channels in saved)

    assert (await ann.delete(f"{base(org)}/posts/{posts[0]['id']}/saved")).status_code == 204
    assert (await ann.delete(f"{base(org)}/posts/{posts[0]['id']}/saved")).status_code == 204
    assert [p["id"] for p in (await ann.get(f"{base(org)}/saved")).json()["items"]] == [posts[2]["id"], posts[1]["id"]]
    unsaved = await _events(services, org, "post.unsaved")
    assert unsaved == [({"post_id": posts[0]["id"]}, [f"u:{ann.id}"])]


async def test_saved_lists_only_posts_the_person_can_still_see(team):
    """A member who leaves a group keeps the bookmark, but its posts drop out of Saved until they return."""
    owner, ann, bob, org = team
    group_id = await _group(ann, org, "Deals team", ann, bob)
    in_group = await _post(ann, org, "group news", group_id=group_id)
    public = await _post(ann, org, "public news")
    for p in (in_group, public):
        assert (await bob.put(f"{base(org)}/posts/{p['id']}/saved")).status_code == 200
    assert [p["id"] for p in (await bob.get(f"{base(org)}/saved")).json()["items"]] == [public["id"], in_group["id"]]

    assert (await ann.patch(f"{base(org)}/groups/{group_id}", json={"sources": [{"type": "user", "id": ann.id}]})).status_code == 200
    assert [p["id"] for p in (await bob.get(f"{base(org)}/saved")).json()["items"]] == [public["id"]]
    assert (await bob.put(f"{base(org)}/posts/{in_group['id']}/saved")).status_code == 404

    assert (await ann.patch(f"{base(org)}/groups/{group_id}", json={"sources": [{"type": "user", "id": ann.id}, {"type": "user", "id": bob.id}]})).status_code == 200
    assert [p["id"] for p in (await bob.get(f"{base(org)}/saved")).json()["items"]] == [public["id"], in_group["id"]]

    # One that left can still take the bookmark away; a post never saved and not visible is 404.
    assert (await ann.patch(f"{base(org)}/groups/{group_id}", json={"sources": [{"type": "user", "id": ann.id}]})).status_code == 200
    assert (await bob.delete(f"{base(org)}/posts/{in_group['id']}/saved")).status_code == 204
    other = await _post(ann, org, "still hidden", group_id=group_id)
    r = await bob.delete(f"{base(org)}/posts/{other['id']}/saved")
    assert r.status_code == 404 and r.json()["error"]["code"] == "post_not_found"


async def test_private_messages_are_saved_by_their_participants_only(team):
    owner, ann, bob, org = team
    dm = await _post(ann, org, "between us", recipient_id=bob.id)
    assert (await bob.put(f"{base(org)}/posts/{dm['id']}/saved")).status_code == 200
    assert (await owner.put(f"{base(org)}/posts/{dm['id']}/saved")).status_code == 404
    assert (await owner.get(f"{base(org)}/saved")).json()["items"] == []


async def test_a_deleted_post_leaves_saved_items(team):
    owner, ann, bob, org = team
    p = await _post(ann, org, "soon gone")
    assert (await bob.put(f"{base(org)}/posts/{p['id']}/saved")).status_code == 200
    assert (await ann.delete(f"{base(org)}/posts/{p['id']}")).status_code == 204
    assert (await bob.get(f"{base(org)}/saved")).json()["items"] == []


# --- pins --------------------------------------------------------------------------------------


async def test_only_admins_pin_on_the_org_feed_and_the_feed_carries_the_pins(team, services):
    owner, ann, bob, org = team
    p = await _post(bob, org, "important")
    later = await _post(bob, org, "later")
    r = await bob.put(f"{base(org)}/posts/{p['id']}/pin")
    assert r.status_code == 403 and r.json()["error"]["code"] == "pin_not_allowed"
    r = await ann.put(f"{base(org)}/posts/{p['id']}/pin")
    assert r.status_code == 403 and r.json()["error"]["code"] == "pin_not_allowed"

    r = await owner.put(f"{base(org)}/posts/{p['id']}/pin")
    assert r.status_code == 200, r.text
    pin = r.json()["pin"]
    assert pin["post_id"] == p["id"] and pin["group_id"] is None and pin["pinned_by"] == {"id": owner.id, "name": owner.name}
    assert (await owner.put(f"{base(org)}/posts/{p['id']}/pin")).json()["pin"] == pin

    first = (await bob.get(f"{base(org)}/feed", params={"limit": 1})).json()
    assert [x["id"] for x in first["pinned"]] == [p["id"]]
    assert first["pinned"][0]["pin"]["pinned_by"]["id"] == owner.id and first["pinned"][0]["saved"] is False
    assert [x["id"] for x in first["items"]] == [later["id"]]
    second = (await bob.get(f"{base(org)}/feed", params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert "pinned" not in second and [x["id"] for x in second["items"]] == [p["id"]]
    assert [x["id"] for x in (await bob.get(f"{base(org)}/pins")).json()["pinned"]] == [p["id"]]

    r = await bob.delete(f"{base(org)}/posts/{p['id']}/pin")
    assert r.status_code == 403
    assert (await owner.delete(f"{base(org)}/posts/{p['id']}/pin")).status_code == 204
    assert (await owner.delete(f"{base(org)}/posts/{p['id']}/pin")).status_code == 204
    assert (await bob.get(f"{base(org)}/feed")).json()["pinned"] == []

    pinned, unpinned = await _events(services, org, "post.pinned"), await _events(services, org, "post.unpinned")
    assert len(pinned) == 1 and len(unpinned) == 1
    assert pinned[0][1] == ["org"] and pinned[0][0]["post"]["id"] == p["id"] and pinned[0][0]["pin"]["pinned_by"]["id"] == owner.id
    assert unpinned[0] == ({"post_id": p["id"], "group_id": None}, ["org"])

    audit = (await owner.get(f"{base(org)}/audit", params={"action": "post.*"})).json()["entries"]
    assert [(e["action"], e["target"], e["actor"]["id"]) for e in audit] == [
        ("post.unpinned", {"type": "post", "id": p["id"]}, owner.id),
        ("post.pinned", {"type": "post", "id": p["id"]}, owner.id),
    ]


async def test_a_group_owner_pins_in_their_own_group_only(team, services):
    owner, ann, bob, org = team
    mine = await _group(ann, org, "Ann's team", ann, bob, owner)
    theirs = await _group(owner, org, "Owner's team", owner, ann, bob)
    in_mine = await _post(bob, org, "in mine", group_id=mine)
    in_theirs = await _post(bob, org, "in theirs", group_id=theirs)

    r = await ann.put(f"{base(org)}/posts/{in_mine['id']}/pin")
    assert r.status_code == 200 and r.json()["pin"]["group_id"] == mine
    r = await ann.put(f"{base(org)}/posts/{in_theirs['id']}/pin")
    assert r.status_code == 403 and r.json()["error"]["code"] == "pin_not_allowed"
    assert (await bob.put(f"{base(org)}/posts/{in_mine['id']}/pin")).status_code == 403
    assert (await owner.put(f"{base(org)}/posts/{in_theirs['id']}/pin")).status_code == 200

    # The group feed and the group's pins carry them; the org feed does not.
    group_feed = (await bob.get(f"{base(org)}/groups/{mine}/feed")).json()
    assert [x["id"] for x in group_feed["pinned"]] == [in_mine["id"]]
    assert [x["id"] for x in (await bob.get(f"{base(org)}/pins", params={"group_id": theirs})).json()["pinned"]] == [in_theirs["id"]]
    assert (await bob.get(f"{base(org)}/feed")).json()["pinned"] == []
    assert (await bob.get(f"{base(org)}/pins")).json()["pinned"] == []

    # The live event goes to the group's channel: only its members get it.
    events = await _events(services, org, "post.pinned")
    assert [channels for _, channels in events] == [[f"g:{mine}"], [f"g:{theirs}"]]

    # Someone outside the group sees neither the group's pins nor its posts.
    outsider = await _group(owner, org, "Owner alone", owner)
    assert (await bob.get(f"{base(org)}/pins", params={"group_id": outsider})).status_code == 404
    assert (await bob.get(f"{base(org)}/pins", params={"group_id": 999_999})).status_code == 404
    assert (await ann.patch(f"{base(org)}/groups/{mine}", json={"sources": [{"type": "user", "id": ann.id}, {"type": "user", "id": owner.id}]})).status_code == 200
    assert (await bob.get(f"{base(org)}/pins", params={"group_id": mine})).status_code == 404


async def test_a_sixth_pin_in_one_place_is_refused(team):
    owner, ann, bob, org = team
    posts = [await _post(bob, org, f"p{i}") for i in range(limits.MAX_PINS_PER_PLACE + 1)]
    for p in posts[:-1]:
        assert (await owner.put(f"{base(org)}/posts/{p['id']}/pin")).status_code == 200
    r = await owner.put(f"{base(org)}/posts/{posts[-1]['id']}/pin")
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "too_many_pins" and err["details"]["limit"] == limits.MAX_PINS_PER_PLACE

    # Pins of a group are counted apart.
    group_id = await _group(ann, org, "Side", ann, owner)
    grouped = await _post(ann, org, "side", group_id=group_id)
    assert (await ann.put(f"{base(org)}/posts/{grouped['id']}/pin")).status_code == 200

    assert (await owner.delete(f"{base(org)}/posts/{posts[0]['id']}/pin")).status_code == 204
    assert (await owner.put(f"{base(org)}/posts/{posts[-1]['id']}/pin")).status_code == 200
    pinned = (await bob.get(f"{base(org)}/pins")).json()["pinned"]
    assert [x["id"] for x in pinned] == [p["id"] for p in reversed(posts[1:])]


async def test_private_messages_cannot_be_pinned(team):
    owner, ann, bob, org = team
    dm = await _post(ann, org, "between us", recipient_id=owner.id)
    r = await owner.put(f"{base(org)}/posts/{dm['id']}/pin")
    assert r.status_code == 422 and r.json()["error"]["code"] == "post_not_pinnable"
    group_id = await _group(ann, org, "Circle", ann, bob)
    to_group = await _post(ann, org, "to the group, privately", group_id=group_id, private=True)
    r = await ann.put(f"{base(org)}/posts/{to_group['id']}/pin")
    assert r.status_code == 422 and r.json()["error"]["code"] == "post_not_pinnable"
    # A post one cannot see is not found, whatever one's role.
    assert (await owner.put(f"{base(org)}/posts/{to_group['id']}/pin")).status_code == 404


async def test_a_deleted_post_is_no_longer_pinned(team):
    owner, ann, bob, org = team
    p = await _post(bob, org, "pinned, then gone")
    assert (await owner.put(f"{base(org)}/posts/{p['id']}/pin")).status_code == 200
    assert (await bob.delete(f"{base(org)}/posts/{p['id']}")).status_code == 204
    assert (await ann.get(f"{base(org)}/pins")).json()["pinned"] == []
    nxt = await _post(bob, org, "next")
    assert (await owner.put(f"{base(org)}/posts/{nxt['id']}/pin")).status_code == 200


async def test_another_orgs_posts_are_neither_saved_nor_pinned(team, client):
    owner, ann, bob, org = team
    p = await _post(ann, org, "ours")
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    other = await factory.create_org(stranger)
    for method in ("PUT", "DELETE"):
        for what in ("saved", "pin"):
            for slug in (other["slug"], org["slug"]):
                r = await stranger.client.request(method, f"/api/v1/orgs/{slug}/posts/{p['id']}/{what}", headers=stranger.headers)
                assert r.status_code == 404, (method, what, slug, r.text)


async def test_a_persons_export_lists_their_saved_items_and_erasure_forgets_them(team, services):
    owner, ann, bob, org = team
    group_id = await _group(ann, org, "Ann's circle", ann, bob)
    bobs = await _post(bob, org, "bob in the circle", group_id=group_id)
    assert (await ann.put(f"{base(org)}/posts/{bobs['id']}/pin")).status_code == 200
    kept = await _post(owner, org, "worth keeping")
    assert (await bob.put(f"{base(org)}/posts/{kept['id']}/saved")).status_code == 200

    export = (await bob.get("/api/v1/me/export")).json()
    [mine] = [o for o in export["orgs"] if o["org"]["slug"] == org["slug"]]
    assert [s["post_id"] for s in mine["saved"]] == [kept["id"]]

    # The pin of an erased member stays (others' feeds keep it), without its pinner.
    assert (await owner.post(f"{base(org)}/members/{ann.id}/erase")).status_code == 200
    pinned = (await bob.get(f"{base(org)}/pins", params={"group_id": group_id})).json()["pinned"]
    assert [p["id"] for p in pinned] == [bobs["id"]] and pinned[0]["pin"]["pinned_by"] is None

    assert (await owner.post(f"{base(org)}/members/{bob.id}/erase")).status_code == 200
    async with org_session(services.sessions, org["id"]) as s:
        assert (await s.execute(select(SavedItem.post_id))).all() == []
        assert (await s.execute(select(Pin.post_id))).all() == []
