"""One bad event or broker message never stops real-time delivery for the other orgs or events.

The hub's background loops (publishing to the broker, catching up from the database, pinging) each
go on past an error in one item, as the notifier does past one bad job (tests/abuse/test_poison_jobs.py).
"""

from __future__ import annotations

from sqlalchemy import func, select

from feeds_server.realtime.broker_memory import MemoryBroker
from feeds_server.realtime.hub import Hub, Room
from feeds_server.store.events import append_event
from feeds_server.store.models import Event
from feeds_server.store.scope import org_session
from tests import factory


async def test_a_broker_message_that_cannot_be_handled_does_not_stop_the_others():
    handled: list[tuple[int | None, bytes]] = []

    async def on_message(org_id: int | None, message: bytes) -> None:
        if message == b"poison":
            raise ValueError("cannot be handled")
        handled.append((org_id, message))

    async def on_reconnect() -> None:
        pass

    broker = MemoryBroker()
    await broker.start(on_message, on_reconnect)
    for org_id in (1, 2):
        await broker.subscribe(org_id)
    await broker.publish([(1, b"before"), (1, b"poison"), (2, b"after"), (None, b"control")])
    assert handled == [(1, b"before"), (2, b"after"), (None, b"control")]


async def test_an_event_that_cannot_be_delivered_is_passed_over_and_every_org_catches_up(client, services):
    """A stored event of another shape (a member.removed whose payload is a list) in each of two orgs:
    the catch-up passes over it, delivers the events after it, and reaches every org's last event."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    orgs = [await factory.create_org(owner) for _ in range(2)]
    hub = Hub(services, MemoryBroker())
    for org in orgs:
        async with org_session(services.sessions, org["id"]) as session:
            append_event(session, "member.removed", ["not", "a", "payload"])  # type: ignore[arg-type]
        r = await owner.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": "after the bad event"})
        assert r.status_code == 201, r.text
        hub.rooms[org["id"]] = Room(org_id=org["id"], epoch="test", last_seq=0, disabled_modules=[])

    await hub.catch_up_all()
    for org in orgs:
        async with org_session(services.sessions, org["id"]) as session:
            top = (await session.execute(select(func.max(Event.seq)))).scalar_one()
        assert hub.rooms[org["id"]].last_seq == top > 1
