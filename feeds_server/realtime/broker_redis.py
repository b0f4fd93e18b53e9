"""Redis pub/sub broker for several nodes: one channel per org, one for control messages, and one
per person for the messages that follow them across orgs (subscribed while this node holds one of
their connections).

The reader re-subscribes after a lost connection and tells the hub, which then fills what it
missed from the database.

Which channels this node wants is kept in memory; one background task brings the Redis
subscription in line with it, each change bounded by SYNC_TIMEOUT_SECONDS. So leaving (a
connection closing, a person's last connection here going) never waits on Redis: a Redis that
stalls cannot hold up disconnects, and whatever it missed is sent again once it answers. Subscribing
to an org waits for that task at most SYNC_TIMEOUT_SECONDS (the hub fills any gap from the database).
"""

from __future__ import annotations

import asyncio
import logging
import random

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from feeds_server.realtime.broker import OnMessage, OnReconnect, OnUserMessage, Outgoing, UserOutgoing

log = logging.getLogger("feeds_server.realtime.redis")

SYNC_TIMEOUT_SECONDS = 2.0

class RedisBroker:
    def __init__(self, url: str, prefix: str = "feeds") -> None:
        self.url = url
        self.control_channel = f"{prefix}:control"
        self.org_prefix = f"{prefix}:org:"
        self.user_prefix = f"{prefix}:user:"
        self._redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=10)
        self._publisher = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._orgs: set[int] = set()
        self._users: set[int] = set()
        self._pubsub: aioredis.client.PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_message: OnMessage | None = None
        self._on_reconnect: OnReconnect | None = None
        self._on_user_message: OnUserMessage | None = None
        self._ready = asyncio.Event()
        self._subscribed: set[str] = set()  # channels the current Redis connection is subscribed to
        self._version = 0  # bumped by every change of what is wanted
        self._applied = 0  # the version the subscription was last brought in line with
        self._applied_changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._syncer: asyncio.Task[None] | None = None

    def _org_channel(self, org_id: int) -> str:
        return f"{self.org_prefix}{org_id}"

    def _user_channel(self, user_id: int) -> str:
        return f"{self.user_prefix}{user_id}"

    async def start(self, on_message: OnMessage, on_reconnect: OnReconnect, on_user_message: OnUserMessage | None = None) -> None:
        self._on_message, self._on_reconnect, self._on_user_message = on_message, on_reconnect, on_user_message
        self._task = asyncio.create_task(self._run(), name="redis-broker")
        self._syncer = asyncio.create_task(self._sync(), name="redis-broker-subscriptions")

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
        await self._until_applied(self._want())

    async def unsubscribe(self, org_id: int) -> None:
        self._orgs.discard(org_id)
        self._want()

    async def publish_to_users(self, messages: UserOutgoing) -> None:
        pipe = self._publisher.pipeline(transaction=False)
        for user_id, message in messages:
            pipe.publish(self._user_channel(user_id), message)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:  # no history: a client reads the counts again when it reconnects
            log.warning("redis publish of %d messages for people failed: %s", len(messages), exc)

    async def subscribe_user(self, user_id: int) -> None:
        """Does not wait: counts carry no history, a client reads them on (re)connect."""
        self._users.add(user_id)
        self._want()

    async def unsubscribe_user(self, user_id: int) -> None:
        self._users.discard(user_id)
        self._want()

    # --- keeping the Redis subscription in line with what is wanted ------------------------------
    def _wanted(self) -> set[str]:
        return {self.control_channel, *(self._org_channel(o) for o in self._orgs), *(self._user_channel(u) for u in self._users)}

    def _want(self) -> int:
        self._version += 1
        self._wake.set()
        return self._version

    def _mark_applied(self, version: int) -> None:
        self._applied = max(self._applied, version)
        changed, self._applied_changed = self._applied_changed, asyncio.Event()
        changed.set()

    async def _until_applied(self, version: int) -> None:
        """Wait (at most SYNC_TIMEOUT_SECONDS) until the change of `version` reached Redis; not when
        the reader is not connected: it subscribes to everything wanted when it connects."""
        try:
            async with asyncio.timeout(SYNC_TIMEOUT_SECONDS):
                while self._ready.is_set() and self._applied < version:
                    await self._applied_changed.wait()
        except TimeoutError:
            log.warning("redis did not confirm a subscription within %.0f s; it is tried again", SYNC_TIMEOUT_SECONDS)

    async def _sync(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pubsub = self._pubsub
            if pubsub is None or not self._ready.is_set():
                continue  # the reader subscribes to everything wanted when it connects, then wakes this
            version, wanted = self._version, self._wanted()
            add, remove = wanted - self._subscribed, self._subscribed - wanted
            try:
                async with asyncio.timeout(SYNC_TIMEOUT_SECONDS):
                    if add:
                        await pubsub.subscribe(*sorted(add))
                    if remove:
                        await pubsub.unsubscribe(*sorted(remove))
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("redis subscription change failed (%r); trying again", exc)
                await asyncio.sleep(0.5)
                self._wake.set()
                continue
            if pubsub is self._pubsub:
                self._subscribed = (self._subscribed | add) - remove
            self._mark_applied(version)

    async def _run(self) -> None:
        delay = 0.1
        first = True
        while True:
            try:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                version, snapshot = self._version, self._wanted()
                await self._pubsub.subscribe(*sorted(snapshot))
                self._subscribed = snapshot
                self._ready.set()
                self._mark_applied(version)
                self._wake.set()  # what changed while subscribing (a person joining meanwhile) goes next
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
                self._subscribed = set()
                self._mark_applied(self._applied)  # waiters see the reader is away
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
            if channel.startswith(self.user_prefix):
                await self._user_message(int(channel[len(self.user_prefix):]), message["data"])
                continue
            org_id = None if channel == self.control_channel else int(channel.rsplit(":", 1)[1])
            try:
                await self._on_message(org_id, message["data"])
            except Exception:  # a bad message must not stop the reader
                log.exception("error handling a broker message")

    async def _user_message(self, user_id: int, data: bytes) -> None:
        if self._on_user_message is None:
            return
        try:
            await self._on_user_message(user_id, data)
        except Exception:  # a bad message must not stop the reader
            log.exception("error handling a broker message")

    async def close(self) -> None:
        for task in (self._syncer, self._task):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await self._redis.aclose()
        await self._publisher.aclose()
