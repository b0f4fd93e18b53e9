"""Redis pub/sub broker for several nodes: one channel per org, one for control messages.

The reader re-subscribes after a lost connection and tells the hub, which then fills what it
missed from the database.
"""

from __future__ import annotations

import asyncio
import logging
import random

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from feeds_server.realtime.broker import OnMessage, OnReconnect, Outgoing

log = logging.getLogger("feeds_server.realtime.redis")

class RedisBroker:
    def __init__(self, url: str, prefix: str = "feeds") -> None:
        self.url = url
        self.control_channel = f"{prefix}:control"
        self.org_prefix = f"{prefix}:org:"
        self._redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=10)
        self._publisher = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._orgs: set[int] = set()
        self._pubsub: aioredis.client.PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_message: OnMessage | None = None
        self._on_reconnect: OnReconnect | None = None
        self._ready = asyncio.Event()

    def _org_channel(self, org_id: int) -> str:
        return f"{self.org_prefix}{org_id}"

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect) -> None:
        self._on_message, self._on_reconnect = on_message, on_reconnect
        self._task = asyncio.create_task(self._run(), name="redis-broker")

    async def publish(self, messages: Outgoing) -> None:
        """One round trip for the lot: a pipeline (no transaction) keeps their order."""
        pipe = self._publisher.pipeline(transaction=False)
        for org_id, message in messages:
            pipe.publish(self.control_channel if org_id is None else self._org_channel(org_id), message)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            # Events are committed: nodes fill the gap from the database when the next one arrives
            # (or on the tail poller's tick).
            log.warning("redis publish of %d messages failed (nodes will catch up from the database): %s", len(messages), exc)

    async def subscribe(self, org_id: int) -> None:
        self._orgs.add(org_id)
        if self._pubsub is not None and self._ready.is_set():
            try:
                await self._pubsub.subscribe(self._org_channel(org_id))
            except (RedisError, OSError):
                pass  # the reader re-subscribes everything when it reconnects

    async def unsubscribe(self, org_id: int) -> None:
        self._orgs.discard(org_id)
        if self._pubsub is not None and self._ready.is_set():
            try:
                await self._pubsub.unsubscribe(self._org_channel(org_id))
            except (RedisError, OSError):
                pass

    async def _run(self) -> None:
        delay = 0.1
        first = True
        while True:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(self.control_channel, *(self._org_channel(o) for o in self._orgs))
                self._ready.set()
                if not first and self._on_reconnect is not None:
                    await self._on_reconnect()
                first, delay = False, 0.1
                await self._read(self._pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("redis connection lost: %s; reconnecting", exc)
            except Exception:  # the catch-up after a reconnect failed (the database away): the reader goes on
                log.exception("the redis reader failed; reconnecting")
            finally:
                self._ready.clear()
                if self._pubsub is not None:
                    try:
                        await self._pubsub.aclose()
                    except Exception:  # noqa: BLE001 - the connection is already broken
                        pass
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)

    async def _read(self, pubsub: aioredis.client.PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is None or self._on_message is None:
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            org_id = None if channel == self.control_channel else int(channel.rsplit(":", 1)[1])
            try:
                await self._on_message(org_id, message["data"])
            except Exception:  # a bad message must not stop the reader
                log.exception("error handling a broker message")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await self._redis.aclose()
        await self._publisher.aclose()
