"""Mention emails through the outbox and the notifier worker, against a real SMTP server
(F-NOTIF-1 … F-NOTIF-3)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import timedelta

import httpx
from sqlalchemy import select

from feeds_server import limits
from feeds_server.notify import worker
from feeds_server.store.models import EmailJob
from feeds_server.store.scope import account_session
from tests import factory
from tests.notify.helpers import later, post

WINDOW = timedelta(seconds=limits.DEFAULT_MENTION_BATCH_SECONDS + 1)


async def test_a_mention_sends_exactly_one_email_and_a_plain_post_none(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await post(ann, org, "no mention here")
    await post(ann, org, f"hello @[user:{bob.id}]")
    assert await worker.run(smtp_services, burst=True) == 0  # inside the batching window
    later(smtp_services, WINDOW)
    assert await worker.run(smtp_services, burst=True) == 1
    assert await worker.run(smtp_services, burst=True) == 0
    [mail] = smtp.recorder.messages
    assert mail["To"] == bob.email and ann.name in mail["Subject"] and org["name"] in mail["Subject"]


async def test_group_mentions_email_members_role_mentions_notify_in_app_only_and_self_never(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    gid = (await owner.post(f"{b}/groups", json={"name": "Duo", "sources": [{"type": "user", "id": bob.id}, {"type": "user", "id": ann.id}]})).json()["group"]["id"]
    role = (await owner.post(f"{b}/roles", json={"name": "Analyst"})).json()["role"]["id"]
    await owner.patch(f"{b}/members/{cid.id}", json={"role_id": role})
    await post(ann, org, f"@[group:{gid}] and @[role:{role}] and me @[user:{ann.id}]")
    later(smtp_services, WINDOW)
    await worker.run(smtp_services, burst=True)
    assert [m["To"] for m in smtp.recorder.messages] == [bob.email]
    cid_notes = (await cid.get(f"{b}/notifications")).json()
    assert cid_notes["unread"] == 1 and cid_notes["notifications"][0]["data"]["via"] == "role"
    assert (await ann.get(f"{b}/notifications")).json()["unread"] == 0


async def test_451_then_250_is_sent_once_after_a_retry(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    smtp.recorder.refuse_next = ["451 4.3.0 try again later"]
    await post(ann, org, f"@[user:{bob.id}]")
    later(smtp_services, WINDOW)
    await worker.run(smtp_services, burst=True)
    assert smtp.recorder.messages == []
    later(smtp_services, timedelta(hours=2))
    await worker.run(smtp_services, burst=True)
    assert len(smtp.recorder.to(bob.email)) == 1


async def test_550_for_one_address_does_not_block_the_others(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    smtp.recorder.refuse_rcpt[bob.email] = "550 5.1.1 no such user"
    await post(ann, org, f"@[user:{bob.id}] @[user:{cid.id}]")
    later(smtp_services, WINDOW)
    await worker.run(smtp_services, burst=True)
    later(smtp_services, timedelta(hours=2))
    await worker.run(smtp_services, burst=True)
    assert [m["To"] for m in smtp.recorder.messages] == [cid.email]
    async with account_session(smtp_services.sessions) as s:
        failed = (await s.execute(select(EmailJob).where(EmailJob.to_email == bob.email, EmailJob.kind == "mention"))).scalar_one()
    assert failed.status == "failed" and "550" in failed.last_error


async def test_smtp_down_for_a_while_then_up_delivers_each_once(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    smtp.stop()
    await post(ann, org, f"@[user:{bob.id}]")
    await post(ann, org, f"@[user:{cid.id}]")
    later(smtp_services, WINDOW)
    await worker.run(smtp_services, burst=True)  # connection refused: retried later
    smtp.start()
    later(smtp_services, timedelta(hours=2))
    await worker.run(smtp_services, burst=True)
    assert sorted(m["To"] for m in smtp.recorder.messages) == sorted([bob.email, cid.email])


async def test_mentions_within_the_window_go_out_as_one_email(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    for i in range(3):
        await post(ann, org, f"item {i} for @[user:{bob.id}]")
    later(smtp_services, WINDOW + timedelta(seconds=10))
    await worker.run(smtp_services, burst=True)
    [mail] = smtp.recorder.messages
    assert "3 times" in mail["Subject"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert all(f"item {i}" in text for i in range(3))


async def test_a_window_of_zero_sends_each_mention_at_once(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    r = await bob.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json={"batch_window_seconds": 0})
    assert r.json()["settings"]["batch_window_seconds"] == 0
    await post(ann, org, f"first @[user:{bob.id}]")
    await worker.run(smtp_services, burst=True)
    await post(ann, org, f"second @[user:{bob.id}]")
    await worker.run(smtp_services, burst=True)
    assert len(smtp.recorder.to(bob.email)) == 2


async def test_deleted_or_read_before_sending_is_not_emailed(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    gone = await post(ann, org, f"oops @[user:{bob.id}]")
    await ann.delete(f"{b}/posts/{gone['id']}")
    await post(ann, org, f"read it @[user:{cid.id}]")
    note = (await cid.get(f"{b}/notifications")).json()["notifications"][0]
    assert (await cid.post(f"{b}/notifications/{note['id']}/read")).json()["unread"] == 0
    later(smtp_services, WINDOW)
    await worker.run(smtp_services, burst=True)
    assert smtp.recorder.messages == []


async def test_email_content_is_escaped_and_unsubscribe_is_one_click(team, smtp, smtp_services, client):
    owner, ann, bob, cid, org = team
    await post(ann, org, f"<script>alert('x')</script> @[user:{bob.id}]")
    later(smtp_services, WINDOW)
    await worker.run(smtp_services, burst=True)
    [mail] = smtp.recorder.messages
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert org["name"] in mail.get_body(preferencelist=("plain",)).get_content()
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(mail["List-Unsubscribe"]).strip().strip("<>")
    path = httpx.URL(url).path
    r = await client.get(path)
    assert r.status_code == 200, (path, r.text)  # a confirmation page; changes nothing
    assert (await bob.get(f"/api/v1/orgs/{org['slug']}/notification-settings")).json()["settings"]["mention_emails"] is True
    assert (await client.post(path)).status_code == 200
    assert (await bob.get(f"/api/v1/orgs/{org['slug']}/notification-settings")).json()["settings"]["mention_emails"] is False
    assert (await client.post(path[:-3] + "xyz")).status_code == 404
    await post(ann, org, f"again @[user:{bob.id}]")
    later(smtp_services, WINDOW * 2)
    await worker.run(smtp_services, burst=True)
    assert len(smtp.recorder.messages) == 1


async def test_two_workers_at_once_never_send_the_same_email(team, smtp, smtp_services):
    owner, ann, bob, cid, org = team
    await bob.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json={"batch_window_seconds": 0})
    await cid.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json={"batch_window_seconds": 0})
    for i in range(20):
        await post(ann, org, f"{i} @[user:{bob.id}] @[user:{cid.id}]")
    # Batching folds a user's pending mentions into one email; two workers racing may split them
    # differently, but every mention goes out in exactly one email.
    await asyncio.gather(worker.run(smtp_services, burst=True), worker.run(smtp_services, burst=True))
    ids = [m["Message-ID"] for m in smtp.recorder.messages]
    assert len(ids) == len(set(ids))
    for person in (bob, cid):
        texts = [m.get_body(preferencelist=("plain",)).get_content() for m in smtp.recorder.to(person.email)]
        for i in range(20):
            assert sum(t.count(f"  {i} @") for t in texts) == 1, (person.email, i)
    async with account_session(smtp_services.sessions) as s:
        statuses = set((await s.execute(select(EmailJob.status).where(EmailJob.kind == "mention"))).scalars())
    assert statuses == {"sent"}


async def test_in_app_notifications_are_listed_and_marked_read(team, smtp_services):
    owner, ann, bob, cid, org = team
    b = f"/api/v1/orgs/{org['slug']}"
    for i in range(3):
        await post(ann, org, f"n{i} @[user:{bob.id}]")
    page = (await bob.get(f"{b}/notifications")).json()
    assert page["unread"] == 3 and [n["data"]["excerpt"][:2] for n in page["notifications"]] == ["n2", "n1", "n0"]
    await bob.post(f"{b}/notifications/{page['notifications'][0]['id']}/read")
    assert (await bob.get(f"{b}/notifications/unread-count")).json()["unread"] == 2
    assert len((await bob.get(f"{b}/notifications", params={"unread": "true"})).json()["notifications"]) == 2
    assert (await bob.post(f"{b}/notifications/read-all")).json()["unread"] == 0
    assert (await cid.post(f"{b}/notifications/{page['notifications'][0]['id']}/read")).status_code == 404


async def test_invitation_emails_go_through_the_worker(client, smtp, smtp_services):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    await owner.post(f"/api/v1/orgs/{org['slug']}/invitations", json={"email": "new.person@example.com"})
    assert smtp.recorder.messages == []
    await worker.run(smtp_services, burst=True)
    [mail] = smtp.recorder.messages
    assert mail["To"] == "new.person@example.com" and "/invitation/fsi_" in mail.get_body(preferencelist=("plain",)).get_content()


async def test_a_send_slower_than_the_lease_is_not_taken_over_by_another_worker(team, smtp, smtp_services):
    """F-NOTIF-3: a live worker renews its lease while its emails go out, so a second worker never
    sends them too, however slow the mail server; it only takes over from a worker that died
    (tests/notify/test_worker_crash.py)."""
    owner, ann, bob, cid, org = team
    for person in (bob, cid):
        await person.patch(f"/api/v1/orgs/{org['slug']}/notification-settings", json={"batch_window_seconds": 0})
    for i in range(3):
        await post(ann, org, f"{i} @[user:{bob.id}] @[user:{cid.id}]")
    smtp_services.settings = replace(smtp_services.settings, notifier_lease_seconds=1.0)
    smtp.recorder.hold = threading.Event()  # DATA waits: the first worker's sends outlast its lease
    first = asyncio.create_task(worker.run(smtp_services, burst=True))
    while smtp.recorder.in_data == 0:
        await asyncio.sleep(0.01)
    await asyncio.sleep(1.5)  # past the lease the first worker was given at its claim
    second = asyncio.create_task(worker.run(smtp_services, burst=True))
    await asyncio.sleep(0.3)
    smtp.recorder.hold.set()
    await asyncio.gather(first, second)
    ids = [m["Message-ID"] for m in smtp.recorder.messages]
    assert len(ids) == len(set(ids)) == 2
    async with account_session(smtp_services.sessions) as s:
        statuses = set((await s.execute(select(EmailJob.status).where(EmailJob.kind == "mention"))).scalars())
    assert statuses == {"sent"}
