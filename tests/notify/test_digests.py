"""Digest emails: queued once per period at the person's local hour, written at send time from what
happened on their records and in their groups, sent through the outbox to a real SMTP server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update

from feeds_server import limits
from feeds_server.notify import digests, worker
from feeds_server.store.models import EmailJob, Mute, NotificationSettings
from feeds_server.store.scope import account_session, org_session
from tests.api.records_helpers import crm, ev, items, send  # noqa: F401 - `crm` is a fixture

TOKYO = "Asia/Tokyo"  # UTC+9 all year: the expected hours are plain arithmetic


async def choose(services: Any, org_id: int, user_id: int, **values: Any) -> None:
    """A person's notification settings, as the settings route stores them."""
    async with org_session(services.sessions, org_id) as s:
        row = (await s.execute(select(NotificationSettings).where(NotificationSettings.user_id == user_id))).scalar_one_or_none()
        if row is None:
            row = NotificationSettings(user_id=user_id, mention_emails=True, batch_window_seconds=60)
            s.add(row)
        for name, value in values.items():
            setattr(row, name, value)


async def mute(services: Any, org_id: int, user_id: int, kind: str, target: int) -> None:
    async with org_session(services.sessions, org_id) as s:
        s.add(Mute(user_id=user_id, target_kind=kind, target_id=target))


async def digest_jobs(services: Any) -> list[EmailJob]:
    async with account_session(services.sessions) as s:
        return list((await s.execute(select(EmailJob).where(EmailJob.kind == "digest").order_by(EmailJob.id))).scalars())


def at(services: Any, moment: datetime) -> None:
    services.clock = lambda: moment


def text_of(mail: Any) -> str:
    return mail.get_body(("plain",)).get_content()


def html_of(mail: Any) -> str:
    return mail.get_body(("html",)).get_content()


async def in_tokyo(crm: dict[str, Any]) -> None:
    r = await crm["admin"].patch(crm["b"], json={"time_zone": TOKYO})
    assert r.status_code == 200, r.text


def next_tokyo_hour(t0: datetime, hours_ahead: int = 2) -> tuple[int, datetime]:
    """An hour of the day in Tokyo a little after `t0`, and that moment in UTC."""
    boundary = t0.replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours_ahead)
    return boundary.astimezone(ZoneInfo(TOKYO)).hour, boundary


async def daily_from_now(services: Any, crm: dict[str, Any]) -> tuple[datetime, datetime]:
    """The org in Tokyo and the rep's daily digest turned on now, due at the next Tokyo hour but one:
    the clock's start and that boundary."""
    await in_tokyo(crm)
    t0 = services.clock()
    at(services, t0)
    hour, boundary = next_tokyo_hour(t0)
    await choose(services, crm["org"]["id"], crm["rep"].id, digest="daily", digest_hour=hour)
    await digests.schedule(services)
    return t0, boundary


async def record_activity(crm: dict[str, Any]) -> dict[str, int]:
    """Acme (owned by the rep, followed by the manager): created, then edited by the admin and
    commented on by the manager; Beta (owned by the rep): created."""
    rep, manager = crm["rep"], crm["manager"]
    acme = (await send(crm, ev("a1", crm_id="D-1", name="Acme <200 seats>", owner_email=rep.email))).json()["results"][0]["record_id"]
    assert (await manager.put(f"{crm['b']}/records/{acme}/follow")).status_code == 200
    await send(crm, ev("a2", "edited", crm_id="D-1", fields={"Stage": "Won"}, changes=[{"field": "Stage", "old": None, "new": "Won"}],
                       actor_email=crm["admin"].email))
    item = (await items(manager, crm))[0]
    assert (await manager.post(f"{crm['b']}/posts/{item['id']}/comments", json={"body": "great"})).status_code == 201
    beta = (await send(crm, ev("b1", crm_id="D-2", name="Beta", owner_email=rep.email))).json()["results"][0]["record_id"]
    return {"acme": acme, "beta": beta}


async def test_daily_digest_at_the_local_hour_grouped_by_record_with_counts_sent_once(crm, smtp, smtp_services):
    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    await in_tokyo(crm)
    t0 = services.clock()
    at(services, t0)
    hour, boundary = next_tokyo_hour(t0)
    await choose(services, org_id, rep.id, digest="daily", digest_hour=hour)
    assert await digests.schedule(services) == 0  # just turned on: the first period starts now

    at(services, t0 + timedelta(minutes=1))
    await record_activity(crm)

    at(services, boundary - timedelta(seconds=1))
    assert await digests.schedule(services) == 0
    at(services, boundary)
    assert await digests.schedule(services) == 1
    assert await digests.schedule(services) == 0  # never twice for a period
    [job] = await digest_jobs(services)
    assert job.dedupe_key == f"digest:{org_id}:{rep.id}:{boundary.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    assert job.payload["frequency"] == "daily"
    assert datetime.fromisoformat(job.payload["period_start"]) == t0
    assert datetime.fromisoformat(job.payload["period_end"]) == boundary

    assert await worker.run(services, burst=True) == 1
    assert await worker.run(services, burst=True) == 0
    [mail] = smtp.recorder.messages
    assert mail["To"] == rep.email and "daily digest" in mail["Subject"] and crm["org"]["name"] in mail["Subject"]
    assert mail["Message-ID"] == f"<digest.{org_id}.{rep.id}.{boundary.strftime('%Y%m%dT%H%M%SZ')}@feeds.local>"
    text = text_of(mail)
    assert "Acme <200 seats> (Deals): 2 changes, 1 comment" in text
    assert "Beta (Deals): 1 change" in text
    assert text.index("Acme") < text.index("Beta")  # busiest first
    assert "Acme &lt;200 seats&gt;" in html_of(mail) and "<200 seats>" not in html_of(mail)


async def test_weekly_digest_on_the_chosen_weekday_in_the_persons_own_zone_with_groups(crm, smtp, smtp_services):
    services, rep, manager, org_id = smtp_services, crm["rep"], crm["manager"], crm["org"]["id"]
    paris = ZoneInfo("Europe/Paris")
    t0 = services.clock()
    at(services, t0)
    day = t0.astimezone(paris).date() + timedelta(days=2)
    due = datetime(day.year, day.month, day.day, 8, tzinfo=paris).astimezone(timezone.utc)
    await choose(services, org_id, rep.id, digest="weekly", digest_hour=8, digest_weekday=day.weekday(), time_zone="Europe/Paris")
    assert await digests.schedule(services) == 0

    at(services, t0 + timedelta(minutes=1))
    group = (await crm["admin"].post(f"{crm['b']}/groups", json={
        "name": "Deal desk", "sources": [{"type": "user", "id": rep.id}, {"type": "user", "id": manager.id}],
    })).json()["group"]["id"]
    r = await manager.post(f"{crm['b']}/posts", json={"body": "pricing call at 3", "group_id": group})
    assert r.status_code == 201, r.text
    post_id = r.json()["post"]["id"]
    assert (await manager.post(f"{crm['b']}/posts/{post_id}/comments", json={"body": "moved to 4"})).status_code == 201
    assert (await rep.post(f"{crm['b']}/posts/{post_id}/comments", json={"body": "ok"})).status_code == 201  # one's own: not counted

    at(services, due - timedelta(days=1))  # a day boundary that is not the weekday
    assert await digests.schedule(services) == 0
    at(services, due - timedelta(seconds=1))
    assert await digests.schedule(services) == 0
    at(services, due)
    assert await digests.schedule(services) == 1
    assert await worker.run(services, burst=True) == 1
    [mail] = smtp.recorder.messages
    assert "weekly digest" in mail["Subject"]
    assert "Deal desk: 1 post, 1 comment" in text_of(mail)


async def test_nothing_happened_nothing_is_sent(crm, smtp, smtp_services):
    services = smtp_services
    t0, boundary = await daily_from_now(services, crm)
    at(services, boundary)
    assert await digests.schedule(services) == 1
    assert await worker.run(services, burst=True) == 0
    assert smtp.recorder.messages == []
    [job] = await digest_jobs(services)
    assert job.status == "skipped"


async def test_a_muted_record_is_left_out_and_ones_own_changes_do_not_count(crm, smtp, smtp_services):
    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    t0, boundary = await daily_from_now(services, crm)
    at(services, t0 + timedelta(minutes=1))
    records = await record_activity(crm)
    await send(crm, ev("c1", crm_id="D-3", name="Gamma", owner_email=rep.email, actor_email=rep.email))
    await mute(services, org_id, rep.id, "record", records["beta"])
    at(services, boundary)
    await digests.schedule(services)
    assert await worker.run(services, burst=True) == 1
    text = text_of(smtp.recorder.messages[0])
    assert "Acme" in text and "Beta" not in text and "Gamma" not in text


async def test_two_schedulers_at_once_and_a_stale_replay_queue_one_digest(crm, smtp, smtp_services):
    """Never twice for a period: two schedulers racing, and one that read the row before the other's
    commit (a worker killed after queueing, restarted from old state), leave one job and one email."""
    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    t0, boundary = await daily_from_now(services, crm)
    at(services, t0 + timedelta(minutes=1))
    await record_activity(crm)

    at(services, boundary)
    assert sum(await asyncio.gather(digests.schedule(services), digests.schedule(services))) == 1
    async with org_session(services.sessions, org_id) as s:  # the row as it was before the queueing
        await s.execute(update(NotificationSettings).where(NotificationSettings.user_id == rep.id).values(digest_sent_until=t0, digest_due_at=boundary))
    assert await digests.schedule(services) == 0
    assert len(await digest_jobs(services)) == 1
    assert await worker.run(services, burst=True) == 1
    assert await worker.run(services, burst=True) == 0
    assert len(smtp.recorder.messages) == 1

    # The next period is queued at the next boundary, once.
    at(services, boundary + timedelta(days=1))
    assert await digests.schedule(services) == 1
    async with account_session(services.sessions) as s:
        keys = (await s.execute(select(func.count(func.distinct(EmailJob.dedupe_key))).where(EmailJob.kind == "digest"))).scalar_one()
    assert keys == 2


async def test_a_digest_turned_off_or_snoozed_after_queueing_is_skipped(crm, smtp, smtp_services):
    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    t0, boundary = await daily_from_now(services, crm)
    at(services, t0 + timedelta(minutes=1))
    await record_activity(crm)
    at(services, boundary)
    assert await digests.schedule(services) == 1
    await choose(services, org_id, rep.id, snooze_until=boundary + timedelta(hours=1))
    assert await worker.run(services, burst=True) == 0
    assert [j.status for j in await digest_jobs(services)] == ["skipped"]
    assert smtp.recorder.messages == []


async def test_the_notifier_burst_queues_and_sends_due_digests(crm, smtp, smtp_services):
    """`feeds-server notifier --burst` runs the scheduler before draining the outbox."""
    from feeds_server.cli.main import _notifier

    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    await in_tokyo(crm)
    hour, boundary = next_tokyo_hour(services.clock(), hours_ahead=0)  # this hour began in Tokyo: the digest is due
    await choose(services, org_id, rep.id, digest="daily", digest_hour=hour, digest_sent_until=boundary - timedelta(hours=1), digest_due_at=boundary)
    at(services, boundary - timedelta(seconds=30))
    await send(crm, ev("n1", crm_id="N-1", name="Nu", owner_email=rep.email))
    assert await _notifier(services.settings, burst=True) == 0
    assert [m["To"] for m in smtp.recorder.messages] == [rep.email]
    assert "Nu (Deals): 1 change" in text_of(smtp.recorder.messages[0])


async def test_turned_on_and_moved_through_the_settings_route(crm, smtp, smtp_services):
    """The first digest covers the time since it was turned on; a new hour takes effect at once."""
    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    await in_tokyo(crm)
    t0 = services.clock()
    at(services, t0)
    hour, boundary = next_tokyo_hour(t0)
    r = await rep.patch(f"{crm['b']}/notification-settings", json={"digest": {"frequency": "daily", "hour": hour}})
    assert r.status_code == 200, r.text
    at(services, t0 + timedelta(minutes=1))
    assert await digests.schedule(services) == 0
    at(services, boundary)
    assert await digests.schedule(services) == 1
    [job] = await digest_jobs(services)
    assert datetime.fromisoformat(job.payload["period_start"]) == t0

    at(services, boundary + timedelta(hours=1))
    later_hour = (hour + 3) % 24
    r = await rep.patch(f"{crm['b']}/notification-settings", json={"digest": {"frequency": "daily", "hour": later_hour}})
    assert r.status_code == 200, r.text
    at(services, boundary + timedelta(hours=3) - timedelta(seconds=1))
    assert await digests.schedule(services) == 0
    at(services, boundary + timedelta(hours=3))
    assert await digests.schedule(services) == 1
    second = (await digest_jobs(services))[1]
    assert datetime.fromisoformat(second.payload["period_start"]) == boundary
    assert datetime.fromisoformat(second.payload["period_end"]) == boundary + timedelta(hours=3)


def test_group_membership_read_for_a_claim_agrees_with_the_org_graph():
    """The digest's indexed reading of group sources decides as `OrgGraph.in_group` does (nested
    groups, loops, roles and role subtrees included)."""
    import random

    from feeds_server.domain.audience import OrgGraph
    from feeds_server.notify.digest_email import _groups_of, _source_index

    rng = random.Random(7)
    roles = {1: None, 2: 1, 3: 2, 4: 1, 5: None}
    kinds = ("user", "role", "role_and_subordinates", "group")
    for _ in range(200):
        sources = {
            g: tuple((k, rng.choice(range(1, 7) if k in ("user", "group") else list(roles))) for k in rng.choices(kinds, k=rng.randint(0, 4)))
            for g in range(1, 7)
        }
        graph = OrgGraph(roles, sources)
        index = _source_index(graph)
        for user in range(1, 7):
            for role in (None, *roles):
                assert _groups_of(graph, index, user, role) == set(graph.groups_of(user, role))


async def test_notifier_killed_after_queueing_sends_the_digest_once_after_restart(crm, services, settings, smtp):
    """The notifier process queues a due digest and is killed (SIGKILL) while the mail server holds
    it; started again, it queues nothing new and sends that digest once."""
    import signal
    import threading
    import time

    from tests.notify.test_worker_crash import _notifier

    rep, org_id = crm["rep"], crm["org"]["id"]
    boundary = services.clock().replace(minute=0, second=0, microsecond=0)  # org zone UTC: this hour's boundary is due
    await choose(services, org_id, rep.id, digest="daily", digest_hour=boundary.hour, digest_sent_until=boundary - timedelta(hours=1),
                 digest_due_at=boundary)
    at(services, boundary - timedelta(seconds=30))
    await send(crm, ev("k1", crm_id="K-1", name="Kappa", owner_email=rep.email))

    smtp.recorder.hold = threading.Event()
    first = _notifier(settings, smtp)
    deadline = time.monotonic() + 30
    while smtp.recorder.in_data == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert smtp.recorder.in_data >= 1, "the notifier queued the digest and reached DATA"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    smtp.recorder.hold.set()
    await asyncio.sleep(1.2)  # the dead worker's lease runs out

    again = _notifier(settings, smtp, "--burst")
    assert again.wait(60) == 0
    assert [m["To"] for m in smtp.recorder.messages] == [rep.email]
    assert len(await digest_jobs(services)) == 1


async def test_the_digest_reads_only_comments_on_posts_its_readers_can_reach(crm, smtp, smtp_services):
    """The comments of the period are read through the readers' own channels and groups: a busy
    group the person is not in, or a record item not addressed to them, is not read at all."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from feeds_server.store.models import Comment

    services, rep, manager, admin = smtp_services, crm["rep"], crm["manager"], crm["admin"]
    t0, boundary = await daily_from_now(services, crm)
    at(services, t0 + timedelta(minutes=1))
    await record_activity(crm)  # the manager comments on Acme's item, which reaches the rep
    other = (await admin.post(f"{crm['b']}/groups", json={
        "name": "Board", "sources": [{"type": "user", "id": admin.id}, {"type": "user", "id": manager.id}],
    })).json()["group"]["id"]
    board_post = (await manager.post(f"{crm['b']}/posts", json={"body": "budget", "group_id": other})).json()["post"]["id"]
    zeta = (await send(crm, ev("z1", crm_id="Z-1", name="Zeta", owner_email=admin.email))).json()["results"][0]["record_id"]
    zeta_item = next(i for i in await items(admin, crm) if i.get("data", {}).get("record", {}).get("id") == zeta)["id"]
    for n in range(3):
        assert (await admin.post(f"{crm['b']}/posts/{board_post}/comments", json={"body": f"ok {n}"})).status_code == 201
        assert (await admin.post(f"{crm['b']}/posts/{zeta_item}/comments", json={"body": f"zeta {n}"})).status_code == 201
    reachable = {i["id"] for i in await items(rep, crm)}
    assert board_post not in reachable and zeta_item not in reachable

    read: list[int] = []

    def spy(state):  # type: ignore[no-untyped-def]
        selected = getattr(state.statement, "selected_columns", ())
        if not any(getattr(c, "table", None) is Comment.__table__ for c in selected):
            return None
        frozen = state.invoke_statement().freeze()
        read.extend(row._mapping["post_id"] for row in frozen())
        return frozen()

    at(services, boundary)
    assert await digests.schedule(services) == 1
    event.listen(Session, "do_orm_execute", spy)
    try:
        assert await worker.run(services, burst=True) == 1
    finally:
        event.remove(Session, "do_orm_execute", spy)
    assert read, "the comments of the period were read"
    assert set(read) <= reachable
    text = text_of(smtp.recorder.messages[0])
    assert "Acme <200 seats> (Deals): 2 changes, 1 comment" in text and "Board" not in text and "Zeta" not in text


async def test_the_digest_has_a_one_click_unsubscribe_that_turns_only_the_digest_off(crm, smtp, smtp_services):
    """RFC 8058 headers; the link turns the digest off and leaves notification emails as they were."""
    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    boundary = services.clock().replace(minute=0, second=0, microsecond=0)
    await choose(services, org_id, rep.id, digest="daily", digest_hour=boundary.hour, digest_sent_until=boundary - timedelta(hours=1),
                 digest_due_at=boundary)
    at(services, boundary - timedelta(seconds=30))
    await send(crm, ev("u1", crm_id="U-1", name="Upsilon", owner_email=rep.email))
    at(services, boundary)
    assert await digests.schedule(services) == 1
    assert await worker.run(services, burst=True) == 1
    [mail] = smtp.recorder.messages
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = "".join(mail["List-Unsubscribe"].split()).strip("<>")
    prefix = f"{services.settings.public_url}/api/v1/unsubscribe/digest/"
    assert link.startswith(prefix)
    assert f"Stop these digests: {link}" in text_of(mail)

    r = await crm["client"].post(link.removeprefix(services.settings.public_url))
    assert r.status_code == 200, r.text
    s = (await rep.get(f"{crm['b']}/notification-settings")).json()["settings"]
    assert s["digest"]["frequency"] == "off" and s["mention_emails"] is True


async def test_a_row_that_cannot_be_planned_skips_only_itself(crm, smtp_services, monkeypatch):
    """An unknown frequency or unreadable channels: that row is moved on an hour and logged; the
    others of the batch are queued, and the scheduler does not spin on a batch it cannot move."""
    services, rep, manager, admin, org_id = smtp_services, crm["rep"], crm["manager"], crm["admin"], crm["org"]["id"]
    boundary = services.clock().replace(minute=0, second=0, microsecond=0)  # org zone UTC
    due = {"digest": "daily", "digest_hour": boundary.hour, "digest_sent_until": boundary - timedelta(hours=1), "digest_due_at": boundary}
    await choose(services, org_id, rep.id, **due)
    await choose(services, org_id, manager.id, **due, channels=["not", "a", "mapping"])
    await choose(services, org_id, admin.id, **{**due, "digest": "hourly"})
    monkeypatch.setattr(limits, "DIGEST_SCHEDULE_BATCH", 1)
    at(services, boundary)
    assert await asyncio.wait_for(digests.schedule(services), 30) == 1
    assert [j.user_id for j in await digest_jobs(services)] == [rep.id]
    async with account_session(services.sessions) as s:
        ns = NotificationSettings
        due_at = dict((await s.execute(select(ns.user_id, ns.digest_due_at).where(ns.org_id == org_id))).all())
    assert due_at[manager.id] == due_at[admin.id] == boundary + digests.SKIPPED_ROW_RETRY
    assert due_at[rep.id] == boundary + timedelta(days=1)
    assert await digests.schedule(services) == 0
