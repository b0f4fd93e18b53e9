"""Dormancy notices: one notification per record, person and quiet spell, with the reason the person
follows the record; mutes and preferences honoured; listed in the digest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from feeds_server.notify import digests, worker
from feeds_server.notify.dormancy import notify_dormant
from feeds_server.store.models import DormancyNotice, Notification, NotificationSettings
from feeds_server.store.scope import org_session
from tests import factory
from tests.api.records_helpers import crm, ev, send  # noqa: F401 - `crm` is a fixture
from tests.notify.test_digests import at, choose, mute, text_of


async def dormant_notes(services: Any, org_id: int) -> list[Notification]:
    async with org_session(services.sessions, org_id) as s:
        return list((await s.execute(select(Notification).where(Notification.kind == "record_dormant").order_by(Notification.id))).scalars())


async def notices(services: Any, org_id: int) -> int:
    async with org_session(services.sessions, org_id) as s:
        return (await s.execute(select(func.count()).select_from(DormancyNotice))).scalar_one()


async def acme_followed(crm: dict[str, Any]) -> int:
    """Acme, owned by the rep and followed by hand by the manager."""
    record = (await send(crm, ev("a1", crm_id="D-1", name="Acme", owner_email=crm["rep"].email))).json()["results"][0]["record_id"]
    assert (await crm["manager"].put(f"{crm['b']}/records/{record}/follow")).status_code == 200
    return record


async def test_once_per_crossing_then_again_after_new_activity(crm, services):
    rep, manager, org_id = crm["rep"], crm["manager"], crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    record = await acme_followed(crm)
    await send(crm, ev("x1", crm_id="X-1", name="Not followed", owner_email=crm["admin"].email))
    r = await rep.patch(f"{crm['b']}/notification-settings", json={"dormant_days": 3})
    assert r.status_code == 200, r.text
    await choose(services, org_id, manager.id, dormant_days=3)

    assert await notify_dormant(services, t0 + timedelta(days=3) - timedelta(seconds=1)) == 0
    assert await notify_dormant(services, t0 + timedelta(days=3)) == 2
    notes = await dormant_notes(services, org_id)
    by_user = {n.user_id: n for n in notes}
    assert sorted(by_user) == sorted([rep.id, manager.id])
    assert by_user[rep.id].reason["code"] == "owner" and by_user[manager.id].reason["code"] == "follower_manual"
    assert by_user[rep.id].data["record"] == {"module": "Deals", "id": record, "crm_id": "D-1", "name": "Acme"}
    assert by_user[rep.id].data["days"] == 3 and by_user[rep.id].record_id == record

    # Not every day: the same quiet spell is told once, however often the step runs.
    assert await notify_dormant(services, t0 + timedelta(days=4)) == 0
    assert await notify_dormant(services, t0 + timedelta(days=10)) == 0

    # New activity, then quiet again: a new crossing.
    at(services, t0 + timedelta(days=11))
    await send(crm, ev("a2", "edited", crm_id="D-1", fields={"Stage": "Won"}))
    assert await notify_dormant(services, t0 + timedelta(days=14) - timedelta(seconds=1)) == 0
    assert await notify_dormant(services, t0 + timedelta(days=14)) == 2
    assert len(await dormant_notes(services, org_id)) == 4

    # Shown through the API with the rest of the person's notifications.
    at(services, t0 + timedelta(days=14))
    rep = await factory.sign_in(crm["client"], rep.email)
    listed = (await rep.get(f"{crm['b']}/notifications")).json()["notifications"]
    assert [n["kind"] for n in listed][:3] == ["record_dormant", "record_owned", "record_dormant"]
    assert listed[0]["reason"]["code"] == "owner" and listed[0]["data"]["record"]["name"] == "Acme"


async def test_two_workers_at_once_tell_a_crossing_once(crm, services):
    import asyncio

    org_id = crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    await acme_followed(crm)
    await choose(services, org_id, crm["rep"].id, dormant_days=1)
    when = t0 + timedelta(days=1)
    assert sum(await asyncio.gather(notify_dormant(services, when), notify_dormant(services, when))) == 1
    assert len(await dormant_notes(services, org_id)) == 1


async def test_a_muted_record_or_the_kind_turned_off_makes_no_notification(crm, services):
    rep, manager, org_id = crm["rep"], crm["manager"], crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    record = await acme_followed(crm)
    await choose(services, org_id, rep.id, dormant_days=2)
    await choose(services, org_id, manager.id, dormant_days=2, channels={"record_dormant": {"in_app": False, "email": False, "push": False}})
    await mute(services, org_id, rep.id, "record", record)
    assert await notify_dormant(services, t0 + timedelta(days=2)) == 2  # the crossings are recorded …
    assert await dormant_notes(services, org_id) == []  # … and nobody is notified
    assert await notify_dormant(services, t0 + timedelta(days=3)) == 0


async def test_no_notices_without_the_setting_or_for_a_deleted_record(crm, services):
    org_id = crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    await acme_followed(crm)
    await send(crm, ev("g1", crm_id="G-1", name="Gone", owner_email=crm["rep"].email))
    await send(crm, ev("g2", "deleted", crm_id="G-1"))
    await choose(services, org_id, crm["rep"].id, dormant_days=5, dormant_since=t0)
    assert await notify_dormant(services, t0 + timedelta(days=30)) == 1  # Acme for the rep; not Gone, not the manager
    assert await notices(services, org_id) == 1


async def test_dormancy_notices_are_listed_in_the_digest(crm, smtp, smtp_services):
    services, rep, org_id = smtp_services, crm["rep"], crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    await acme_followed(crm)
    start = t0 + timedelta(days=2, minutes=-30)
    boundary = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    await choose(services, org_id, rep.id, dormant_days=2, digest="daily", digest_hour=boundary.hour,
                 digest_sent_until=start, digest_due_at=boundary)  # org zone UTC
    assert await notify_dormant(services, t0 + timedelta(days=2)) == 1
    at(services, boundary)
    assert await digests.schedule(services) == 1
    assert await worker.run(services, burst=True) == 1
    text = text_of(smtp.recorder.messages[0])
    assert "Gone quiet:" in text and "Acme (Deals): no activity since" in text


async def dormant_since(services: Any, org_id: int, user_id: int) -> Any:
    async with org_session(services.sessions, org_id) as s:
        return (await s.execute(select(NotificationSettings.dormant_since).where(NotificationSettings.user_id == user_id))).scalar_one()


async def test_turning_dormancy_on_tells_only_records_that_go_quiet_afterwards(crm, services):
    """No flood: records already quiet for N days when the person asks are not reported, nor again
    when N changes; a record that goes quiet later is, and so is an old one once it is active again."""
    rep, org_id = crm["rep"], crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    await acme_followed(crm)  # quiet from t0 on
    later = t0 + timedelta(days=100)
    at(services, later)
    await send(crm, ev("b1", crm_id="D-2", name="Beta", owner_email=rep.email))  # active at `later`
    rep = await factory.sign_in(crm["client"], rep.email)
    assert (await rep.patch(f"{crm['b']}/notification-settings", json={"dormant_days": 3})).status_code == 200
    assert await dormant_since(services, org_id, rep.id) == later

    assert await notify_dormant(services, later) == 0  # Acme has been quiet for 100 days: not told
    assert await notify_dormant(services, later + timedelta(days=3)) == 1  # Beta crosses after the choice
    assert [n.data["record"]["name"] for n in await dormant_notes(services, org_id)] == ["Beta"]

    # Another number of days starts again from then: nothing already quiet is reported.
    at(services, later + timedelta(days=4))
    assert (await rep.patch(f"{crm['b']}/notification-settings", json={"dormant_days": 5})).status_code == 200
    assert await dormant_since(services, org_id, rep.id) == later + timedelta(days=4)
    assert await notify_dormant(services, later + timedelta(days=10)) == 0
    at(services, later + timedelta(days=11))
    rep = await factory.sign_in(crm["client"], rep.email)  # a sign-in lasts a week
    assert (await rep.patch(f"{crm['b']}/notification-settings", json={"dormant_days": 5})).status_code == 200
    assert await dormant_since(services, org_id, rep.id) == later + timedelta(days=4), "the same number changes nothing"

    # Acme active again, then quiet: a crossing after the choice, told.
    await send(crm, ev("a2", "edited", crm_id="D-1", fields={"Stage": "Won"}))
    assert await notify_dormant(services, later + timedelta(days=16)) == 1
    assert [n.data["record"]["name"] for n in await dormant_notes(services, org_id)] == ["Beta", "Acme"]

    assert (await rep.patch(f"{crm['b']}/notification-settings", json={"dormant_days": None})).status_code == 200
    assert await dormant_since(services, org_id, rep.id) is None


async def test_a_setting_stored_without_its_start_starts_when_first_seen(crm, services):
    """A row with `dormant_days` but no `dormant_since` (an import, say) reports nothing already quiet."""
    rep, org_id = crm["rep"], crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    await acme_followed(crm)
    await choose(services, org_id, rep.id, dormant_days=3)
    seen = t0 + timedelta(days=30)
    assert await notify_dormant(services, seen) == 0
    assert await dormant_since(services, org_id, rep.id) == seen
    assert await notify_dormant(services, seen + timedelta(days=30)) == 0


async def test_one_persons_unreadable_settings_do_not_stop_the_others_notices(crm, services):
    rep, manager, org_id = crm["rep"], crm["manager"], crm["org"]["id"]
    t0 = services.clock()
    at(services, t0)
    await acme_followed(crm)
    await choose(services, org_id, rep.id, dormant_days=2, dormant_since=t0)
    await choose(services, org_id, manager.id, dormant_days=2, dormant_since=t0, channels=["not", "a", "mapping"])
    assert await notify_dormant(services, t0 + timedelta(days=2)) == 2  # both crossings recorded
    assert [n.user_id for n in await dormant_notes(services, org_id)] == [rep.id]
