"""Web Push through the notifier's push loop against a real push service (tests/notify/push_service.py):
the VAPID signature checked and the RFC 8291 payload decrypted by the service, on both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from feeds_server import limits
from feeds_server.notify import dead_letters, outbox, push_worker
from feeds_server.realtime.presence import PresenceKeeper
from feeds_server.store.models import NotificationSettings, PushJob, PushSubscription
from feeds_server.store.scope import account_session, org_session
from tests import factory
from tests.notify.push_service import PushService, push_service  # noqa: F401 - the fixture

base = factory.org_path


@pytest.fixture
def push_services(services):  # type: ignore[no-untyped-def]
    """The test's services, allowed to reach the push service on the loopback."""
    services.settings = replace(services.settings, push_allow_networks=("127.0.0.1/32",), vapid_subject="mailto:ops@example.com")
    return services


@pytest.fixture
async def team(client, settings, push_services):  # type: ignore[no-untyped-def]
    owner, ann, bob, org = await factory.team(client, settings.mail_dir)
    return owner, ann, bob, org


async def _subscribe(actor, org, service: PushService) -> tuple[dict, int]:  # type: ignore[no-untyped-def]
    """Subscribe as a page does: with the server's public key, then the subscription handed to the API."""
    server_key = (await actor.client.get("/api/v1/push/public-key")).json()["public_key"]
    sub = service.new_subscription(server_key)
    r = await actor.post(f"{base(org)}/push-subscriptions", json=sub)
    assert r.status_code == 201, r.text
    return sub, r.json()["subscription"]["id"]


async def _mention(owner, org, who) -> dict:  # type: ignore[no-untyped-def]
    r = await owner.post(f"{base(org)}/posts", json={"body": f"look at this @[user:{who.id}]"})
    assert r.status_code == 201, r.text
    return r.json()["post"]


async def _settings(services, org, actor, **values) -> None:  # type: ignore[no-untyped-def]
    """The person's notification settings, written as the settings route keeps them."""
    async with org_session(services.sessions, org["id"]) as session:
        row = (await session.execute(select(NotificationSettings).where(NotificationSettings.user_id == actor.id))).scalar_one_or_none()
        if row is None:
            row = NotificationSettings(user_id=actor.id, mention_emails=True, batch_window_seconds=60)
            session.add(row)
        for name, value in values.items():
            setattr(row, name, value)


async def _jobs(services) -> list[PushJob]:  # type: ignore[no-untyped-def]
    async with account_session(services.sessions) as session:
        return list((await session.execute(select(PushJob).order_by(PushJob.id))).scalars())


async def test_a_mention_is_pushed_signed_and_encrypted_end_to_end(push_services, push_service, team):
    owner, ann, bob, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    post = await _mention(owner, org, ann)
    assert await push_worker.run(push_services, burst=True) == 1
    [payload] = push_service.delivered(sub)
    assert payload["kind"] == "mention" and payload["org"] == org["slug"]
    assert payload["notification_id"] and str(post["id"]) in payload["url"]
    assert owner.name in payload["title"] and "look at this" in payload["body"]
    [received] = [r for r in push_service.received if r.status == 201]
    assert received.headers["Urgency"] == "high"
    assert received.headers["TTL"] == str(limits.PUSH_TTL_SECONDS)
    assert len(received.headers["Topic"]) <= 32
    [job] = await _jobs(push_services)
    assert job.status == "sent" and job.sent_at is not None and job.payload == {}
    # Nothing more to send: the next run finds nothing due.
    assert await push_worker.run(push_services, burst=True) == 0
    assert len(push_service.delivered()) == 1


async def test_a_person_online_in_the_org_is_not_pushed(push_services, push_service, team):
    owner, ann, bob, org = team
    await _subscribe(ann, org, push_service)
    await _subscribe(bob, org, push_service)
    keeper = PresenceKeeper(push_services.sessions, "node-a", lambda: push_services.clock())

    class Conn:
        org_id, user_id = org["id"], ann.id

    conn = Conn()
    keeper.joined(conn)
    await keeper.flush()
    await _mention(owner, org, ann)
    await _mention(owner, org, bob)
    assert await push_worker.run(push_services, burst=True) == 1
    by_user = {j.user_id: j for j in await _jobs(push_services)}
    # Held until her presence would run out: a node that died would leave her row until then.
    assert by_user[ann.id].status == "pending" and by_user[ann.id].last_error == "online"
    assert by_user[bob.id].status == "sent"
    # Her node is alive and renews her row: when the push is due again, she is still online.
    later = push_services.clock() + timedelta(seconds=3 * limits.PRESENCE_HEARTBEAT_SECONDS + 1)
    push_services.clock = lambda: later
    await keeper.flush(renew=True)
    assert await push_worker.run(push_services, burst=True) == 0
    by_user = {j.user_id: j for j in await _jobs(push_services)}
    assert by_user[ann.id].status == "skipped" and by_user[ann.id].last_error == "online"
    # Ann leaves: the next flush removes her row, and her next mention is pushed.
    keeper.left(conn)
    await keeper.flush()
    await _mention(owner, org, ann)
    assert await push_worker.run(push_services, burst=True) == 1


async def test_a_push_held_for_a_node_that_then_died_goes_out_when_its_presence_runs_out(push_services, push_service, team):
    owner, ann, _, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    keeper = PresenceKeeper(push_services.sessions, "node-c", lambda: push_services.clock())

    class Conn:
        org_id, user_id = org["id"], ann.id

    keeper.joined(Conn())
    await keeper.flush()
    await _mention(owner, org, ann)
    assert await push_worker.run(push_services, burst=True) == 0  # online, as far as anyone can tell
    [job] = await _jobs(push_services)
    assert job.status == "pending" and job.last_error == "online"
    # The node crashed: nothing renews her row, which runs out.
    later = push_services.clock() + timedelta(seconds=3 * limits.PRESENCE_HEARTBEAT_SECONDS + 1)
    push_services.clock = lambda: later
    assert await push_worker.run(push_services, burst=True) == 1
    assert len(push_service.delivered(sub)) == 1


async def test_presence_of_a_node_that_stopped_renewing_runs_out(push_services, push_service, team):
    owner, ann, _, org = team
    await _subscribe(ann, org, push_service)
    keeper = PresenceKeeper(push_services.sessions, "node-b", push_services.clock)

    class Conn:
        org_id, user_id = org["id"], ann.id

    keeper.joined(Conn())
    await keeper.flush()
    await _mention(owner, org, ann)
    later = push_services.clock() + timedelta(seconds=3 * limits.PRESENCE_HEARTBEAT_SECONDS + 1)
    push_services.clock = lambda: later
    assert await push_worker.run(push_services, burst=True) == 1


async def test_a_read_notification_is_not_pushed(push_services, push_service, team):
    owner, ann, _, org = team
    await _subscribe(ann, org, push_service)
    await _mention(owner, org, ann)
    assert (await ann.post(f"{base(org)}/notifications/read-all")).status_code in (200, 204)
    assert await push_worker.run(push_services, burst=True) == 0
    [job] = await _jobs(push_services)
    assert job.status == "skipped" and job.last_error == "read"


async def test_an_expired_subscription_410_is_removed(push_services, push_service, team):
    owner, ann, _, org = team
    sub, sub_id = await _subscribe(ann, org, push_service)
    push_service.answer(sub, 410)
    await _mention(owner, org, ann)
    assert await push_worker.run(push_services, burst=True) == 0
    assert (await ann.get(f"{base(org)}/push-subscriptions")).json()["subscriptions"] == []
    async with account_session(push_services.sessions) as session:
        assert (await session.execute(select(PushSubscription).where(PushSubscription.id == sub_id))).first() is None
    assert await _jobs(push_services) == []  # went with the subscription
    # The next mention queues nothing for the removed browser.
    await _mention(owner, org, ann)
    assert await _jobs(push_services) == []


async def test_429_is_retried_with_backoff_then_sent(push_services, push_service, team):
    owner, ann, _, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    push_service.answer(sub, 429, times=1)
    await _mention(owner, org, ann)
    start = push_services.clock()
    assert await push_worker.run(push_services, burst=True) == 0
    [job] = await _jobs(push_services)
    assert job.status == "pending" and job.attempts == 1 and job.last_error.startswith("429")
    assert job.next_attempt_at >= start + timedelta(seconds=limits.PUSH_RETRY_BASE_SECONDS / 2)
    assert await push_worker.run(push_services, burst=True) == 0  # not due yet
    later = job.next_attempt_at + timedelta(seconds=1)
    push_services.clock = lambda: later
    assert await push_worker.run(push_services, burst=True) == 1
    assert len(push_service.delivered(sub)) == 1
    [job] = await _jobs(push_services)
    assert job.status == "sent" and job.attempts == 2


async def test_500_until_attempts_run_out_makes_a_dead_letter(push_services, push_service, team):
    owner, ann, _, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    push_service.answer(sub, 500)
    await _mention(owner, org, ann)
    async with account_session(push_services.sessions) as session:
        await session.execute(update(PushJob).values(attempts=limits.PUSH_MAX_ATTEMPTS - 1))
    assert await push_worker.run(push_services, burst=True) == 0
    [job] = await _jobs(push_services)
    assert job.status == "failed" and dead_letters.reason_of(job.last_error) == dead_letters.GAVE_UP


async def test_other_4xx_is_a_dead_letter_that_can_be_put_back(push_services, push_service, team):
    owner, ann, _, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    push_service.answer(sub, 403, times=1)
    await _mention(owner, org, ann)
    assert await push_worker.run(push_services, burst=True) == 0
    [job] = await _jobs(push_services)
    assert job.status == "failed" and dead_letters.reason_of(job.last_error) == dead_letters.REFUSED
    letters = await dead_letters.listing(push_services.sessions)
    assert [d.ref for d in letters] == [f"push:{job.id}"] and letters[0].org == org["slug"]
    assert await dead_letters.retry(push_services.sessions, [f"push:{job.id}"], push_services.clock()) == 1
    assert await push_worker.run(push_services, burst=True) == 1
    assert len(push_service.delivered(sub)) == 1


async def test_a_stored_endpoint_is_checked_again_when_sending(push_services, push_service, team):
    owner, ann, _, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    await _mention(owner, org, ann)
    push_services.settings = replace(push_services.settings, push_allow_networks=())  # the operator closed the loopback
    assert await push_worker.run(push_services, burst=True) == 0
    assert push_service.received == []
    [job] = await _jobs(push_services)
    assert job.status == "failed" and dead_letters.reason_of(job.last_error) == dead_letters.REFUSED


async def test_snoozed_person_is_not_pushed_at_send_time(push_services, push_service, team):
    owner, ann, _, org = team
    await _subscribe(ann, org, push_service)
    await _mention(owner, org, ann)
    await _settings(push_services, org, ann, snooze_until=push_services.clock() + timedelta(hours=2))
    assert await push_worker.run(push_services, burst=True) == 0
    [job] = await _jobs(push_services)
    assert job.status == "skipped" and job.last_error == "snoozed"


async def test_push_turned_off_for_mentions_queues_nothing(push_services, push_service, team):
    owner, ann, _, org = team
    await _subscribe(ann, org, push_service)
    await _settings(push_services, org, ann, channels={"mention": {"push": False}})
    await _mention(owner, org, ann)
    assert await _jobs(push_services) == []


async def test_quiet_hours_that_began_after_queueing_hold_the_push_until_they_end(push_services, push_service, team):
    owner, ann, _, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    await _mention(owner, org, ann)
    now = push_services.clock()
    minute = now.hour * 60 + now.minute
    await _settings(push_services, org, ann, quiet_start_minute=(minute - 10) % 1440, quiet_end_minute=(minute + 30) % 1440, time_zone="UTC")
    assert await push_worker.run(push_services, burst=True) == 0
    [job] = await _jobs(push_services)
    assert job.status == "pending" and job.attempts == 0 and job.next_attempt_at > now + timedelta(minutes=25)
    later = job.next_attempt_at + timedelta(seconds=1)
    push_services.clock = lambda: later
    assert await push_worker.run(push_services, burst=True) == 1
    assert len(push_service.delivered(sub)) == 1


async def test_a_push_of_an_unexpected_shape_is_set_aside_and_the_others_go_out(push_services, push_service, team):
    owner, ann, bob, org = team
    sub_ann, _ = await _subscribe(ann, org, push_service)
    sub_bob, _ = await _subscribe(bob, org, push_service)
    await _mention(owner, org, ann)
    await _mention(owner, org, bob)
    async with account_session(push_services.sessions) as session:
        await session.execute(update(PushJob).where(PushJob.user_id == ann.id).values(payload={"kind": "mention", "tag": ["not", "text"]}))
    assert await push_worker.run(push_services, burst=True) == 1
    assert push_service.delivered(sub_ann) == [] and len(push_service.delivered(sub_bob)) == 1
    by_user = {j.user_id: j for j in await _jobs(push_services)}
    assert by_user[ann.id].status == "failed" and by_user[ann.id].last_error.startswith("error: send")


async def test_a_payload_that_is_not_an_object_is_a_dead_letter(push_services, push_service, team):
    owner, ann, bob, org = team
    await _subscribe(ann, org, push_service)
    sub_bob, _ = await _subscribe(bob, org, push_service)
    await _mention(owner, org, ann)
    await _mention(owner, org, bob)
    async with account_session(push_services.sessions) as session:
        await session.execute(update(PushJob).where(PushJob.user_id == ann.id).values(payload=["a", "list"]))
    assert await push_worker.run(push_services, burst=True) == 1
    assert len(push_service.delivered(sub_bob)) == 1
    by_user = {j.user_id: j for j in await _jobs(push_services)}
    assert by_user[ann.id].status == "failed" and by_user[ann.id].last_error.startswith("error: read")


async def test_a_browser_that_changed_hands_after_its_push_was_loaded_gets_nothing(push_services, push_service, team):
    """Someone else signs in on the browser and subscribes it while the worker holds the previous
    person's push: the owner is read again just before sending, and nothing goes out."""
    import time

    from feeds_server.notify import push_outbox
    from feeds_server.notify.push import PushSender

    owner, ann, bob, org = team
    sub, _ = await _subscribe(ann, org, push_service)
    await _mention(owner, org, ann)
    ids = await push_outbox.claim(push_services.sessions, push_services.clock(), 60, 10)
    [work] = await push_outbox.load(push_services.sessions, ids, push_services.clock())
    assert (await bob.post(f"{base(org)}/push-subscriptions", json=sub)).status_code == 201  # same endpoint, now Bob's
    sender = PushSender(push_services.settings)
    try:
        lease = outbox.Lease(push_services.sessions, push_services.clock, ids, 60, time.monotonic(), table=PushJob)
        assert await push_worker._send(push_services, sender, push_outbox.SentLog(push_services.sessions), lease, work) == 0
    finally:
        await sender.close()
    assert push_service.received == []
    assert await _jobs(push_services) == []  # the previous person's push, even one being sent, is dropped


async def test_a_push_service_that_never_answers_holds_only_its_own_pushes(push_services, push_service, team):
    """Pushes to a stalled push service take their origin's slots for at most PUSH_TIMEOUT_SECONDS;
    one to another service goes out meanwhile, not after them."""
    import asyncio
    import time

    from tests.notify.push_service import PushService

    owner, ann, bob, org = team
    stalled = PushService()
    stalled.start()
    try:
        server_key = (await ann.client.get("/api/v1/push/public-key")).json()["public_key"]
        slow = stalled.new_subscription(server_key)
        stalled.answer(slow, 201, delay=60.0)
        assert (await ann.post(f"{base(org)}/push-subscriptions", json=slow)).status_code == 201
        fast, _ = await _subscribe(bob, org, push_service)
        await _mention(owner, org, ann)
        stop = asyncio.Event()
        worker = asyncio.create_task(push_worker.run(push_services, stop=stop))
        await asyncio.sleep(0.5)  # Ann's push is in flight to the stalled service
        started = time.monotonic()
        await _mention(owner, org, bob)
        while not push_service.delivered(fast):
            assert time.monotonic() - started < 3.0, "the new push waited for the stalled one"
            await asyncio.sleep(0.05)
        while (await _jobs(push_services))[0].status == "sending":
            assert time.monotonic() - started < limits.PUSH_TIMEOUT_SECONDS + 3, "the stalled push was not given up in time"
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(worker, 10)
        by_user = {j.user_id: j for j in await _jobs(push_services)}
        assert by_user[ann.id].status == "pending" and "no answer" in by_user[ann.id].last_error
    finally:
        stalled.stop()


async def test_a_heartbeat_rewrites_presence_rows_only_when_some_were_lost(push_services, team):
    """Renewing compares the rows renewed with the people already written, not with those the same
    flush is about to add: a heartbeat with a newcomer must not rewrite every row of the node."""
    from sqlalchemy import delete

    from feeds_server.store.models import Presence

    owner, ann, bob, org = team

    class Counting(PresenceKeeper):
        rewrites = 0

        def live(self):  # type: ignore[no-untyped-def]
            self.rewrites += 1
            return super().live()

    keeper = Counting(push_services.sessions, "node-h", push_services.clock)

    def conn(user_id: int):  # type: ignore[no-untyped-def]
        return type("Conn", (), {"org_id": org["id"], "user_id": user_id})()

    keeper.joined(conn(owner.id))
    keeper.joined(conn(ann.id))
    await keeper.flush()
    keeper.joined(conn(bob.id))
    await keeper.flush(renew=True)
    assert keeper.rewrites == 0
    async with account_session(push_services.sessions) as session:
        assert len((await session.execute(select(Presence).where(Presence.node == "node-h"))).all()) == 3
        await session.execute(delete(Presence).where(Presence.node == "node-h", Presence.user_id == ann.id))
    await keeper.flush(renew=True)  # a row lost: all are written again
    assert keeper.rewrites == 1
    async with account_session(push_services.sessions) as session:
        assert len((await session.execute(select(Presence).where(Presence.node == "node-h"))).all()) == 3


async def test_a_push_config_push_services_refuse_turns_off_pushes_only(push_services, push_service, team, caplog):
    """A subject at localhost (the laptop defaults) would be refused by Apple: the push loop logs why
    and stops by itself, without raising into the notifier that runs emails and webhooks beside it."""
    owner, ann, _, org = team
    await _subscribe(ann, org, push_service)
    await _mention(owner, org, ann)
    push_services.settings = replace(push_services.settings, vapid_subject="", mail_from="Feeds <feeds@localhost>", public_url="http://localhost:8000")
    with caplog.at_level("ERROR", logger="feeds_server.notifier"):
        assert await push_worker.run(push_services, burst=True) == 0
    assert "web push is off" in caplog.text and "FEEDS_VAPID_SUBJECT" in caplog.text
    assert push_service.received == []
    [job] = await _jobs(push_services)
    assert job.status == "pending"  # sent once the subject is set


def test_a_lease_too_short_for_a_push_is_raised_with_a_warning(caplog):
    with caplog.at_level("WARNING", logger="feeds_server.notifier"):
        assert push_worker.lease_seconds(1.0) == push_worker.MIN_LEASE_SECONDS == 3 * limits.PUSH_TIMEOUT_SECONDS
    assert "FEEDS_NOTIFIER_LEASE_SECONDS" in caplog.text
    assert push_worker.lease_seconds(60.0) == 60.0


async def test_at_most_the_per_origin_limit_goes_to_one_push_service_at_once(push_services, push_service, team, monkeypatch):
    """The pushes of one origin beyond its limit wait in the worker for a slot; one that waited
    PUSH_ORIGIN_WAIT_SECONDS is given back for a moment (its attempt not counted) rather than hold
    slots every other push service's pushes need."""
    import asyncio
    import threading
    import time

    owner, ann, bob, org = team
    monkeypatch.setattr(limits, "PUSH_PER_ORIGIN_CONCURRENCY", 1)
    monkeypatch.setattr(limits, "PUSH_ORIGIN_WAIT_SECONDS", 0.5)
    sub_ann, _ = await _subscribe(ann, org, push_service)
    sub_bob, _ = await _subscribe(bob, org, push_service)
    await _mention(owner, org, ann)
    await _mention(owner, org, bob)
    push_service.hold = threading.Event()  # the push service answers nothing until set
    stop = asyncio.Event()
    worker = asyncio.create_task(push_worker.run(push_services, stop=stop))
    try:
        started = time.monotonic()
        while not push_service.waiting:
            assert time.monotonic() - started < 5, "no push reached the push service"
            await asyncio.sleep(0.05)
        while not [j for j in await _jobs(push_services) if j.status == "pending"]:
            assert time.monotonic() - started < 5, "the push waiting for its origin was not given back"
            await asyncio.sleep(0.05)
        assert push_service.waiting == 1  # the other never reached the push service
        jobs = await _jobs(push_services)
        assert sorted(j.status for j in jobs) == ["pending", "sending"]
        [waiting] = [j for j in jobs if j.status == "pending"]
        assert waiting.attempts == 0 and waiting.next_attempt_at > push_services.clock()
    finally:
        push_service.hold.set()
        stop.set()
        await asyncio.wait_for(worker, 10)
    assert len(push_service.delivered(sub_ann)) + len(push_service.delivered(sub_bob)) == 1
    await asyncio.sleep(limits.PUSH_ORIGIN_BUSY_SECONDS)  # the waiting one is due again
    assert await push_worker.run(push_services, burst=True) == 1
    assert len(push_service.delivered(sub_ann)) == len(push_service.delivered(sub_bob)) == 1


async def test_pushes_waiting_for_their_origin_go_out_without_being_queued_again(push_services, push_service, team, monkeypatch):
    """Beyond the per-origin limit, claimed pushes wait in the worker and go out as slots free:
    not one statement that gives a push back to the outbox, and no pause between them."""
    from sqlalchemy import event

    owner, ann, bob, org = team
    monkeypatch.setattr(limits, "PUSH_PER_ORIGIN_CONCURRENCY", 1)
    subs = [(await _subscribe(actor, org, push_service))[0] for actor in (owner, ann, bob)]
    for actor in (owner, ann, bob):
        await _mention(ann if actor is owner else owner, org, actor)
    given_back: list[str] = []

    def seen(conn, cursor, statement, *_):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE PUSH_JOBS") and "next_attempt_at" in statement:
            given_back.append(statement)

    event.listen(push_services.engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert await push_worker.run(push_services, burst=True) == 3
    finally:
        event.remove(push_services.engine.sync_engine, "before_cursor_execute", seen)
    assert given_back == []
    assert [len(push_service.delivered(sub)) for sub in subs] == [1, 1, 1]
    assert {(j.status, j.attempts) for j in await _jobs(push_services)} == {("sent", 1)}
