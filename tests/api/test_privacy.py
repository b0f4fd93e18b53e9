"""A person's data on request (GDPR, F-OPS-3): exported, and erased everywhere or in one org."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select

from feeds_server.cli import data as data_cli
from feeds_server.store.base import Base
from feeds_server.store.models import Attachment, DormancyNotice, Event, Mute, Notification, Presence, PushJob, PushSubscription
from feeds_server.store.scope import org_session
from tests import factory
from tests.notify.push_service import browser_subscription

TOLD_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


async def _org_around_bob(client, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Alice's org, where Bob posts (with a file), comments, is mentioned, messaged, grouped, follows,
    owns a record and is named by a rule; Carol is an admin there."""
    alice = await factory.sign_up(client, factory.unique("Alice"))
    org = await factory.create_org(alice)
    slug, b = org["slug"], f"/api/v1/orgs/{org['slug']}"
    bob = await factory.sign_up(client, factory.unique("Bob"))
    carol = await factory.sign_up(client, factory.unique("Carol"))
    await factory.invite_and_join(alice, slug, bob, settings.mail_dir)
    await factory.invite_and_join(alice, slug, carol, settings.mail_dir)
    admin_profile = next(p for p in (await alice.get(f"{b}/profiles")).json()["profiles"] if "admin" in p["permissions"])
    assert (await alice.patch(f"{b}/members/{carol.id}", json={"profile_id": admin_profile["id"]})).status_code == 200
    group = (await alice.post(f"{b}/groups", json={"name": "Crew", "sources": [{"type": "user", "id": bob.id}, {"type": "user", "id": carol.id}]})).json()["group"]
    r = await bob.post(f"{b}/posts", files=[("files", ("cv.pdf", b"%PDF-bob", "application/pdf"))], data={"message": '{"body": "My CV"}'})
    assert r.status_code == 201
    bobs_post = r.json()["post"]
    thanks = {"body": f"Thanks @[user:{bob.id}] and @[user:{carol.id}]"}
    alices_post = (await alice.post(f"{b}/posts", json=thanks, headers={"Idempotency-Key": "thanks-1"})).json()["post"]
    assert (await bob.post(f"{b}/posts/{alices_post['id']}/comments", json={"body": "You are welcome"})).status_code == 201
    assert (await carol.post(f"{b}/posts/{alices_post['id']}/comments", json={"body": "Indeed"})).status_code == 201
    private = (await alice.post(f"{b}/posts", json={"body": "Between us", "recipient_id": bob.id})).json()["post"]
    token = (await alice.post(f"{b}/integrations", json={"name": "CRM"})).json()["token"]
    r = await client.post(f"{b}/integration/record-events", headers={"authorization": f"Bearer {token}"}, json={"events": [
        {"event_id": "e1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Bob's deal", "owner_email": bob.email}}]})
    record_id = r.json()["results"][0]["record_id"]
    assert (await alice.put(f"{b}/records/{record_id}/follow")).status_code in (200, 204)
    r = await client.post(f"{b}/integration/record-events", headers={"authorization": f"Bearer {token}"}, json={"events": [
        {"event_id": "e2", "type": "edited", "module": "Deals", "record": {"id": "D-1", "fields": {"Amount": 2}}}]})
    assert r.status_code == 200
    rule = {"name": "Watch", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1},
            "followers": {"creator": True, "users": [bob.id]}}
    rule_id = (await alice.post(f"{b}/rules", json=rule)).json()["rule"]["id"]
    assert (await bob.post(f"{b}/rules", json={**rule, "name": "Mine", "followers": {"creator": True}})).status_code == 201
    return {"alice": alice, "bob": bob, "carol": carol, "slug": slug, "b": b, "group": group, "bobs_post": bobs_post,
            "alices_post": alices_post, "private": private, "record_id": record_id, "rule_id": rule_id}


async def _every_row(services) -> str:  # type: ignore[no-untyped-def]
    """Every row of every table, as text."""
    out = []
    async with services.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in (await conn.execute(select(table))).all()]
    return "\n".join(out)


async def test_a_person_exports_their_own_data_and_no_one_elses(client, settings, services, tmp_path):
    world = await _org_around_bob(client, settings)
    bob, alice, b = world["bob"], world["alice"], world["b"]
    await factory.sign_in(client, bob.email)
    r = await bob.get("/api/v1/me/export")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["account"]["email"] == bob.email and data["version"] == 2
    [mine] = [o for o in data["orgs"] if o["org"]["slug"] == world["slug"]]
    assert [p["body"] for p in mine["posts"]] == ["My CV"]
    assert mine["posts"][0]["attachments"][0]["download"] == f"{b}/attachments/{world['bobs_post']['attachments'][0]['id']}"
    assert [p["body"] for p in mine["messages_received"]] == ["Between us"]
    assert [c["body"] for c in mine["comments"]] == ["You are welcome"]
    assert {n["kind"] for n in mine["notifications"]} == {"mention", "private_message", "record_owned"}
    assert [f["record"]["crm_id"] for f in mine["follows"]] == ["D-1"]
    assert [r["name"] for r in mine["rules"]] == ["Mine"]
    assert mine["membership"]["profile"] == "Standard" and mine["sign_ins"][0]["ip"] == "127.0.0.1"
    assert "Indeed" not in json.dumps(data) and "Watch" not in json.dumps(data)

    out = tmp_path / "bob.json"
    assert await data_cli.export_user(settings, bob.email, str(out)) == 0
    assert json.loads(out.read_text())["orgs"][0]["posts"][0]["body"] == "My CV"

    # An org that accepts only its own networks is named, not read, from elsewhere (F-SEC-4).
    here = (await alice.get(f"{b}/ip-allowlist")).json()["your_address"]
    assert (await alice.put(f"{b}/ip-allowlist", json={"ranges": [f"{here}/32"]})).status_code == 200
    services.settings = dataclasses.replace(services.settings, trusted_proxies=(f"{here}/32",))
    elsewhere = (await bob.get("/api/v1/me/export", headers={"x-forwarded-for": "198.51.100.7"})).json()
    [withheld] = [o for o in elsewhere["orgs"] if o["org"]["slug"] == world["slug"]]
    assert "withheld" in withheld and "posts" not in withheld


async def test_erasing_an_account_removes_its_data_and_leaves_no_trace_of_it(client, settings, services):
    """What goes, what stays anonymised (actions/erasure.py), and that no row names the person any more."""
    world = await _org_around_bob(client, settings)
    alice, bob, b = world["alice"], world["bob"], world["b"]
    org_id = alice.orgs[world["slug"]]["id"]
    async with org_session(services.sessions, org_id) as session:
        file_key = (await session.execute(select(Attachment.storage_key))).scalar_one()
    file_path = settings.files_dir / file_key[:2] / file_key
    assert file_path.exists()
    with pytest.raises(SystemExit):
        await data_cli.erase_user(settings, bob.email, confirmed=False)

    assert await data_cli.erase_user(settings, bob.email, confirmed=True) == 0

    assert (await bob.get("/api/v1/me")).status_code == 401
    assert (await client.post("/api/v1/auth/signin", json={"email": bob.email, "password": factory.PASSWORD})).status_code == 401
    assert not file_path.exists()
    feed = (await alice.get(f"{b}/feed?limit=100")).json()["items"]
    assert {i["body"] for i in feed if i["kind"] != "record"} == {f"Thanks @(deleted) and @[user:{world['carol'].id}]"}
    thanks = next(i for i in feed if i["kind"] == "status")
    assert thanks["comment_count"] == 1 and [c["body"] for c in thanks["latest_comments"]] == ["Indeed"]
    assert [s["text"] for s in thanks["segments"] if s["type"] == "text"][0] == "Thanks @(deleted) and "
    [item] = [i for i in feed if i["kind"] == "record"]
    assert item["data"]["record"]["owner"] is None
    assert (await alice.get(f"{b}/records/{world['record_id']}")).json()["record"]["owner"] is None
    crew = (await world["carol"].get(f"{b}/groups/{world['group']['id']}")).json()
    assert [m["id"] for m in crew["members"]] == [world["carol"].id]
    rules = (await alice.get(f"{b}/rules")).json()["created_by_me"]
    assert [(r["name"], r["followers"]["users"]) for r in rules] == [("Watch", [])]
    assert bob.id not in [m["user"]["id"] for m in (await alice.get(f"{b}/members?limit=100")).json()["members"]]
    log = (await alice.get(f"{b}/audit?limit=100")).json()["entries"]
    assert [e["details"]["via"] for e in log if e["action"] == "member.erased"] == ["cli"]
    assert not [e for e in log if e["action"].startswith("auth.") and e["target"]["id"] == bob.id]

    # Others' live feeds drop the items: each deletion is an event on the item's channels.
    async with org_session(services.sessions, org_id) as session:
        events = (await session.execute(select(Event.type, Event.payload, Event.channels).order_by(Event.seq))).all()
    deleted = {e.payload["post_id"]: e.channels for e in events if e.type == "post.deleted"}
    assert deleted == {world["bobs_post"]["id"]: ["org"], world["private"]["id"]: sorted([f"u:{alice.id}", f"u:{bob.id}"])}
    assert [e.payload["post_id"] for e in events if e.type == "comment.deleted"] == [world["alices_post"]["id"]]
    assert ("member.removed", {"user_id": bob.id}) in [(e.type, e.payload) for e in events]

    # Nothing stored names Bob any more, in any table.
    rows = await _every_row(services)
    assert bob.email not in rows and bob.name not in rows
    # The address is free again.
    again = await factory.sign_up(client, "Robert", email=bob.email)
    assert world["slug"] not in [o["org"]["slug"] for o in (await again.get("/api/v1/me")).json()["orgs"]]


async def test_a_super_admins_org_passes_on_and_an_org_of_one_goes_with_them(client, settings):
    world = await _org_around_bob(client, settings)
    alice, carol, b = world["alice"], world["carol"], world["b"]
    solo = (await factory.create_org(alice))["slug"]
    assert await data_cli.erase_user(settings, alice.email, confirmed=True) == 0
    me = (await carol.get(f"{b}")).json()
    assert me["membership"]["is_super_admin"] is True  # the longest-standing admin, not Bob who joined first
    assert (await carol.get(f"/api/v1/orgs/{solo}")).status_code == 404
    owners = [e for e in (await carol.get(f"{b}/audit", params={"action": "org.super_admin_handed_over"})).json()["entries"]]
    assert owners[0]["target"]["id"] == carol.id


async def test_erasing_oneself_needs_the_password_and_ends_every_sign_in(client, settings):
    world = await _org_around_bob(client, settings)
    bob = world["bob"]
    other_sign_in = await factory.sign_in(client, bob.email)
    r = await bob.post("/api/v1/me/erase", json={"password": "not my password"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_password"
    assert (await bob.get("/api/v1/me")).status_code == 200
    r = await bob.post("/api/v1/me/erase", json={"password": factory.PASSWORD})
    assert r.status_code == 202, r.text
    for sign_in in (bob, other_sign_in):
        assert (await sign_in.get("/api/v1/me")).status_code == 401
    feed = (await world["alice"].get(f"{world['b']}/feed?limit=100")).json()["items"]
    assert "My CV" not in [i["body"] for i in feed]
    log = (await world["alice"].get(f"{world['b']}/audit", params={"action": "member.erased"})).json()["entries"]
    assert log[0]["details"]["via"] == "self" and log[0]["actor"] is None


async def test_an_admin_erases_a_member_in_their_own_org_only(client, settings):
    world = await _org_around_bob(client, settings)
    alice, bob, carol, b = world["alice"], world["bob"], world["carol"], world["b"]
    dave = await factory.sign_up(client, factory.unique("Dave"))
    elsewhere = await factory.create_org(dave)
    await factory.invite_and_join(dave, elsewhere["slug"], bob, settings.mail_dir)
    assert (await bob.post(f"/api/v1/orgs/{elsewhere['slug']}/posts", json={"body": "Bob elsewhere"})).status_code == 201
    r = await carol.post(f"{b}/members/{alice.id}/erase")
    assert r.status_code == 403 and r.json()["error"]["code"] == "cannot_erase_super_admin"
    r = await carol.post(f"{b}/members/{bob.id}/erase")
    assert r.status_code == 200, r.text
    assert r.json()["erased"]["posts"] == 2 and r.json()["erased"]["comments"] == 1
    assert "My CV" not in [i["body"] for i in (await alice.get(f"{b}/feed?limit=100")).json()["items"]]
    assert (await bob.get(b)).status_code == 404
    # Bob's login and his other org are his own: untouched.
    assert (await bob.get("/api/v1/me")).status_code == 200
    mine = (await bob.get(f"/api/v1/orgs/{elsewhere['slug']}/feed")).json()["items"]
    assert [i["body"] for i in mine] == ["Bob elsewhere"]
    assert (await carol.post(f"{b}/members/{bob.id}/erase")).status_code == 404


async def _steering_bob(client, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Bob's choices in an org: settings of every kind, a mute, a browser for pushes, a follow of some
    fields, a rule with fields; Ann and the owner mention him and he mentions them."""
    owner, ann, bob, org = await factory.team(client, settings.mail_dir)
    b = factory.org_path(org)
    token = (await owner.post(f"{b}/integrations", json={"name": "CRM"})).json()["token"]
    r = await client.post(f"{b}/integration/record-events", headers={"authorization": f"Bearer {token}"}, json={"events": [
        {"event_id": "e1", "type": "created", "module": "Deals", "record": {"id": "D-1", "name": "Quiet deal", "owner_email": owner.email}}]})
    record_id = r.json()["results"][0]["record_id"]
    snooze = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    choices = {"channels": {"group_post": {"push": True}}, "quiet_hours": {"start": "22:00", "end": "07:00"}, "time_zone": "Europe/Paris",
               "snooze_until": snooze.isoformat(), "digest": {"frequency": "daily", "hour": 7}, "dormant_days": 30,
               "record_merge_seconds": 120}
    r = await bob.patch(f"{b}/notification-settings", json=choices)
    assert r.status_code == 200, r.text
    assert (await bob.put(f"{b}/mutes/record/{record_id}")).status_code == 200
    sub = browser_subscription("https://push.example.com/send/bobs-browser")
    assert (await bob.post(f"{b}/push-subscriptions", json=sub, headers={"user-agent": "Bob's browser"})).status_code == 201
    assert (await ann.post(f"{b}/push-subscriptions", json=browser_subscription("https://push.example.com/send/anns"))).status_code == 201
    assert (await bob.put(f"{b}/records/{record_id}/follow", json={"fields": ["Stage"]})).status_code == 200
    rule = {"name": "Mine", "module": "Deals", "criteria": {"field": "Amount", "type": "number", "op": "gt", "value": 1}, "fields": ["Amount"]}
    assert (await bob.post(f"{b}/rules", json=rule)).status_code == 201
    assert (await ann.post(f"{b}/posts", json={"body": f"Hello @[user:{bob.id}]"})).status_code == 201
    assert (await bob.post(f"{b}/posts", json={"body": f"Ping @[user:{ann.id}]"})).status_code == 201
    assert (await bob.post(f"{b}/posts", json={"body": f"Pong @[user:{ann.id}]"})).status_code == 201
    assert (await owner.post(f"{b}/posts", json={"body": f"Ann, ask {bob.name} @[user:{ann.id}]"})).status_code == 201
    assert (await owner.post(f"{b}/posts", json={"body": f"Ann, see @[user:{ann.id}]"})).status_code == 201
    return {"owner": owner, "ann": ann, "bob": bob, "org": org, "b": b, "record_id": record_id, "snooze": snooze}


async def test_a_persons_export_holds_their_notification_choices_mutes_browsers_and_reasons(client, settings, services):
    """F-OPS-3: everything a person chose about notifications, and why each notification came."""
    world = await _steering_bob(client, settings)
    bob, org, record_id = world["bob"], world["org"], world["record_id"]
    async with org_session(services.sessions, org["id"]) as session:
        session.add(DormancyNotice(record_id=record_id, user_id=bob.id, last_activity_at=TOLD_AT))
        await session.commit()
    data = (await bob.get("/api/v1/me/export")).json()
    [mine] = [o for o in data["orgs"] if o["org"]["slug"] == org["slug"]]
    chosen = mine["notification_settings"]
    assert chosen["channels"]["group_post"]["push"] is True and chosen["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert chosen["time_zone"] == "Europe/Paris" and datetime.fromisoformat(chosen["snooze_until"]) == world["snooze"]
    assert chosen["digest"]["frequency"] == "daily" and chosen["digest"]["hour"] == 7
    assert chosen["dormant_days"] == 30 and chosen["record_merge_seconds"] == 120
    assert "digest_sent_until" in chosen and "digest_due_at" in chosen
    assert [(m["kind"], m["id"]) for m in mine["mutes"]] == [("record", record_id)]
    [browser] = mine["push_subscriptions"]
    assert browser["endpoint"] == "https://push.example.com/send/bobs-browser" and browser["user_agent"] == "Bob's browser"
    assert "auth" not in browser and "p256dh" not in browser and browser["created_at"]
    assert [(d["record_id"], d["record_last_activity_at"][:10]) for d in mine["dormancy_notices"]] == [(record_id, "2026-01-02")]
    [mention] = [n for n in mine["notifications"] if n["kind"] == "mention"]
    assert mention["reason"]["code"] == "mentioned" and "updated_at" in mention and "record_id" in mention
    [follow] = mine["follows"]
    assert follow["fields"] == ["Stage"] and follow["rule_id"] is None and follow["source"] == "manual"
    assert [(r["name"], r["fields"]) for r in mine["rules"]] == [("Mine", ["Amount"])]


async def test_erasing_a_member_takes_pushes_of_what_they_did_and_their_mutes_notices_and_presence(client, settings, services):
    """A waiting push, a held one and a dead letter of what Bob did carry his name and words: they go.
    So do others' pushes naming him, his mutes, dormancy notices, browsers and live-connection marks;
    Ann's other pushes stay."""
    world = await _steering_bob(client, settings)
    owner, ann, bob, org, record_id = world["owner"], world["ann"], world["bob"], world["org"], world["record_id"]
    async with org_session(services.sessions, org["id"]) as session:
        session.add(DormancyNotice(record_id=record_id, user_id=bob.id, last_activity_at=TOLD_AT))
        session.add(Presence(user_id=bob.id, node="node-1", live_until=TOLD_AT))
        by_bob = list((await session.execute(
            select(PushJob.id).join(Notification, Notification.id == PushJob.notification_id).where(Notification.actor_id == bob.id).order_by(PushJob.id)
        )).scalars())
        assert len(by_bob) == 2
        # One is a dead letter (its payload kept for an operator), the other held until quiet hours end.
        await session.execute(PushJob.__table__.update().where(PushJob.id == by_bob[0]).values(status="failed"))
        await session.execute(PushJob.__table__.update().where(PushJob.id == by_bob[1]).values(next_attempt_at=datetime.now(timezone.utc) + timedelta(days=1)))
        payloads = [p for p in (await session.execute(select(PushJob.payload).where(PushJob.user_id == ann.id))).scalars()]
        assert sum(bob.name in str(p) for p in payloads) == 3
        await session.commit()

    r = await owner.post(f"{world['b']}/members/{bob.id}/erase")
    assert r.status_code == 200, r.text

    async with org_session(services.sessions, org["id"]) as session:
        jobs = (await session.execute(select(PushJob.user_id, PushJob.payload))).all()
        for model in (Mute, DormancyNotice, Presence, PushSubscription):
            assert (await session.execute(select(model).where(model.user_id == bob.id))).first() is None, model.__name__
    assert all(bob.name not in str(payload) for _, payload in jobs)
    assert [payload["body"] for user, payload in jobs if user == ann.id] == [f"Ann, see @{ann.name}"]
