"""A connection that joins while the org's last other connection leaves is not left in a closed room.

The hub closes an org's room when its last connection goes. A client that was connecting at that
moment (reading its recovery position from the database) must end up in the org's open room —
the one events are delivered to — not in the one that was just closed.
"""

from __future__ import annotations

import asyncio

from feeds_server.realtime.broker_memory import MemoryBroker
from feeds_server.realtime.hub import Connection, Hub
from tests import factory


def _conn(name: str, user_id: int, org_id: int) -> Connection:
    return Connection(name, user_id=user_id, org_id=org_id, auth_token_id=1, profile_id=1, role_id=None)


async def test_joining_while_the_last_connection_leaves_lands_in_the_open_room(client, services):
    owner = await factory.sign_up(client, factory.unique("Owner"))
    org = await factory.create_org(owner)
    hub = Hub(services, MemoryBroker())
    leaving = _conn("leaving", owner.id, org["id"])
    await hub.connect(leaving, {}, lambda subs: b"{}")
    room = hub.rooms[org["id"]]

    joining = _conn("joining", owner.id, org["id"])
    task = asyncio.create_task(hub.connect(joining, {"org": (room.epoch, room.last_seq)}, lambda subs: b"{}"))
    await asyncio.sleep(0)  # the joiner has its room and now waits on the database
    await hub.disconnect(leaving)
    await task

    assert org["id"] in hub.rooms, "the org has a connection, so it has an open room"
    assert joining in hub.rooms[org["id"]].connections
    assert "org" in hub.rooms[org["id"]].subscribers
    await hub.disconnect(joining)
    assert org["id"] not in hub.rooms
