"""Records and following: CRM record events, follows, "followed by me", dormant records, notes
(F-FOLLOW-1 … F-FOLLOW-3, F-FOLLOW-8 … F-FOLLOW-10, F-FEED-4, F-FEED-5, F-ORG-8, F-ORG-11)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select, text

from feeds_server import limits
from feeds_server.actions.records import _lock_existing
from feeds_server.realtime.history import recover
from feeds_server.store.models import Event, User
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.records_helpers import crm, ev, items, send, set_merge_seconds  # noqa: F401 - `crm` is a fixture


async def test_owner_follows_automatically_and_sees_created_edited_deleted_with_a_business_card(crm):
    """F-FOLLOW-1, F-FOLLOW-2, F-FOLLOW-3, F-FEED-4."""
    rep = crm["rep"]
    r = await send(crm, ev("e1", name="Acme 200 seats", owner_email=rep.email, fields={"Amount": 50000, "Stage": "Proposal"}))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "applied"
    await send(crm, ev("e2", "edited", fields={"Amount": 75000}, changes=[{"field": "Amount", "old": 50000, "new": 75000}],
                       actor_email=crm["manager"].email))
    await send(crm, ev("e3", "deleted"))
    got = await items(rep, crm)
    assert [i["data"]["change"] for i in got] == ["deleted", "edited", "created"]
    assert all(i["kind"] == "record" and i["module"] == "Deals" for i in got)
    edited = got[1]
    card = edited["data"]["record"]
    assert card["module"] == "Deals" and card["crm_id"] == "D-1" and card["name"] == "Acme 200 seats"
    assert card["owner"] == {"id": rep.id, "name": rep.name}
    assert card["key_fields"] == [{"field": "Amount", "value": 75000}, {"field": "Stage", "value": "Proposal"}]
    assert edited["data"]["fields"] == [{"field": "Amount", "old": 50000, "new": 75000}]
    assert edited["author"]["id"] == crm["manager"].id
    assert await items(crm["manager"], crm) == []  # not a follower
    notes = (await rep.get(f"{crm['b']}/notifications")).json()
    # Three changes within the owner's merge window: one notification listing them.
    assert notes["unread"] == 1 and {n["kind"] for n in notes["notifications"]} == {"record_owned"}
    assert notes["notifications"][0]["data"]["record"]["crm_id"] == "D-1"
    assert notes["notifications"][0]["data"]["count"] == 3
    assert [c["change"] for c in notes["notifications"][0]["data"]["changes"]] == ["created", "edited", "deleted"]


async def test_the_business_card_shows_the_key_fields_the_crm_names_in_its_order(crm):
    """F-FEED-4: `key_fields` picks and orders the card's fields (kept across edits)."""
    rep = crm["rep"]
    fields = {"Zeta": 1, "Amount": 10, "Stage": "Open", "Owner Phone": "+1", "Long field name": "x", "Sixth": 6}
    await send(crm, ev("k1", name="Card", owner_email=rep.email, fields=fields, key_fields=["Stage", "Amount"]))
    await send(crm, ev("k2", "edited", fields={"Amount": 20}))
    card = (await items(rep, crm))[0]["data"]["record"]
    assert card["key_fields"] == [{"field": "Stage", "value": "Open"}, {"field": "Amount", "value": 20}]
    rid = card["id"]
    assert (await rep.get(f"{crm['b']}/records/{rid}")).json()["record"]["key_fields"] == card["key_fields"]
    # Without key_fields, the first fields sent, at most BUSINESS_CARD_FIELDS of them.
    await send(crm, ev("k3", crm_id="D-2", name="Plain", owner_email=rep.email, fields=fields))
    plain = (await items(rep, crm))[0]["data"]["record"]
    assert [f["field"] for f in plain["key_fields"]] == list(fields)[: limits.BUSINESS_CARD_FIELDS]


async def test_edits_take_reported_changes_or_compare_the_fields(crm):
    """F-FOLLOW-1: an edit carries the changed fields with old and new values."""
    rep = crm["rep"]
    await send(crm, ev("c1", name="Diff", owner_email=rep.email, fields={"Amount": 1, "Stage": "Open"}))
    await send(crm, ev("c2", "edited", fields={"Amount": 2, "Stage": "Open", "Probability": 40}))
    await send(crm, ev("c3", "edited", changes=[{"field": "Stage", "old": "Open", "new": "Won"}]))
    latest, computed = (await items(rep, crm))[:2]
    assert computed["data"]["fields"] == [{"field": "Amount", "old": 1, "new": 2}, {"field": "Probability", "old": None, "new": 40}]
    assert latest["data"]["fields"] == [{"field": "Stage", "old": "Open", "new": "Won"}]
    assert {"field": "Stage", "value": "Won"} in latest["data"]["record"]["key_fields"]  # a reported change updates the record


async def test_an_edit_of_a_record_never_reported_before_creates_it(crm):
    rep = crm["rep"]
    r = await send(crm, ev("u1", "edited", crm_id="OLD-1", name="Known in the CRM only", owner_email=rep.email))
    assert r.json()["results"][0]["status"] == "applied"
    assert [i["data"]["change"] for i in await items(rep, crm)] == ["created"]


async def test_a_replayed_batch_creates_nothing_twice(crm):
    """Idempotent by the CRM's event id, also for a copy inside the same batch."""
    rep = crm["rep"]
    batch = [ev("r1", name="Once", owner_email=rep.email), ev("r2", "edited", fields={"x": 1}), ev("r3", "note_added", note={"text": "hi"})]
    first = await send(crm, *batch, batch[0])
    again = await send(crm, *batch)
    assert [r["status"] for r in first.json()["results"]] == ["applied", "applied", "applied", "duplicate"]
    assert [r["status"] for r in again.json()["results"]] == ["duplicate"] * 3
    got = await items(rep, crm)
    assert len(got) == 2 and got[0]["comment_count"] == 1
    notes = (await rep.get(f"{crm['b']}/notifications")).json()
    assert notes["unread"] == 1 and notes["notifications"][0]["data"]["count"] == 3  # merged within the window


async def test_a_batch_notifies_each_follower_in_one_event_that_recovery_replays(crm, services):
    """F-NOTIF-1, F-RT-2: a batch sends each person it notifies one `notifications.created` event with
    their notifications oldest first, after the items they point to; recovery of their channel replays
    it in order, once, and a replayed batch adds nothing."""
    rep, manager = crm["rep"], crm["manager"]
    await set_merge_seconds(rep, crm, 0)  # each change a notification of its own
    batch = [
        ev("n1", name="One", owner_email=rep.email, actor_email=manager.email),
        ev("n2", crm_id="D-2", name="Two", owner_email=rep.email, actor_email=manager.email),
        ev("n3", crm_id="D-3", name="Three", owner_email=manager.email),
        ev("n4", "edited", fields={"Amount": 5}),
    ]
    assert [r["status"] for r in (await send(crm, *batch)).json()["results"]] == ["applied"] * 4
    assert [r["status"] for r in (await send(crm, *batch)).json()["results"]] == ["duplicate"] * 4
    listed = (await rep.get(f"{crm['b']}/notifications")).json()["notifications"][::-1]  # oldest first
    assert [n["data"]["record"]["name"] for n in listed] == ["One", "Two", "One"]

    org_id = crm["org"]["id"]
    async with org_session(services.sessions, org_id) as session:
        rows = (await session.execute(select(Event).where(Event.type == "notifications.created").order_by(Event.seq))).scalars().all()
        recovered = await recover(session, org_id, f"u:{rep.id}", 0, [])
    assert [(r.channels, len(r.payload["notifications"])) for r in rows] == [([f"u:{rep.id}"], 3), ([f"u:{manager.id}"], 1)]
    assert rows[0].actor_user_id is None  # the manager made two of them, nobody named the third
    assert rows[1].payload["notifications"][0]["kind"] == "record_owned"

    assert recovered.recovered
    offsets = [offset for offset, _ in recovered.publications]
    assert offsets == sorted(set(offsets))
    replayed = [orjson.loads(data) for _, data in recovered.publications]
    assert [p["type"] for p in replayed] == ["post.created"] * 3 + ["notifications.created"]
    notes = replayed[-1]["payload"]["notifications"]
    assert [n["id"] for n in notes] == [n["id"] for n in listed]
    assert [n["post_id"] for n in notes] == [p["payload"]["post"]["id"] for p in replayed[:3]]


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite runs one writer at a time
async def test_batches_naming_the_same_people_do_not_wait_for_each_other(crm, services):
    """A batch locks the people it names as a foreign key's check did (`FOR KEY SHARE`), a lock that
    does not conflict with itself: two batches of one org run side by side."""
    people = {crm["rep"].id, crm["manager"].id}
    async with org_session(services.sessions, crm["org"]["id"]) as first:
        assert await _lock_existing(first, User, people) == people
        async with org_session(services.sessions, crm["org"]["id"]) as second:
            await second.execute(text("SET LOCAL lock_timeout = '2s'"))
            assert await _lock_existing(second, User, people) == people


async def test_concurrent_replays_of_a_batch_apply_it_once(crm):
    batch = [ev(f"cc{i}", crm_id=f"CC-{i}", name=f"C{i}", owner_email=crm["rep"].email) for i in range(20)]
    answers = await asyncio.gather(*(send(crm, *batch) for _ in range(3)))
    statuses = [r["status"] for a in answers if a.status_code == 200 for r in a.json()["results"]]
    assert all(a.status_code in (200, 409) for a in answers)
    assert statuses.count("applied") == 20
    assert len(await items(crm["rep"], crm, limit=100)) == 20


async def test_a_failed_event_is_not_remembered_so_the_crm_can_send_it_again(crm):
    r = await send(crm, ev("x1", "note_added", crm_id="LATER", note={"text": "too early"}), ev("x2", name="Fine", crm_id="OK"))
    first, second = r.json()["results"]
    assert first["status"] == "error" and first["error"]["code"] == "record_not_found"
    assert second["status"] == "applied"
    await send(crm, ev("x0", crm_id="LATER", name="Later", owner_email=crm["rep"].email))
    assert (await send(crm, ev("x1", "note_added", crm_id="LATER", note={"text": "now"}))).json()["results"][0]["status"] == "applied"


async def test_batches_of_500_are_accepted_and_501_refused(crm):
    many = [ev(f"b{i}", crm_id=f"L-{i}", module="Leads", name=f"Lead {i}") for i in range(limits.MAX_RECORD_EVENTS_PER_BATCH + 1)]
    r = await send(crm, *many)
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "events"
    r = await send(crm, *many[:-1])
    assert r.status_code == 200 and len(r.json()["results"]) == limits.MAX_RECORD_EVENTS_PER_BATCH


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "note_added"},  # no note
        {"type": "created", "note": {"text": "x"}},  # a note on another kind of event
        {"type": "renamed"},
        {"module": ""},
        {"module": "M" * (limits.MAX_MODULE_CHARS + 1)},
        {"record": {"id": "D-1", "fields": {f"f{i}": i for i in range(limits.MAX_RECORD_FIELDS + 1)}}},
        {"record": {"id": "D-1", "key_fields": [f"f{i}" for i in range(limits.BUSINESS_CARD_FIELDS + 1)]}},
        {"occurred_at": "2026-01-01T00:00:00"},  # no time zone
        {"surprise": True},
    ],
)
async def test_malformed_events_are_refused_and_change_nothing(crm, bad):
    """F-SEC-3."""
    event = {**ev("m1", name="Bad", owner_email=crm["rep"].email), **bad}
    r = await send(crm, event)
    assert r.status_code == 422, r.text
    assert await items(crm["rep"], crm) == []


async def test_record_field_limit_boundary(crm):
    ok = {f"f{i}": i for i in range(limits.MAX_RECORD_FIELDS)}
    assert (await send(crm, ev("f1", fields=ok))).json()["results"][0]["status"] == "applied"
    r = await send(crm, ev("f2", "edited", fields={"one more": 1}))
    assert r.json()["results"][0]["error"]["code"] == "too_many_fields"


async def test_unticked_modules_produce_no_feed_items_or_notifications(crm):
    """F-FEED-5: created, edited, deleted and notes of an unticked module produce nothing."""
    admin, rep = crm["admin"], crm["rep"]
    await admin.put(f"{crm['b']}/feed-modules", json={"modules": {"Deals": False}})
    await send(crm, ev("u1", name="Hidden", owner_email=rep.email), ev("u2", "edited", fields={"a": 1}),
               ev("u3", "note_added", note={"text": "n"}), ev("u4", "deleted"))
    await send(crm, ev("u5", module="Leads", crm_id="L-1", name="Shown", owner_email=rep.email))
    assert [i["module"] for i in await items(rep, crm)] == ["Leads"]
    assert (await rep.get(f"{crm['b']}/notifications")).json()["unread"] == 1
    # The record is still kept and followed; once ticked again, its changes show.
    await admin.put(f"{crm['b']}/feed-modules", json={"modules": {"Deals": True}})
    await send(crm, ev("u6", "edited", fields={"a": 2}))
    assert [i["module"] for i in await items(rep, crm)] == ["Deals", "Leads"]


async def test_follow_and_unfollow_by_hand(crm):
    """F-FOLLOW-2: anyone follows or unfollows; the owner follows for as long as they own the record."""
    manager, rep = crm["manager"], crm["rep"]
    rid = (await send(crm, ev("f1", name="Followed", owner_email=rep.email))).json()["results"][0]["record_id"]
    url = f"{crm['b']}/records/{rid}/follow"
    assert (await manager.get(f"{crm['b']}/records/{rid}")).json()["record"]["following"] is False
    for _ in range(2):  # following twice is the same as once
        r = await manager.put(url)
        assert r.status_code == 200 and r.json()["record"]["following"] is True
    await send(crm, ev("f2", "edited", fields={"a": 1}))
    assert [i["data"]["change"] for i in await items(manager, crm)] == ["edited"]
    notes = (await manager.get(f"{crm['b']}/notifications")).json()["notifications"]
    assert [n["kind"] for n in notes] == ["record_followed"]
    assert (await manager.delete(url)).status_code == 204
    assert (await manager.delete(url)).status_code == 404
    await send(crm, ev("f3", "edited", fields={"a": 2}))
    assert len(await items(manager, crm)) == 1
    r = await rep.delete(url)
    assert r.status_code == 409 and r.json()["error"]["code"] == "owner_follows"
    # A new owner follows; the old one may now stop.
    await send(crm, ev("f4", "edited", owner_email=manager.email))
    assert (await rep.delete(url)).status_code == 204
    assert (await manager.delete(url)).status_code == 409


async def test_deleted_records_cannot_be_followed_and_leave_the_lists(crm):
    manager = crm["manager"]
    rid = (await send(crm, ev("d1", name="Doomed"))).json()["results"][0]["record_id"]
    await manager.put(f"{crm['b']}/records/{rid}/follow")
    await send(crm, ev("d2", "deleted"))
    assert [i["data"]["change"] for i in await items(manager, crm)] == ["deleted"]
    assert (await manager.get(f"{crm['b']}/records/{rid}")).json()["record"]["deleted"] is True
    assert (await crm["admin"].put(f"{crm['b']}/records/{rid}/follow")).status_code == 404
    assert (await manager.get(f"{crm['b']}/followed-records")).json()["records"] == []


async def test_followed_by_me_all_modules_or_one_paginated(crm):
    """F-FOLLOW-9: ordered by module, then record; a page at a time."""
    manager = crm["manager"]
    ids: dict[str, list[int]] = {"Deals": [], "Leads": [], "Zoho_Custom": []}
    for i in range(9):
        module = list(ids)[i % 3]
        r = await send(crm, ev(f"p{i}", module=module, crm_id=f"X-{i}", name=f"R{i}"))
        ids[module].append(r.json()["results"][0]["record_id"])
    for rid in sum(ids.values(), []):
        await manager.put(f"{crm['b']}/records/{rid}/follow")
    seen, cursor, pages = [], None, 0
    while True:
        page = (await manager.get(f"{crm['b']}/followed-records", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [(r["module"], r["id"]) for r in page["records"]]
        assert all(r["following"] for r in page["records"])
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [(m, rid) for m in sorted(ids) for rid in ids[m]] and pages == 5
    leads = (await manager.get(f"{crm['b']}/followed-records", params={"module": "Leads", "limit": 2})).json()
    nxt = (await manager.get(f"{crm['b']}/followed-records", params={"module": "Leads", "limit": 2, "cursor": leads["next_cursor"]})).json()
    assert [r["id"] for r in leads["records"] + nxt["records"]] == ids["Leads"] and nxt["next_cursor"] is None
    assert (await crm["rep"].get(f"{crm['b']}/followed-records")).json()["records"] == []
    r = await manager.get(f"{crm['b']}/followed-records", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "days,status", [(limits.MIN_DORMANT_DAYS - 1, 422), (limits.MIN_DORMANT_DAYS, 200), (limits.MAX_DORMANT_DAYS, 200), (limits.MAX_DORMANT_DAYS + 1, 422)]
)
async def test_dormant_days_from_1_to_180(crm, days, status):
    """F-FOLLOW-8: 0 and 181 are refused."""
    r = await crm["rep"].get(f"{crm['b']}/dormant-records", params={"days": days})
    assert r.status_code == status
    if status == 422:
        assert r.json()["error"]["code"] == "invalid_dormant_days"
        assert r.json()["error"]["details"] == {"field": "days", "min": limits.MIN_DORMANT_DAYS, "max": limits.MAX_DORMANT_DAYS}


async def _at(crm, services, moment):  # type: ignore[no-untyped-def]
    """Move the server's clock; sign in again, since sessions expire with the clock."""
    services.clock = lambda: moment
    return await factory.sign_in(crm["client"], crm["rep"].email)


def _names(r):  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text
    return [x["name"] for x in r.json()["records"]]


async def test_dormant_records_are_those_not_updated_for_at_least_n_days(crm, services):
    """F-FOLLOW-8: exactly N days is dormant, N days minus one second is not; owned or followed; by module."""
    rep = crm["rep"]
    start = services.clock()
    services.clock = lambda: start
    await send(crm, ev("d1", crm_id="D-old", name="Old", owner_email=rep.email))
    lead = (await send(crm, ev("d2", module="Leads", crm_id="L-other", name="Followed lead", owner_email=crm["manager"].email))).json()["results"][0]
    await send(crm, ev("d3", module="Leads", crm_id="L-nobody", name="Not mine"))
    services.clock = lambda: start + timedelta(days=10)
    await send(crm, ev("d4", crm_id="D-new", name="New", owner_email=rep.email))
    rep = await _at(crm, services, start + timedelta(days=10))
    assert (await rep.put(f"{crm['b']}/records/{lead['record_id']}/follow")).status_code == 200

    rep = await _at(crm, services, start + timedelta(days=30))
    url = f"{crm['b']}/dormant-records"
    assert _names(await rep.get(url, params={"days": 20})) == ["Old", "Followed lead", "New"]
    assert _names(await rep.get(url, params={"days": 30})) == ["Old", "Followed lead"]
    assert _names(await rep.get(url, params={"days": 30, "module": "Leads"})) == ["Followed lead"]
    rep = await _at(crm, services, start + timedelta(days=30) - timedelta(seconds=1))
    assert _names(await rep.get(url, params={"days": 30})) == []
    assert _names(await rep.get(url, params={"days": 20})) == ["Old", "Followed lead"]
    # An update makes a record active again; a deleted record is not listed.
    rep = await _at(crm, services, start + timedelta(days=30))
    services.clock = lambda: start + timedelta(days=30)
    await send(crm, ev("d5", "note_added", crm_id="D-old", note={"text": "still alive"}))
    await send(crm, ev("d6", "deleted", module="Leads", crm_id="L-other"))
    assert _names(await rep.get(url, params={"days": 20})) == ["New"]


async def test_dormant_records_page_oldest_first(crm, services):
    rep = crm["rep"]
    start = services.clock()
    for i in range(5):
        services.clock = lambda i=i: start + timedelta(days=i)
        await send(crm, ev(f"pg{i}", crm_id=f"P-{i}", name=f"P{i}", owner_email=rep.email))
    rep = await _at(crm, services, start + timedelta(days=100))
    url = f"{crm['b']}/dormant-records"
    first = (await rep.get(url, params={"days": 50, "limit": 2})).json()
    second = (await rep.get(url, params={"days": 50, "limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await rep.get(url, params={"days": 50, "limit": 2, "cursor": second["next_cursor"]})).json()
    assert [r["name"] for r in first["records"] + second["records"] + third["records"]] == [f"P{i}" for i in range(5)]
    assert third["next_cursor"] is None


async def test_the_crms_time_of_change_is_the_records_last_update(crm, services):
    """A record reported long after it last changed (a first sync) can be dormant at once."""
    now = services.clock()
    old = (now - timedelta(days=90)).isoformat()
    await send(crm, {**ev("t1", crm_id="T-1", name="Synced", owner_email=crm["rep"].email), "occurred_at": old})
    later = (now + timedelta(days=1)).isoformat()  # the future is taken as now
    await send(crm, {**ev("t2", crm_id="T-2", name="Fresh", owner_email=crm["rep"].email), "occurred_at": later})
    rep = await _at(crm, services, now)
    assert _names(await rep.get(f"{crm['b']}/dormant-records", params={"days": 89})) == ["Synced"]
    # An event reported late does not move the last update back.
    await send(crm, {**ev("t3", "edited", crm_id="T-2"), "occurred_at": old})
    assert _names(await rep.get(f"{crm['b']}/dormant-records", params={"days": 89})) == ["Synced"]


async def test_crm_notes_show_as_comments_on_the_records_latest_item(crm):
    """F-FOLLOW-10: a note added in the CRM appears in feeds as a comment."""
    rep, manager = crm["rep"], crm["manager"]
    await send(crm, ev("n1", name="Noted", owner_email=rep.email))
    await send(crm, ev("n2", "note_added", note={"id": "N-1", "text": "Called the customer"}, actor_email=manager.email))
    item = (await items(rep, crm))[0]
    assert item["data"]["change"] == "created" and item["comment_count"] == 1
    comment = item["latest_comments"][0]
    assert comment["body"] == "Called the customer" and comment["author"]["id"] == manager.id
    assert comment["data"] == {"source": "crm", "crm_note_id": "N-1"}
    listed = (await rep.get(f"{crm['b']}/posts/{item['id']}/comments")).json()
    assert [c["body"] for c in listed["comments"]] == ["Called the customer"]
    notes = (await rep.get(f"{crm['b']}/notifications")).json()["notifications"]
    assert notes[0]["comment_id"] == comment["id"] and notes[0]["data"]["change"] == "note_added"


async def test_a_note_goes_on_a_new_item_when_the_latest_is_gone_or_not_seen_by_every_follower(crm):
    admin, manager = crm["admin"], crm["manager"]
    rid = (await send(crm, ev("g1", name="Gone", owner_email=admin.email))).json()["results"][0]["record_id"]
    first = (await items(admin, crm))[0]
    assert (await admin.delete(f"{crm['b']}/posts/{first['id']}")).status_code == 204
    await send(crm, ev("g2", "note_added", note={"text": "after the item was removed"}))
    noted = (await items(admin, crm))[0]
    assert noted["data"]["change"] == "note_added" and noted["latest_comments"][0]["body"] == "after the item was removed"
    await manager.put(f"{crm['b']}/records/{rid}/follow")  # cannot see the item above
    await send(crm, ev("g3", "note_added", note={"text": "for everyone"}))
    for who in (admin, manager):
        latest = (await items(who, crm))[0]
        assert latest["id"] != noted["id"] and latest["latest_comments"][0]["body"] == "for everyone"


async def test_notes_and_integration_tokens_stay_in_their_org(crm, client):
    """F-ORG-8, F-ORG-11: a token of org A cannot touch org B; A's record ids are 404 in B."""
    other_admin = await factory.sign_up(client, factory.unique("Other"))
    other = await factory.create_org(other_admin)
    ob = f"/api/v1/orgs/{other['slug']}"
    r = await client.post(f"{ob}/integration/record-events", json={"events": [ev("i1", name="X")]}, headers={"authorization": f"Bearer {crm['token']}"})
    assert r.status_code == 401
    other_token = (await other_admin.post(f"{ob}/integrations", json={"name": "CRM"})).json()["token"]
    rid = (await send(crm, ev("i2", name="Mine", owner_email=crm["rep"].email))).json()["results"][0]["record_id"]
    for method, path in (("GET", f"/records/{rid}"), ("PUT", f"/records/{rid}/follow"), ("DELETE", f"/records/{rid}/follow")):
        assert (await other_admin.client.request(method, ob + path, headers=other_admin.headers)).status_code == 404
    # The same CRM ids in org B are B's own records; A's note never lands there.
    theirs = await client.post(f"{ob}/integration/record-events", json={"events": [ev("i2", name="Theirs", owner_email=other_admin.email)]},
                               headers={"authorization": f"Bearer {other_token}"})
    assert theirs.json()["results"][0]["status"] == "applied" and theirs.json()["results"][0]["record_id"] != rid
    await send(crm, ev("i3", "note_added", note={"text": "A only"}))
    assert (await items(other_admin, {"b": ob}))[0]["comment_count"] == 0
    assert (await other_admin.get(f"{ob}/followed-records")).json()["records"][0]["name"] == "Theirs"
    r = await client.post(f"{crm['b']}/integration/record-events", json={"events": [ev("i4")]}, headers={"authorization": "Bearer fsk_forged"})
    assert r.status_code == 401


async def test_a_revoked_integration_token_is_refused(crm):
    admin = crm["admin"]
    integ = (await admin.get(f"{crm['b']}/integrations")).json()["integrations"][0]["id"]
    assert (await admin.delete(f"{crm['b']}/integrations/{integ}")).status_code == 204
    assert (await send(crm, ev("v1", name="Late"))).status_code == 401


async def test_members_without_the_feeds_tab_get_403(crm, settings):
    """F-ORG-9: a profile without the Feeds tab gets no records API."""
    admin = crm["admin"]
    profiles = (await admin.get(f"{crm['b']}/profiles")).json()["profiles"]
    hidden = (await admin.post(f"{crm['b']}/profiles", json={"name": "No feed", "permissions": []})).json()["profile"]["id"]
    assert profiles
    outsider = await factory.sign_up(crm["client"], factory.unique("NoFeed"))
    await factory.invite_and_join(admin, crm["org"]["slug"], outsider, settings.mail_dir, profile_id=hidden)
    rid = (await send(crm, ev("h1", name="R"))).json()["results"][0]["record_id"]
    for path in (f"/records/{rid}", "/followed-records", "/dormant-records?days=5", "/rules"):
        assert (await outsider.get(crm["b"] + path)).status_code == 403
