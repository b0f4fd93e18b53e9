"""The cap on open WebSocket connections per user (issue 8): one over it is closed with 3504
"connection limit", which tells SDKs not to reconnect; with Redis the cap spans every node."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.realtime.helpers import connection_token, org_with_reader

CAP = 2


async def connect(ws_url: str, token: str):  # type: ignore[no-untyped-def]
    """A connection and its first answer: the connect reply, or the close code."""
    ws = await websockets.connect(ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": token}}).decode())
    try:
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    except ConnectionClosed as exc:
        return ws, exc.rcvd.code if exc.rcvd else -1
    assert "connect" in reply, reply
    return ws, 0


@pytest.mark.parametrize(("backend", "nodes"), [("sqlite", 1), ("postgres", 2)])
async def test_connection_over_the_cap_is_closed_with_3504(start_node, settings, services, nodes, request):
    env = {"FEEDS_WS_CONNECTIONS_PER_USER": str(CAP)}
    if nodes == 2:
        env |= {"FEEDS_REDIS_URL": request.getfixturevalue("redis_url"), "FEEDS_REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
    started = [start_node(**env) for _ in range(nodes)]
    a, b = started[0], started[-1]
    alice, bob, slug = await org_with_reader(a.url, settings, services)
    token = await connection_token(bob, slug)

    first, code1 = await connect(a.ws_url, token)
    second, code2 = await connect(b.ws_url, token)  # the cap-th: allowed (on the other node when there are two)
    assert (code1, code2) == (0, 0)
    third, code3 = await connect(a.ws_url, token)
    assert code3 == 3504
    other, code = await connect(b.ws_url, await connection_token(alice, slug))
    assert code == 0  # another user is not affected

    await first.close()
    await asyncio.sleep(0.2)  # the node releases the slot once the socket is gone
    fourth, code4 = await connect(b.ws_url, token)
    assert code4 == 0
    for ws in (second, fourth, other):
        await ws.close()
