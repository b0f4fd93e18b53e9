"""The brokers publish what a node queued as one batch, in order, control messages among events."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from feeds_server.realtime.broker_memory import MemoryBroker
from feeds_server.realtime.broker_redis import RedisBroker
from tests.conftest import REDIS_URL, unavailable

BATCH = [(1, b"e1"), (None, b"signed-out"), (1, b"e2"), (2, b"other-org"), (1, b"e3")]


async def _start(broker, received: list):  # type: ignore[no-untyped-def]
    async def on_message(org_id, message):  # type: ignore[no-untyped-def]
        received.append((org_id, message))

    async def on_reconnect() -> None:
        pass

    await broker.start(on_message, on_reconnect)


async def test_redis_broker_publishes_a_batch_in_order_to_every_node():
    try:
        probe = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
        await probe.ping()
        await probe.aclose()
    except Exception as exc:  # noqa: BLE001
        unavailable("Redis", str(exc))
    prefix = f"feedstest{uuid.uuid4().hex[:8]}"
    publisher, listener = RedisBroker(REDIS_URL, prefix), RedisBroker(REDIS_URL, prefix)
    received: list = []
    await listener.subscribe(1)  # this node has connections of org 1, none of org 2
    await _start(publisher, [])
    await _start(listener, received)
    try:
        for _ in range(100):  # the listener's subscriptions are in place
            if listener._ready.is_set():
                break
            await asyncio.sleep(0.02)
        await publisher.publish(BATCH)
        for _ in range(100):
            if len(received) == 4:
                break
            await asyncio.sleep(0.02)
        assert received == [(1, b"e1"), (None, b"signed-out"), (1, b"e2"), (1, b"e3")]
    finally:
        await publisher.close()
        await listener.close()


async def test_memory_broker_delivers_a_batch_in_order_for_followed_orgs():
    broker = MemoryBroker()
    received: list = []
    await _start(broker, received)
    await broker.subscribe(1)
    await broker.publish(BATCH)
    assert received == [(1, b"e1"), (None, b"signed-out"), (1, b"e2"), (1, b"e3")]


async def test_a_redis_broker_that_cannot_publish_does_not_raise():
    """Events are committed before they are published: a broker down must not fail the request."""
    broker = RedisBroker("redis://127.0.0.1:1/0", "feedstest-down")  # nothing listens on port 1
    try:
        await broker.publish(BATCH)
    finally:
        await broker.close()
