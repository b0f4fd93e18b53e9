"""In-process broker: the default for a single node."""

from __future__ import annotations

from feeds_server.realtime.broker import OnMessage, OnReconnect, Outgoing


class MemoryBroker:
    def __init__(self) -> None:
        self._on_message: OnMessage | None = None
        self._orgs: set[int] = set()

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        self._on_message = on_message

    async def publish(self, messages: Outgoing) -> None:
        for org_id, message in messages:
            if self._on_message is not None and (org_id is None or org_id in self._orgs):
                await self._on_message(org_id, message)

    async def subscribe(self, org_id: int) -> None:
        self._orgs.add(org_id)

    async def unsubscribe(self, org_id: int) -> None:
        self._orgs.discard(org_id)

    async def close(self) -> None:
        self._on_message = None
