"""The notification pipeline as members steer it: new kinds (private messages, group posts,
reactions), reasons, mutes, in-app/email/push choices, and the worker honouring snooze and quiet
hours at send time, against a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from feeds_server import limits
from feeds_server.notify import worker
from feeds_server.store.models import EmailJob, PushJob
from feeds_server.store.scope import account_session
from tests.notify.helpers import later, post

WINDOW = timedelta(seconds=limits.DEFAULT_MENTION_BATCH_SECONDS + 1)


async def notes(actor, org):  # type: ignore[no-untyped-def]
    return (await actor.get(f"/api/v1/orgs/{org['slug']}/notifications")).json()["notifications"]


async def choose(actor, org, **settings):  # type: ignore[no-untyped-def]
    r = await actor.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json=settings)
    assert r.status_code == 200, r.text
    return r.json()["settings"]


async def jobs(services, model, user_id):  # type: ignore[no-untyped-def]
    """The person's email or push jobs of notifications (not their account's emails)."""
    async with account_session(services.sessions) as s:
        stmt = select(model).where(model.user_id == user_id, model.notification_id.is_not(None)).order_by(model.id)
        return list((await s.execute(stmt)).scalars())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def subscribe_browser(actor, org, n: int) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    body = {"endpoint": f"https://push.example.com/send/{actor.id}-{n}", "keys": {"p256dh": _b64(key), "auth": _b64(bytes(range(16)))}}
    r = await actor.post(f"/api/v1/orgs/{org['slug']}/push-subscriptions", json=body)
    assert r.status_code == 201, r.text


# --- new kinds and reasons -------------------------------------------------------------------------
async def test_a_private_message_notifies_its_recipient_in_app_only_by_default(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await post(ann, org, "just between us", recipient_id=bob.id)
    [note] = await notes(bob, org)
    assert note["kind"] == "private_message" and note["reason"] == {"code": "participant"}
    assert note["actor_id"] == ann.id and note["data"]["excerpt"] == "just between us"
    assert await notes(ann, org) == [] and await notes(cid, org) == []
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 0, "no email by default"


async def test_a_private_message_email_when_turned_on_lists_what_it_is(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await choose(bob, org, channels={"private_message": {"email": True}})
    await post(ann, org, "the numbers are in", recipient_id=bob.id)
    await post(ann, org, f"see this @[user:{bob.id}]")
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 1
    [mail] = smtp.recorder.messages
    text = mail.get_body(("plain",)).get_content()
    assert mail["To"] == bob.email and mail["Subject"] == f"2 new notifications in {org['name']}"
    assert f"{ann.name} sent you a private message" in text and f"{ann.name} mentioned you in a post" in text
    assert "the numbers are in" in text and mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_a_private_message_to_a_group_notifies_each_member_but_the_author(team):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    group = (await owner.post(f"{b}/groups", json={"name": "Duo", "sources": [{"type": "user", "id": u} for u in (ann.id, bob.id)]})).json()["group"]
    await post(ann, org, "for the two of us", group_id=group["id"], private=True)
    [note] = await notes(bob, org)
    assert note["kind"] == "private_message" and note["reason"] == {"code": "participant", "group_id": group["id"]}
    assert await notes(ann, org) == [] and await notes(cid, org) == [] and await notes(owner, org) == []


async def test_a_mention_in_a_private_message_notifies_once(team):
    owner, ann, bob, cid, org = team
    await post(ann, org, f"hi @[user:{bob.id}]", recipient_id=bob.id)
    assert [n["kind"] for n in await notes(bob, org)] == ["mention"]


async def test_group_posts_reach_only_members_who_turned_them_on(team):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    group = (await owner.post(f"{b}/groups", json={"name": "Crew", "sources": [{"type": "user", "id": u} for u in (ann.id, bob.id, cid.id)]})).json()["group"]
    await choose(bob, org, channels={"group_post": {"in_app": True}})
    await choose(owner, org, channels={"group_post": {"in_app": True}})  # not a member: hears nothing
    await choose(cid, org, channels={"group_post": {"in_app": False}})
    await post(ann, org, "crew news", group_id=group["id"])
    [note] = await notes(bob, org)
    assert note["kind"] == "group_post"
    assert note["reason"] == {"code": "group_member", "group_id": group["id"], "group_name": "Crew"}
    assert await notes(cid, org) == [] and await notes(owner, org) == [] and await notes(ann, org) == []


async def test_a_muted_group_posts_nothing_to_its_member(team):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    group = (await owner.post(f"{b}/groups", json={"name": "Crew", "sources": [{"type": "user", "id": u} for u in (ann.id, bob.id)]})).json()["group"]
    await choose(bob, org, channels={"group_post": {"in_app": True}})
    assert (await bob.put(f"{b}/mutes/group/{group['id']}")).status_code == 200
    await post(ann, org, "crew news", group_id=group["id"])
    await post(ann, org, f"@[group:{group['id']}] all hands", group_id=group["id"])
    assert await notes(bob, org) == []
    await post(ann, org, f"@[user:{bob.id}] you in particular", group_id=group["id"])
    assert [n["reason"]["code"] for n in await notes(bob, org)] == ["mentioned"], "a direct mention always gets through"


async def test_mention_reasons_name_the_group_and_the_role(team):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    gid = (await owner.post(f"{b}/groups", json={"name": "Duo", "sources": [{"type": "user", "id": bob.id}, {"type": "user", "id": ann.id}]})).json()["group"]["id"]
    role = (await owner.post(f"{b}/roles", json={"name": "Analyst"})).json()["role"]["id"]
    await owner.patch(f"{b}/members/{cid.id}", json={"role_id": role})
    await post(ann, org, f"@[group:{gid}] and @[role:{role}] and @[user:{owner.id}]")
    assert (await notes(bob, org))[0]["reason"] == {"code": "mentioned_via_group", "group_id": gid, "group_name": "Duo"}
    assert (await notes(cid, org))[0]["reason"] == {"code": "mentioned_via_role", "role_id": role, "role_name": "Analyst"}
    assert (await notes(owner, org))[0]["reason"] == {"code": "mentioned"}


async def test_a_muted_thread_stays_quiet_but_for_direct_mentions(team):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    gid = (await owner.post(f"{b}/groups", json={"name": "Duo", "sources": [{"type": "user", "id": bob.id}, {"type": "user", "id": cid.id}]})).json()["group"]["id"]
    item = await post(bob, org, "a busy thread")
    assert (await bob.put(f"{b}/mutes/post/{item['id']}")).status_code == 200
    assert (await cid.post(f"{b}/posts/{item['id']}/comments", json={"body": f"@[group:{gid}] thoughts?"})).status_code == 201
    assert (await cid.put(f"{b}/posts/{item['id']}/reactions", json={"emoji": "👍", "on": True})).status_code == 200
    assert await notes(bob, org) == []
    assert (await cid.post(f"{b}/posts/{item['id']}/comments", json={"body": f"@[user:{bob.id}] yours"})).status_code == 201
    assert [n["reason"]["code"] for n in await notes(bob, org)] == ["mentioned"]


async def test_a_reaction_notifies_the_author_once_and_never_for_ones_own(team, services):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    item = await post(ann, org, "react to me")

    async def react(actor, emoji, on=True):  # type: ignore[no-untyped-def]
        r = await actor.put(f"{b}/posts/{item['id']}/reactions", json={"emoji": emoji, "on": on})
        assert r.status_code == 200, r.text

    await react(ann, "👍")
    assert await notes(ann, org) == []
    await react(bob, "👍")
    [note] = await notes(ann, org)
    assert note["kind"] == "reaction" and note["reason"] == {"code": "participant"} and note["actor_id"] == bob.id
    await ann.post(f"{b}/notifications/read-all")
    await react(bob, "👍", on=False)
    await react(bob, "👍")
    assert len(await notes(ann, org)) == 1, "the same person reacting again within a minute: once"
    later(services, timedelta(seconds=limits.REACTION_RENOTIFY_SECONDS + 1))
    await react(bob, "🎉")
    assert len(await notes(ann, org)) == 2


async def test_a_kind_turned_off_everywhere_makes_no_row(team):
    owner, ann, bob, cid, org = team
    await choose(bob, org, channels={"private_message": {"in_app": False, "push": False}})
    await post(ann, org, "hello?", recipient_id=bob.id)
    assert await notes(bob, org) == []
    await choose(bob, org, channels={"private_message": {"push": True}})
    await post(ann, org, "hello again", recipient_id=bob.id)
    assert [n["kind"] for n in await notes(bob, org)] == ["private_message"], "a row when any channel is on"


# --- push jobs ---------------------------------------------------------------------------------------
async def test_push_jobs_one_per_browser_with_a_small_payload(team, services):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    await subscribe_browser(bob, org, 1)
    await subscribe_browser(bob, org, 2)
    await subscribe_browser(cid, org, 1)
    role = (await owner.post(f"{b}/roles", json={"name": "Analyst"})).json()["role"]["id"]
    await owner.patch(f"{b}/members/{cid.id}", json={"role_id": role})
    await post(ann, org, f"look @[user:{bob.id}] and @[role:{role}]")
    pushes = await jobs(services, PushJob, bob.id)
    assert len(pushes) == 2 and len({p.subscription_id for p in pushes}) == 2
    [note] = await notes(bob, org)
    payload = pushes[0].payload
    assert set(payload) == {"title", "body", "url", "tag", "kind", "org", "notification_id"}
    assert payload["notification_id"] == note["id"] and payload["kind"] == "mention" and payload["org"] == org["slug"]
    assert payload["title"] == f"{ann.name} mentioned you" and payload["url"] == f"/#/org/{org['slug']}/post/{note['post_id']}"
    assert await jobs(services, PushJob, cid.id) == [], "a role mention reaches the app only"
    await choose(bob, org, channels={"mention": {"push": False}})
    await post(ann, org, f"again @[user:{bob.id}]")
    assert len(await jobs(services, PushJob, bob.id)) == 2


# --- snooze and quiet hours at queue time and at send time -------------------------------------------
def _hhmm(when: datetime) -> str:
    return f"{when.hour:02d}:{when.minute:02d}"


async def test_quiet_hours_delay_the_email_until_they_end(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    now = datetime.now(timezone.utc)
    end = (now + timedelta(hours=2)).replace(second=0, microsecond=0)
    await choose(bob, org, quiet_hours={"start": _hhmm(now - timedelta(hours=1)), "end": _hhmm(end)})
    await post(ann, org, f"late thought @[user:{bob.id}]")
    [job] = await jobs(smtp_services, EmailJob, bob.id)
    assert job.next_attempt_at == end + timedelta(seconds=limits.DEFAULT_MENTION_BATCH_SECONDS)
    assert len(await notes(bob, org)) == 1, "in-app is never held"
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 0
    later(smtp_services, end - now)
    assert await worker.run(smtp_services, burst=True) == 1
    assert [m["To"] for m in smtp.recorder.messages] == [bob.email]


async def test_quiet_hours_chosen_after_queueing_hold_the_email_at_send_time(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await post(ann, org, f"@[user:{bob.id}]")
    sending = smtp_services.clock() + WINDOW
    end = (sending + timedelta(hours=3)).replace(second=0, microsecond=0)
    await choose(bob, org, quiet_hours={"start": _hhmm(sending - timedelta(hours=1)), "end": _hhmm(end)})
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 0
    [job] = await jobs(smtp_services, EmailJob, bob.id)
    assert job.status == "pending" and job.next_attempt_at == end and job.last_error == "quiet hours"
    later(smtp_services, end - sending)
    assert await worker.run(smtp_services, burst=True) == 1


async def test_snooze_at_queue_time_writes_no_email_and_keeps_the_in_app_row(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await subscribe_browser(bob, org, 1)
    await choose(bob, org, snooze_until=(datetime.now(timezone.utc) + timedelta(hours=5)).isoformat())
    await post(ann, org, f"@[user:{bob.id}]")
    assert len(await notes(bob, org)) == 1
    assert await jobs(smtp_services, EmailJob, bob.id) == [] and await jobs(smtp_services, PushJob, bob.id) == []


async def test_snooze_chosen_after_queueing_skips_the_email_at_send_time(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await post(ann, org, f"@[user:{bob.id}]")
    await post(ann, org, f"@[user:{cid.id}]")
    await choose(bob, org, snooze_until=(datetime.now(timezone.utc) + timedelta(days=1)).isoformat())
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 1
    assert [m["To"] for m in smtp.recorder.messages] == [cid.email]
    [job] = await jobs(smtp_services, EmailJob, bob.id)
    assert job.status == "skipped" and job.last_error == "snoozed"


async def test_email_turned_off_after_queueing_is_not_sent(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await choose(bob, org, channels={"private_message": {"email": True}})
    await post(ann, org, "psst", recipient_id=bob.id)
    await choose(bob, org, channels={"private_message": {"email": False}})
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 0
    [job] = await jobs(smtp_services, EmailJob, bob.id)
    assert job.status == "skipped"
