"""What the notifier checks again when it sends: the person is still a member of the org, and has
not muted what a queued email or push tells of since it was queued; and whoever left an org hears
nothing more of it from any producer. On SQLite and PostgreSQL, against a real SMTP server and a
real push service."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select

from feeds_server import limits
from feeds_server.actions.notifications import Message, notify_private_messages
from feeds_server.notify import push_worker, worker
from feeds_server.store.models import EmailJob, Follow, Membership, Mute, Notification, NotificationSettings, PushJob
from feeds_server.store.scope import account_session, org_session
from tests import factory
from tests.notify.helpers import later, post
from tests.api.records_helpers import crm, ev, send, set_merge_seconds  # noqa: F401 - `crm` is a fixture
from tests.notify.push_service import PushService, push_service  # noqa: F401 - the fixture

WINDOW = timedelta(seconds=limits.DEFAULT_MENTION_BATCH_SECONDS + 1)
base = factory.org_path


@pytest.fixture
async def team(client, services, settings):  # type: ignore[no-untyped-def]
    """An org of three; built before the SMTP server is switched on, so invitations land in the mail folder."""
    owner, ann, bob, org = await factory.team(client, settings.mail_dir)
    return owner, ann, bob, org


async def jobs(services, model, user_id):  # type: ignore[no-untyped-def]
    async with account_session(services.sessions) as s:
        stmt = select(model).where(model.user_id == user_id, model.notification_id.is_not(None)).order_by(model.id)
        return list((await s.execute(stmt)).scalars())


async def rows(services, org, model, user_id) -> int:  # type: ignore[no-untyped-def]
    async with org_session(services.sessions, org["id"]) as s:
        return (await s.execute(select(func.count()).select_from(model).where(model.user_id == user_id))).scalar_one()


async def drop_membership(services, org, user_id: int) -> None:  # type: ignore[no-untyped-def]
    """The membership alone goes, as when a removal commits while a batch or a send is under way."""
    async with org_session(services.sessions, org["id"]) as s:
        await s.execute(delete(Membership).where(Membership.user_id == user_id))


async def crew(owner, org, *members):  # type: ignore[no-untyped-def]
    r = await owner.post(f"{base(org)}/groups", json={"name": "Crew", "sources": [{"type": "user", "id": m.id} for m in members]})
    assert r.status_code == 201, r.text
    return r.json()["group"]


# --- whoever left hears nothing more of the org ----------------------------------------------------
async def test_an_email_queued_before_its_person_was_removed_is_not_sent(team, smtp, smtp_services):
    owner, ann, bob, org = team
    await post(ann, org, f"the plan, with numbers @[user:{bob.id}]")
    await post(ann, org, f"and @[user:{owner.id}]")
    assert (await owner.delete(f"{base(org)}/members/{bob.id}")).status_code == 204
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 1
    assert [m["To"] for m in smtp.recorder.messages] == [owner.email]
    [job] = await jobs(smtp_services, EmailJob, bob.id)
    assert job.status == "skipped" and job.last_error == worker.NOT_A_MEMBER


async def test_removal_forgets_the_persons_follows_mutes_and_choices(team, services):
    owner, ann, bob, org = team
    group = await crew(owner, org, ann, bob)
    assert (await bob.put(f"{base(org)}/mutes/group/{group['id']}")).status_code == 200
    assert (await bob.patch(f"{base(org)}/notification-settings", json={"channels": {"group_post": {"email": True}}})).status_code == 200
    async with org_session(services.sessions, org["id"]) as s:
        now = datetime.now(timezone.utc)
        s.add(Follow(record_id=1, user_id=bob.id, module="Deals", source="manual", last_activity_at=now))
    assert (await bob.delete(f"{base(org)}/membership")).status_code == 204
    for model in (Follow, Mute, NotificationSettings):
        assert await rows(services, org, model, bob.id) == 0, model.__name__


async def test_the_author_of_a_post_hears_nothing_of_reactions_once_they_left(team, services):
    owner, ann, bob, org = team
    mine = await post(ann, org, "hello all")
    assert (await ann.delete(f"{base(org)}/membership")).status_code == 204
    r = await bob.put(f"{base(org)}/posts/{mine['id']}/reactions", json={"emoji": "👍", "on": True})
    assert r.status_code == 200, r.text
    assert await rows(services, org, Notification, ann.id) == 0
    assert await jobs(services, EmailJob, ann.id) == [] and await jobs(services, PushJob, ann.id) == []


async def test_a_private_message_to_someone_who_left_meanwhile_notifies_nobody(team, services):
    owner, ann, bob, org = team
    first = await post(ann, org, "first", recipient_id=bob.id)
    await drop_membership(services, org, bob.id)
    async with org_session(services.sessions, org["id"]) as s:
        await notify_private_messages(s, [Message(first["id"], ann.id, frozenset({ann.id, bob.id}), None, "second", datetime.now(timezone.utc))])
    assert await rows(services, org, Notification, bob.id) == 1, "only the message sent while a member"


async def test_a_follower_who_left_hears_nothing_of_the_record(crm, services):  # noqa: F811 - the fixture
    manager, rep = crm["manager"], crm["rep"]
    await set_merge_seconds(manager, crm, 0)
    r = await send(crm, ev("c1", name="Acme", owner_email=rep.email, fields={"Amount": 10}))
    rid = r.json()["results"][0]["record_id"]
    assert (await manager.put(f"{crm['b']}/records/{rid}/follow", json={})).status_code == 200
    await send(crm, ev("e1", "edited", fields={"Amount": 20}, changes=[{"field": "Amount", "old": 10, "new": 20}]))
    org = crm["org"]
    assert await rows(services, org, Notification, manager.id) == 1
    await drop_membership(services, org, manager.id)  # the follow stays behind
    await send(crm, ev("e2", "edited", fields={"Amount": 30}, changes=[{"field": "Amount", "old": 20, "new": 30}]))
    assert await rows(services, org, Notification, manager.id) == 1
    assert await rows(services, org, Notification, rep.id) >= 1, "the owner still hears of it"


# --- pushes ------------------------------------------------------------------------------------------
@pytest.fixture
def push_services(services):  # type: ignore[no-untyped-def]
    services.settings = replace(services.settings, push_allow_networks=("127.0.0.1/32",), vapid_subject="mailto:ops@example.com")
    return services


async def _subscribe(actor, org, service: PushService) -> dict:  # type: ignore[no-untyped-def]
    server_key = (await actor.client.get("/api/v1/push/public-key")).json()["public_key"]
    sub = service.new_subscription(server_key)
    r = await actor.post(f"{base(org)}/push-subscriptions", json=sub)
    assert r.status_code == 201, r.text
    return sub


async def test_a_push_queued_before_its_person_left_is_skipped(team, push_services, push_service):
    owner, ann, bob, org = team
    sub = await _subscribe(bob, org, push_service)
    await post(ann, org, f"look @[user:{bob.id}]")
    await drop_membership(push_services, org, bob.id)
    assert await push_worker.run(push_services, burst=True) == 0
    assert push_service.delivered(sub) == []
    [job] = await jobs(push_services, PushJob, bob.id)
    assert job.status == "skipped" and job.last_error == worker.NOT_A_MEMBER


async def test_a_push_of_a_group_muted_after_queueing_is_skipped_a_direct_mention_goes(team, push_services, push_service):
    owner, ann, bob, org = team
    group = await crew(owner, org, ann, bob)
    sub = await _subscribe(bob, org, push_service)
    await post(ann, org, f"all hands @[group:{group['id']}]")
    await post(ann, org, f"and you @[user:{bob.id}]", group_id=group["id"])
    assert (await bob.put(f"{base(org)}/mutes/group/{group['id']}")).status_code == 200
    assert await push_worker.run(push_services, burst=True) == 1
    [payload] = push_service.delivered(sub)
    assert "and you" in payload["body"]
    muted, direct = await jobs(push_services, PushJob, bob.id)
    assert muted.status == "skipped" and muted.last_error == worker.MUTED and direct.status == "sent"


# --- emails and mutes ----------------------------------------------------------------------------------
async def test_an_email_of_a_group_or_thread_muted_after_queueing_is_skipped_a_direct_mention_goes(team, smtp, smtp_services):
    owner, ann, bob, org = team
    group = await crew(owner, org, ann, bob)
    await post(ann, org, f"all hands @[group:{group['id']}]")
    thread = await post(ann, org, "a thread")
    r = await ann.post(f"{base(org)}/posts/{thread['id']}/comments", json={"body": f"over to you @[user:{bob.id}]"})
    assert r.status_code == 201, r.text
    assert (await bob.put(f"{base(org)}/mutes/group/{group['id']}")).status_code == 200
    assert (await bob.put(f"{base(org)}/mutes/post/{thread['id']}")).status_code == 200
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 1
    [mail] = smtp.recorder.messages
    text = mail.get_body(("plain",)).get_content()
    assert "over to you" in text and "all hands" not in text
    muted, direct = await jobs(smtp_services, EmailJob, bob.id)
    assert muted.status == "skipped" and muted.last_error == worker.MUTED and direct.status == "sent"


# --- quiet hours are waiting, not failing --------------------------------------------------------------
async def test_an_email_held_for_quiet_hours_keeps_its_attempts(team, smtp, smtp_services):
    owner, ann, bob, org = team
    await post(ann, org, f"@[user:{bob.id}]")
    sending = smtp_services.clock() + WINDOW
    end = (sending + timedelta(hours=3)).replace(second=0, microsecond=0)
    quiet = {"start": (sending - timedelta(hours=1)).strftime("%H:%M"), "end": end.strftime("%H:%M")}
    assert (await bob.patch(f"{base(org)}/notification-settings", json={"quiet_hours": quiet})).status_code == 200
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 0  # claimed, then given back: not a failed try
    [job] = await jobs(smtp_services, EmailJob, bob.id)
    assert job.status == "pending" and job.last_error == "quiet hours" and job.attempts == 0
