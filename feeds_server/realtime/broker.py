"""The broker carries committed events (and control messages) to every node.

Besides the orgs' streams, it carries small messages for one person (their unread counts,
realtime/counts.py) to the nodes where that person has a connection, whatever the org: a node
subscribes to a person while it holds one of their connections. These have no history.

One publish per event; what queued meanwhile goes out together (one Redis pipeline), in order. A
node subscribes to the orgs it has connections for. The broker gives no
ordering or delivery guarantee the hub relies on: the hub fills any gap in an org's sequence from
the database, so a lost or late message never becomes a lost event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from feeds_server.config import Settings

# Called with each message: (org id or None for control messages, the encoded message).
OnMessage = Callable[[int | None, bytes], Awaitable[None]]
# Messages to publish, in order: (org id or None for a control message, the encoded message).
Outgoing = list[tuple[int | None, bytes]]
# Called after the broker reconnects: messages may have been missed meanwhile.
OnReconnect = Callable[[], Awaitable[None]]
# Called with each message for one person: (user id, the encoded message).
OnUserMessage = Callable[[int, bytes], Awaitable[None]]
# Messages for people, in order: (user id, the encoded message).
UserOutgoing = list[tuple[int, bytes]]


class Broker(Protocol):
    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect, on_user_message: OnUserMessage | None = None) -> None: ...
    async def publish(self, messages: Outgoing) -> None: ...
    async def subscribe(self, org_id: int) -> None: ...
    async def unsubscribe(self, org_id: int) -> None: ...
    async def publish_to_users(self, messages: UserOutgoing) -> None: ...
    async def subscribe_user(self, user_id: int) -> None: ...
    async def unsubscribe_user(self, user_id: int) -> None: ...
    async def close(self) -> None: ...


def create_broker(settings: Settings) -> Broker:
    """Redis when `FEEDS_REDIS_URL` is set (several nodes), otherwise in-process (one node)."""
    if settings.redis_url:
        from feeds_server.realtime.broker_redis import RedisBroker

        return RedisBroker(settings.redis_url, settings.redis_prefix)
    from feeds_server.realtime.broker_memory import MemoryBroker

    return MemoryBroker()
