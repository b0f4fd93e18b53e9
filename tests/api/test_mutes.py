"""Mutes: a member silences a record, a group or a post's thread; only what they can see, and
what they cannot answers exactly like what does not exist."""

from __future__ import annotations

import pytest

from tests import factory


@pytest.fixture
async def team(client, settings):  # type: ignore[no-untyped-def]
    owner, ann, bob, org = await factory.team(client, settings.mail_dir)
    b = factory.org_path(org)
    integration = (await owner.post(f"{b}/integrations", json={"name": "CRM"})).json()
    r = await client.post(
        f"{b}/integration/record-events", headers={"authorization": f"Bearer {integration['token']}"},
        json={"events": [{"event_id": "e1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Big deal", "owner_email": owner.email}}]},
    )
    record_id = r.json()["results"][0]["record_id"]
    group = (await owner.post(f"{b}/groups", json={"name": "Duo", "sources": [{"type": "user", "id": ann.id}, {"type": "user", "id": owner.id}]})).json()["group"]
    post = (await ann.post(f"{b}/posts", json={"body": "a thread to mute"})).json()["post"]
    secret = (await owner.post(f"{b}/posts", json={"body": "only Duo sees this", "group_id": group["id"]})).json()["post"]
    return owner, ann, bob, org, {"record": record_id, "group": group["id"], "post": post["id"], "secret": secret["id"]}


async def test_mute_list_and_unmute_each_kind(team):
    owner, ann, bob, org, ids = team
    b = factory.org_path(org)
    for kind in ("record", "group", "post"):
        r = await ann.put(f"{b}/mutes/{kind}/{ids[kind]}")
        assert r.status_code == 200, (kind, r.text)
        assert r.json()["mute"]["kind"] == kind and r.json()["mute"]["id"] == ids[kind]
        assert (await ann.put(f"{b}/mutes/{kind}/{ids[kind]}")).status_code == 200, "muting again changes nothing"
    mutes = (await ann.get(f"{b}/mutes")).json()["mutes"]
    assert sorted((m["kind"], m["id"]) for m in mutes) == sorted((k, ids[k]) for k in ("record", "group", "post"))
    labels = {m["kind"]: m["label"] for m in mutes}
    assert labels == {"record": "Big deal", "group": "Duo", "post": "a thread to mute"}
    assert (await bob.get(f"{b}/mutes")).json()["mutes"] == [], "one's own mutes only"
    assert (await ann.delete(f"{b}/mutes/group/{ids['group']}")).status_code == 204
    again = await ann.delete(f"{b}/mutes/group/{ids['group']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "mute_not_found", "unmuting again changes nothing"
    assert {m["kind"] for m in (await ann.get(f"{b}/mutes")).json()["mutes"]} == {"record", "post"}


async def test_what_the_caller_cannot_see_answers_like_what_does_not_exist(team):
    owner, ann, bob, org, ids = team
    b = factory.org_path(org)
    cases = [("group", ids["group"], 999_999), ("post", ids["secret"], 999_999)]
    for kind, hidden, missing in cases:
        hidden_r = await bob.put(f"{b}/mutes/{kind}/{hidden}")
        missing_r = await bob.put(f"{b}/mutes/{kind}/{missing}")
        assert hidden_r.status_code == missing_r.status_code == 404, kind
        assert factory.answer_of(hidden_r) == factory.answer_of(missing_r)
        # Unmuting looks only at the caller's own rows: the same answer whatever the target is.
        hidden_r = await bob.delete(f"{b}/mutes/{kind}/{hidden}")
        missing_r = await bob.delete(f"{b}/mutes/{kind}/{missing}")
        assert hidden_r.status_code == missing_r.status_code == 404, kind
        assert factory.answer_of(hidden_r) == factory.answer_of(missing_r)
    assert (await bob.put(f"{b}/mutes/record/999999")).status_code == 404
    assert (await bob.get(f"{b}/mutes")).json()["mutes"] == []


async def test_another_orgs_targets_are_unknown(team, client):
    owner, ann, bob, org, ids = team
    stranger = await factory.sign_up(client, factory.unique("Stranger"))
    other = await factory.create_org(stranger)
    for kind in ("record", "group", "post"):
        r = await stranger.put(f"{factory.org_path(other)}/mutes/{kind}/{ids[kind]}")
        assert r.status_code == 404, kind
    assert (await stranger.get(f"{factory.org_path(org)}/mutes")).status_code == 404


async def test_a_mute_of_what_the_member_no_longer_sees_is_unlabelled_and_can_still_be_removed(team):
    """Ann mutes her group and a post only it sees, then leaves the group: her list no longer shows
    the group's name nor the post's words, and she can still unmute both."""
    owner, ann, bob, org, ids = team
    b = factory.org_path(org)
    for kind, target in (("group", ids["group"]), ("post", ids["secret"]), ("record", ids["record"])):
        assert (await ann.put(f"{b}/mutes/{kind}/{target}")).status_code == 200, kind
    r = await owner.patch(f"{b}/groups/{ids['group']}", json={"sources": [{"type": "user", "id": owner.id}]})
    assert r.status_code == 200, r.text
    labels = {(m["kind"], m["id"]): m["label"] for m in (await ann.get(f"{b}/mutes")).json()["mutes"]}
    assert labels == {("group", ids["group"]): None, ("post", ids["secret"]): None, ("record", ids["record"]): "Big deal"}
    for kind, target in (("group", ids["group"]), ("post", ids["secret"])):
        assert (await ann.delete(f"{b}/mutes/{kind}/{target}")).status_code == 204, kind
    assert [(m["kind"], m["id"]) for m in (await ann.get(f"{b}/mutes")).json()["mutes"]] == [("record", ids["record"])]
