"""Precise following: field-level follows (by hand and by rule), merged bursts of record changes,
the reasons of record notifications, and the person's preferences and mutes on them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from feeds_server import limits
from feeds_server.cli import rules as rules_cli
from feeds_server.domain.rulefile import parse_rule_file
from feeds_server.errors import ValidationFailed
from feeds_server.store.models import Event, Follow, PushJob, PushSubscription
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.records_helpers import crm, ev, items, send, set_merge_seconds  # noqa: F401 - `crm` is a fixture

CRITERIA = {"field": "Amount", "op": "gt", "value": 0, "type": "number"}


async def _notes(actor: Any, crm: dict[str, Any]) -> list[dict[str, Any]]:
    r = await actor.get(f"{crm['b']}/notifications")
    assert r.status_code == 200, r.text
    return r.json()["notifications"]


async def _record(crm: dict[str, Any], event_id: str = "c1", **fields: Any) -> int:
    r = await send(crm, ev(event_id, name="Acme", owner_email=crm["rep"].email, fields={"Amount": 10, "Stage": "Open", **fields}))
    return r.json()["results"][0]["record_id"]


def _edit(event_id: str, field: str, old: Any, new: Any, **extra: Any) -> dict[str, Any]:
    return ev(event_id, "edited", fields={field: new}, changes=[{"field": field, "old": old, "new": new}], **extra)


async def test_a_follow_naming_fields_hears_only_of_edits_touching_them(crm, services):
    """An edit of another field leaves the follower out of the item's audience and unnotified; the
    record's card still changes; an edit of a named field, a note and the deletion reach them."""
    manager, rep = crm["manager"], crm["rep"]
    await set_merge_seconds(manager, crm, 0)
    rid = await _record(crm)
    url = f"{crm['b']}/records/{rid}/follow"
    r = await manager.put(url, json={"fields": ["Stage", "Probability"]})
    assert r.status_code == 200, r.text
    assert r.json()["follow"] == {"source": "manual", "rule_id": None, "fields": ["Stage", "Probability"]}

    await send(crm, _edit("e1", "Amount", 10, 20))
    assert await items(manager, crm) == []
    assert await _notes(manager, crm) == []
    assert [i["data"]["change"] for i in await items(rep, crm)] == ["edited", "created"]  # the owner follows every field
    card = (await manager.get(f"{crm['b']}/records/{rid}")).json()
    assert {"field": "Amount", "value": 20} in card["record"]["key_fields"] and card["follow"]["fields"] == ["Stage", "Probability"]

    await send(crm, _edit("e2", "Stage", "Open", "Won"))
    got = await items(manager, crm)
    assert [i["data"]["change"] for i in got] == ["edited"] and got[0]["data"]["fields"][0]["field"] == "Stage"
    notes = await _notes(manager, crm)
    assert [n["kind"] for n in notes] == ["record_followed"]
    assert notes[0]["reason"] == {"code": "follower_manual", "record_id": rid, "record_name": "Acme"}

    # One edit touching a named field and another: it reaches them.
    await send(crm, ev("e3", "edited", fields={"Amount": 30, "Probability": 50}))
    assert len(await items(manager, crm)) == 2
    await send(crm, ev("e4", "note_added", note={"text": "Called"}), ev("e5", "deleted"))
    assert [n["data"]["change"] for n in await _notes(manager, crm)][:2] == ["deleted", "note_added"]

    # Following again with null: every field once more.
    r = await manager.put(url, json={"fields": None})
    assert r.status_code == 404  # the record is deleted in the CRM now


async def test_the_fields_of_a_follow_change_with_put_and_are_kept_by_a_bare_put(crm, services):
    manager = crm["manager"]
    await set_merge_seconds(manager, crm, 0)
    rid = await _record(crm)
    url = f"{crm['b']}/records/{rid}/follow"
    assert (await manager.put(url, json={"fields": ["Stage"]})).json()["follow"]["fields"] == ["Stage"]
    assert (await manager.put(url)).json()["follow"]["fields"] == ["Stage"]  # following twice is the same as once
    assert (await manager.put(url, json={"fields": ["Amount", "Amount"]})).json()["follow"]["fields"] == ["Amount"]
    await send(crm, _edit("e1", "Amount", 10, 11))
    assert len(await items(manager, crm)) == 1
    assert (await manager.put(url, json={"fields": None})).json()["follow"]["fields"] is None
    await send(crm, _edit("e2", "Stage", "Open", "Lost"))
    assert len(await items(manager, crm)) == 2
    # The owner may narrow theirs too.
    rep = crm["rep"]
    assert (await rep.put(url, json={"fields": ["Stage"]})).json()["follow"] == {"source": "owner", "rule_id": None, "fields": ["Stage"]}
    await send(crm, _edit("e3", "Amount", 11, 12))
    assert [i["data"]["fields"][0]["field"] for i in await items(rep, crm) if i["data"]["change"] == "edited"] == ["Stage", "Amount"]


async def test_the_fields_of_a_follow_are_bounded(crm):
    manager = crm["manager"]
    rid = await _record(crm)
    url = f"{crm['b']}/records/{rid}/follow"
    most = [f"F{i}" for i in range(limits.MAX_FOLLOW_FIELDS)]
    assert (await manager.put(url, json={"fields": most})).status_code == 200
    assert (await manager.put(url, json={"fields": [*most, "one more"]})).status_code == 422
    assert (await manager.put(url, json={"fields": ["x" * limits.MAX_FIELD_NAME_CHARS]})).status_code == 200
    assert (await manager.put(url, json={"fields": ["x" * (limits.MAX_FIELD_NAME_CHARS + 1)]})).status_code == 422
    assert (await manager.put(url, json={"fields": []})).status_code == 422
    assert (await manager.put(url, json={"fields": "Stage"})).status_code == 422


async def test_a_rule_gives_its_fields_to_the_follows_it_makes_and_changes_them_with_itself(crm, services):
    """A rule's `fields` is copied to its follows with the rule's id; editing the rule's fields
    changes them; the follower's notifications say which rule, by name."""
    manager = crm["manager"]
    await set_merge_seconds(manager, crm, 0)
    r = await manager.post(f"{crm['b']}/rules", json={"name": "Big deals", "module": "Deals", "criteria": CRITERIA, "fields": ["Stage"]})
    assert r.status_code == 201, r.text
    rule = r.json()["rule"]
    assert rule["fields"] == ["Stage"]
    rid = await _record(crm)
    follow = (await manager.get(f"{crm['b']}/records/{rid}")).json()["follow"]
    assert follow == {"source": "rule", "rule_id": rule["id"], "fields": ["Stage"]}
    first = await _notes(manager, crm)
    assert first[0]["reason"] == {"code": "follower_rule", "record_id": rid, "record_name": "Acme", "rule_id": rule["id"], "rule_name": "Big deals"}

    await send(crm, _edit("e1", "Amount", 10, 20))
    assert len(await _notes(manager, crm)) == 1 and len(await items(manager, crm)) == 1

    r = await manager.patch(f"{crm['b']}/rules/{rule['id']}", json={"fields": ["Amount"]})
    assert r.status_code == 200 and r.json()["rule"]["fields"] == ["Amount"]
    assert (await manager.get(f"{crm['b']}/records/{rid}")).json()["follow"]["fields"] == ["Amount"]
    await send(crm, _edit("e2", "Amount", 20, 30))
    notes = await _notes(manager, crm)
    assert len(notes) == 2 and notes[0]["reason"]["rule_name"] == "Big deals"
    # A patch without `fields` keeps them; null gives every field back.
    await manager.patch(f"{crm['b']}/rules/{rule['id']}", json={"description": "x"})
    assert (await manager.get(f"{crm['b']}/records/{rid}")).json()["follow"]["fields"] == ["Amount"]
    r = await manager.patch(f"{crm['b']}/rules/{rule['id']}", json={"fields": None})
    assert r.json()["rule"]["fields"] is None
    assert (await manager.get(f"{crm['b']}/records/{rid}")).json()["follow"]["fields"] is None
    # Bounds as for a follow.
    too_many = [f"F{i}" for i in range(limits.MAX_FOLLOW_FIELDS + 1)]
    assert (await manager.patch(f"{crm['b']}/rules/{rule['id']}", json={"fields": too_many})).status_code == 422


def test_a_rule_file_names_the_fields_of_its_follows():
    rule = {"name": "Big", "module": "Deals", "criteria": CRITERIA}
    assert parse_rule_file({"version": 1, "rules": [rule]})[0].fields is None
    assert parse_rule_file({"version": 1, "rules": [{**rule, "fields": ["Stage", "Amount"]}]})[0].fields == ("Stage", "Amount")
    for bad, path in (([], "rules[0].fields"), (["Stage", "Stage"], "rules[0].fields[1]"), (["x" * 101], "rules[0].fields[0]")):
        with pytest.raises(ValidationFailed) as caught:
            parse_rule_file({"version": 1, "rules": [{**rule, "fields": bad}]})
        assert caught.value.details["path"] == path


async def test_ten_edits_in_a_minute_are_one_notification_and_ten_items(crm, services):
    """The person's merge window (60 s by default): one notification listing the changes, announced
    again under its id; the feed shows each; after the window a new notification starts."""
    rep = crm["rep"]
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    services.clock = lambda: start
    await _record(crm)
    later = start + timedelta(minutes=5)
    for i in range(10):
        services.clock = lambda i=i: later + timedelta(seconds=5 * i)
        await send(crm, _edit(f"e{i}", "Amount", i, i + 1))
    got = await items(rep, crm)
    assert [i["data"]["change"] for i in got] == ["edited"] * 10 + ["created"]
    notes = await _notes(rep, crm)
    assert len(notes) == 2
    burst = notes[0]
    assert burst["data"]["count"] == 10 and len(burst["data"]["changes"]) == 10
    assert [c["fields"][0]["new"] for c in burst["data"]["changes"]] == list(range(1, 11))
    assert burst["created_at"].startswith("2026-03-02T09:05:00") and burst["updated_at"].startswith("2026-03-02T09:05:45")
    assert burst["post_id"] == got[0]["id"]  # the latest change's item

    async with org_session(services.sessions, crm["org"]["id"]) as session:
        events = (await session.execute(select(Event).where(Event.type == "notifications.created").order_by(Event.seq))).scalars().all()
    announced = [e.payload["notifications"] for e in events if e.channels == [f"u:{rep.id}"]]
    assert [len(a) for a in announced] == [1] * 11
    assert {a[0]["id"] for a in announced[1:]} == {burst["id"]} and announced[-1][0]["data"]["count"] == 10

    services.clock = lambda: later + timedelta(seconds=45 + limits.DEFAULT_RECORD_MERGE_SECONDS + 1)
    await send(crm, _edit("e10", "Amount", 10, 11))
    notes = await _notes(rep, crm)
    assert len(notes) == 3 and notes[0]["data"]["count"] == 1


async def test_a_burst_within_one_batch_merges_and_a_read_notification_is_not_merged_into(crm, services):
    rep = crm["rep"]
    await send(crm, ev("c1", name="Acme", owner_email=rep.email), _edit("e1", "Amount", None, 1), _edit("e2", "Amount", 1, 2))
    [note] = await _notes(rep, crm)
    assert note["data"]["count"] == 3 and [c["change"] for c in note["data"]["changes"]] == ["created", "edited", "edited"]
    assert (await rep.post(f"{crm['b']}/notifications/{note['id']}/read")).status_code == 200
    await send(crm, _edit("e3", "Amount", 2, 3))
    notes = await _notes(rep, crm)
    assert len(notes) == 2 and notes[0]["data"]["count"] == 1


async def test_a_merged_notification_keeps_the_latest_changes_and_counts_them_all(crm):
    rep = crm["rep"]
    n = limits.MAX_MERGED_CHANGES + 5
    await send(crm, ev("c1", name="Acme", owner_email=rep.email), *[_edit(f"e{i}", "Amount", i, i + 1) for i in range(n - 1)])
    [note] = await _notes(rep, crm)
    assert note["data"]["count"] == n and len(note["data"]["changes"]) == limits.MAX_MERGED_CHANGES
    assert note["data"]["changes"][-1]["fields"][0]["new"] == n - 1


async def test_a_merge_window_of_zero_notifies_each_change(crm, services):
    rep = crm["rep"]
    await set_merge_seconds(rep, crm, 0)
    await send(crm, ev("c1", name="Acme", owner_email=rep.email), _edit("e1", "Amount", None, 1), _edit("e2", "Amount", 1, 2))
    assert [n["data"]["count"] for n in await _notes(rep, crm)] == [1, 1, 1]


async def test_ones_own_changes_never_notify_oneself(crm):
    rep, manager = crm["rep"], crm["manager"]
    rid = await _record(crm)
    await manager.put(f"{crm['b']}/records/{rid}/follow")
    (await rep.post(f"{crm['b']}/notifications/read-all")).raise_for_status()
    await send(crm, _edit("e1", "Stage", "Open", "Won", actor_email=rep.email))
    assert await _notes(rep, crm) != [] and all(n["read_at"] for n in await _notes(rep, crm))
    assert [i["data"]["change"] for i in await items(rep, crm)] == ["edited", "created"]
    notes = await _notes(manager, crm)
    assert [n["actor_id"] for n in notes] == [rep.id] and notes[0]["reason"]["code"] == "follower_manual"


async def test_owner_reason_and_a_muted_record_notifies_nobody_who_muted_it(crm, services):
    rep, manager = crm["rep"], crm["manager"]
    rid = await _record(crm)
    [note] = await _notes(rep, crm)
    assert note["reason"] == {"code": "owner", "record_id": rid, "record_name": "Acme"} and note["record_id"] == rid
    await manager.put(f"{crm['b']}/records/{rid}/follow")
    assert (await rep.put(f"{crm['b']}/mutes/record/{rid}")).status_code == 200
    await send(crm, _edit("e1", "Stage", "Open", "Won"))
    assert len(await _notes(rep, crm)) == 1  # only the creation's
    assert len(await _notes(manager, crm)) == 1
    assert [i["data"]["change"] for i in await items(rep, crm)] == ["edited", "created"]  # the feed is not muted


async def test_record_notifications_honour_the_in_app_choice(crm):
    rep = crm["rep"]
    r = await rep.patch(f"{crm['b']}/notification-settings", json={"channels": {"record_owned": {"in_app": False}}})
    assert r.status_code == 200, r.text
    await _record(crm)
    assert await _notes(rep, crm) == []
    assert len(await items(rep, crm)) == 1


async def test_a_merged_notification_is_pushed_once_when_its_window_closes(crm, services):
    """One push job per notification and browser, due when the merge window closes, saying what the
    notification says by then."""
    rep = crm["rep"]
    start = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    services.clock = lambda: start
    r = await rep.patch(f"{crm['b']}/notification-settings", json={"channels": {"record_owned": {"push": True}}})
    assert r.status_code == 200, r.text
    async with org_session(services.sessions, crm["org"]["id"]) as session:
        session.add(PushSubscription(
            user_id=rep.id, endpoint="https://push.example/sub/1", endpoint_hash="a" * 64, p256dh="p" * 87, auth="a" * 22, created_at=start,
        ))
    await _record(crm)
    for i in range(3):
        services.clock = lambda i=i: start + timedelta(seconds=10 * (i + 1))
        await send(crm, _edit(f"e{i}", "Amount", i, i + 1))
    [note] = await _notes(rep, crm)
    async with org_session(services.sessions, crm["org"]["id"]) as session:
        jobs = (await session.execute(select(PushJob))).scalars().all()
    assert len(jobs) == 1 and jobs[0].notification_id == note["id"]
    assert jobs[0].next_attempt_at == start + timedelta(seconds=limits.DEFAULT_RECORD_MERGE_SECONDS)
    assert jobs[0].payload["notification_id"] == note["id"] and "4" in jobs[0].payload["title"]


async def test_new_follows_by_rule_keep_the_rule_and_its_fields_in_order(crm, services):
    admin = crm["admin"]
    r = await admin.post(f"{crm['b']}/rules", json={"name": "All", "module": "Deals", "criteria": CRITERIA, "fields": ["Stage", "Amount"]})
    rule_id = r.json()["rule"]["id"]
    rid = await _record(crm)
    async with org_session(services.sessions, crm["org"]["id"]) as session:
        rows = (await session.execute(select(Follow.user_id, Follow.source, Follow.rule_id, Follow.fields).where(Follow.record_id == rid))).all()
    assert sorted(rows) == sorted([(crm["rep"].id, "owner", None, None), (admin.id, "rule", rule_id, ["Stage", "Amount"])])


async def test_applying_a_rule_file_gives_and_takes_back_its_fields(client, settings, tmp_path):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    rule = {"name": "Stage watch", "module": "Deals", "criteria": CRITERIA}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"version": 1, "rules": [{**rule, "fields": ["Stage"]}]}))
    assert await rules_cli.apply(settings, org["slug"], str(path)) == 0
    mine = (await owner.get(f"/api/v1/orgs/{org['slug']}/rules")).json()["created_by_me"]
    assert [(r["name"], r["fields"]) for r in mine] == [("Stage watch", ["Stage"])]
    path.write_text(json.dumps({"version": 1, "rules": [rule]}))
    assert await rules_cli.apply(settings, org["slug"], str(path)) == 0
    mine = (await owner.get(f"/api/v1/orgs/{org['slug']}/rules")).json()["created_by_me"]
    assert [(r["name"], r["fields"]) for r in mine] == [("Stage watch", None)]


async def test_a_deleted_rules_follows_keep_their_fields_and_no_longer_name_it(crm, services):
    """Deleting a rule leaves its follows (with their fields) but they stop naming it: a later rule,
    even one given the same id (SQLite reuses ids), never changes them."""
    manager = crm["manager"]
    r = await manager.post(f"{crm['b']}/rules", json={"name": "Big deals", "module": "Deals", "criteria": CRITERIA, "fields": ["Stage"]})
    rule_id = r.json()["rule"]["id"]
    rid = await _record(crm)
    assert (await manager.get(f"{crm['b']}/records/{rid}")).json()["follow"] == {"source": "rule", "rule_id": rule_id, "fields": ["Stage"]}
    assert (await manager.delete(f"{crm['b']}/rules/{rule_id}")).status_code == 204
    assert (await manager.get(f"{crm['b']}/records/{rid}")).json()["follow"] == {"source": "rule", "rule_id": None, "fields": ["Stage"]}

    r = await manager.post(f"{crm['b']}/rules", json={"name": "Other", "module": "Leads", "criteria": CRITERIA, "fields": ["Amount"]})
    newer = r.json()["rule"]["id"]
    assert (await manager.patch(f"{crm['b']}/rules/{newer}", json={"fields": ["Probability"]})).status_code == 200
    async with org_session(services.sessions, crm["org"]["id"]) as session:
        rows = (await session.execute(select(Follow.rule_id, Follow.fields).where(Follow.record_id == rid, Follow.user_id == manager.id))).all()
    assert [tuple(row) for row in rows] == [(None, ["Stage"])]
