"""In-process broker: the default for a single node."""

from __future__ import annotations

import logging

from feeds_server.realtime.broker import OnMessage, OnReconnect, OnUserMessage, Outgoing, UserOutgoing

log = logging.getLogger("feeds_server.realtime.broker")


class MemoryBroker:
    def __init__(self) -> None:
        self._on_message: OnMessage | None = None
        self._on_user_message: OnUserMessage | None = None
        self._orgs: set[int] = set()
        self._users: set[int] = set()

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect, on_user_message: OnUserMessage | None = None) -> None:
        self._on_message, self._on_user_message = on_message, on_user_message

    async def publish(self, messages: Outgoing) -> None:
        for org_id, message in messages:
            if self._on_message is not None and (org_id is None or org_id in self._orgs):
                try:
                    await self._on_message(org_id, message)
                except Exception:  # one bad message must not stop the others, nor the hub's publisher
                    log.exception("error handling a broker message")

    async def subscribe(self, org_id: int) -> None:
        self._orgs.add(org_id)

    async def unsubscribe(self, org_id: int) -> None:
        self._orgs.discard(org_id)

    async def publish_to_users(self, messages: UserOutgoing) -> None:
        for user_id, message in messages:
            if self._on_user_message is not None and user_id in self._users:
                try:
                    await self._on_user_message(user_id, message)
                except Exception:  # one bad message must not stop the others
                    log.exception("error handling a broker message")

    async def subscribe_user(self, user_id: int) -> None:
        self._users.add(user_id)

    async def unsubscribe_user(self, user_id: int) -> None:
        self._users.discard(user_id)

    async def close(self) -> None:
        self._on_message = self._on_user_message = None
