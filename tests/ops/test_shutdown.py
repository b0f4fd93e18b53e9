"""Graceful shutdown (issue 8): on SIGTERM a node tells its clients to reconnect elsewhere (3001),
sends what is queued first, finishes requests in flight and exits 0 within FEEDS_SHUTDOWN_TIMEOUT."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests import factory
from tests.realtime.helpers import Recorder, centrifuge_client, connection_token, org_with_reader
from tests.server import FailoverProxy

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

TIMEOUT = 4


async def frames_until_close(ws) -> tuple[list[dict], int, str]:  # type: ignore[no-untyped-def]
    """Every frame the server sends, one JSON object per line, then the close code and reason."""
    out: list[dict] = []
    try:
        while True:
            raw = await asyncio.wait_for(ws.recv(), TIMEOUT + 2)
            out += [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "the server closed without a close frame"
        return out, exc.rcvd.code, exc.rcvd.reason


def post_bodies(frames: list[dict]) -> set[str]:
    bodies = set()
    for f in frames:
        data = f.get("push", {}).get("pub", {}).get("data")
        if data and data["type"] == "post.created":
            bodies.add(data["payload"]["post"]["body"])
    return bodies


async def slow_json(first: bytes, rest: bytes, pause: float) -> AsyncIterator[bytes]:
    yield first
    await asyncio.sleep(pause)
    yield rest


async def test_sigterm_flushes_queued_publications_closes_with_3001_finishes_requests_and_exits_0(start_node, settings, services):
    node = start_node(FEEDS_SHUTDOWN_TIMEOUT=str(TIMEOUT))
    alice, bob, slug = await org_with_reader(node.url, settings, services)
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": await connection_token(bob, slug)}}).decode())
    assert "connect" in orjson.loads(await asyncio.wait_for(ws.recv(), 5))

    # Answered before the signal, so already queued to the connection: all must arrive before the close.
    sent = [f"queued {i}" for i in range(30)]
    results = await asyncio.gather(*(alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": b}) for b in sent))
    assert all(r.status_code == 201 for r in results)
    # A request whose body is still arriving when the signal comes.
    in_flight = asyncio.create_task(
        alice.post(
            f"/api/v1/orgs/{slug}/posts", content=slow_json(b'{"body": "in ', b'flight"}', 1.0),
            headers={"content-type": "application/json"}, json=None,
        )
    )
    await asyncio.sleep(0.3)
    signalled = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)

    frames, code, reason = await frames_until_close(ws)
    assert (code, reason) == (3001, "shutdown")
    assert post_bodies(frames) >= set(sent)
    r = await in_flight
    assert r.status_code == 201 and r.json()["post"]["body"] == "in flight"
    exit_code = await asyncio.to_thread(node.proc.wait, TIMEOUT + 5)
    assert exit_code == 0
    assert time.monotonic() - signalled < TIMEOUT + 1.5


class ReconnectRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.reconnect_codes: list[int] = []

    async def on_connecting(self, ctx) -> None:  # type: ignore[no-untyped-def]
        self.reconnect_codes.append(ctx.code)


async def test_sdk_clients_reconnect_to_another_node_and_miss_nothing(start_node, settings, services, redis_url):
    """The 3001 close makes Centrifuge SDKs reconnect (through the balancer, to the other node) and
    recover what was posted meanwhile."""
    import uuid

    env = {"FEEDS_REDIS_URL": redis_url, "FEEDS_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}", "FEEDS_SHUTDOWN_TIMEOUT": str(TIMEOUT)}
    a, b = start_node(**env), start_node(**env)
    alice, bob, slug = await org_with_reader(b.url, settings, services)
    proxy = await FailoverProxy([a.port, b.port]).start()
    recorder = ReconnectRecorder()
    client = centrifuge_client(proxy.ws_url, bob, slug, recorder)
    await client.connect()
    await asyncio.wait_for(recorder.connected.wait(), 5)
    a.proc.send_signal(signal.SIGTERM)
    for i in range(5):
        assert (await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": f"during {i}"})).status_code == 201
    assert await asyncio.to_thread(a.proc.wait, TIMEOUT + 5) == 0
    await recorder.wait_for(lambda: len(recorder.of_type("post.created")) >= 5, timeout=10)
    assert 3001 in recorder.reconnect_codes and not recorder.disconnects
    assert [d["payload"]["post"]["body"] for d in recorder.of_type("post.created")] == [f"during {i}" for i in range(5)]
    await client.disconnect()
    await proxy.close()
