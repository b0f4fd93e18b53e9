"""WebSocket abuse (issue 9, F-SEC-1, F-SEC-2): hijacking Origins, dead credentials and hostile
frames are refused with a close, and another client on the same node keeps receiving.

Covered in tests/realtime/test_ws_security.py, not repeated here: foreign, `null`, look-alike,
port- and scheme-variant Origins; no token, garbage, forged and expired connection tokens; a first
frame that is not `connect`; subscribing to channels oneself."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from feeds_server import limits
from feeds_server.realtime.protocol import MAX_COMMANDS_PER_FRAME
from tests import factory
from tests.realtime.helpers import connection_token
from tests.realtime.test_ws_security import _close_code, _member_pair


@pytest.fixture
def backend() -> str:
    return "sqlite"  # frames never reach the store; the checks before it run the same on PostgreSQL


async def _connected(node, token: str):  # type: ignore[no-untyped-def]
    ws = await websockets.connect(node.ws_url, max_size=None)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": token}}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert "connect" in reply, reply
    return ws


async def _still_receives(ws, alice, slug: str) -> None:  # type: ignore[no-untyped-def]
    """A post made now reaches the bystander's socket."""
    marker = factory.unique("still-here")
    r = await alice.post(f"/api/v1/orgs/{slug}/posts", json={"body": marker})
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frame = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        if marker in (frame if isinstance(frame, str) else frame.decode()):
            return
    raise AssertionError("the bystander got nothing")


@pytest.mark.parametrize("ending", ["signout", "erase"])
async def test_a_token_of_a_signed_out_session_or_an_erased_user_is_refused_before_any_data(node, settings, services, ending):
    alice, bob, org = await _member_pair(node, settings, services)
    token = await connection_token(bob, org["slug"])
    if ending == "signout":
        r = await bob.post("/api/v1/auth/signout")
    else:
        r = await bob.post("/api/v1/me/erase", json={"password": factory.PASSWORD})
    assert r.status_code in (202, 204), r.text
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": token}}).decode())
    assert await _close_code(ws) >= 3500
    assert (await bob.get("/api/v1/me")).status_code == 401


def _hostile_frames() -> dict[str, str | bytes]:
    return {
        "16 MiB frame": "x" * (16 * 1024 * 1024),
        "deep nesting": '{"id": 2, "rpc": {"data": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        "unknown command": orjson.dumps({"id": 2, "launch": {"missiles": True}}).decode(),
        "not JSON": "\x00\x01 not json",
        "binary invalid UTF-8": b'{"id": 2, "ping": {}}\xff\xfe',
        "too many commands": "\n".join(orjson.dumps({"id": i + 2, "ping": {}}).decode() for i in range(MAX_COMMANDS_PER_FRAME + 1)),
    }


@pytest.mark.parametrize("kind", list(_hostile_frames()))
async def test_hostile_frames_close_the_connection_and_spare_the_others(node, settings, services, kind):
    alice, bob, org = await _member_pair(node, settings, services)
    bystander = await _connected(node, await connection_token(alice, org["slug"]))
    attacker = await _connected(node, await connection_token(bob, org["slug"]))
    try:
        await attacker.send(_hostile_frames()[kind])
    except ConnectionClosed:
        pass
    code = await _close_code(attacker)
    assert code in (1007, 1009, 3501), code
    await _still_receives(bystander, alice, org["slug"])
    await bystander.close()


async def test_the_frame_limit_itself_is_enforced_by_the_server(node, settings, services):
    """One byte over the configured frame limit closes with 1009 (message too big)."""
    alice, bob, org = await _member_pair(node, settings, services)
    ws = await _connected(node, await connection_token(bob, org["slug"]))
    try:
        await ws.send("x" * (limits.MAX_WS_FRAME_BYTES + 1))
    except ConnectionClosed:
        pass
    assert await _close_code(ws) == 1009


def _raw_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def test_a_text_frame_of_invalid_utf8_is_closed_with_1007(node, settings, services):
    """A text frame must be UTF-8 (RFC 6455 §8.1); the client libraries refuse to send one, so it is written by hand."""
    alice, bob, org = await _member_pair(node, settings, services)
    bystander = await _connected(node, await connection_token(alice, org["slug"]))
    host, port = node.ws_url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + node.ws_url.split("//", 1)[1].split("/", 1)[1]
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.write(_raw_text_frame(b'{"id": 1, "connect": {"token": "\xff\xfe"}}'))
    await writer.drain()
    data = await asyncio.wait_for(reader.read(1024), 5)
    assert data[:1] == b"\x88", data  # a close frame, nothing before it
    assert int.from_bytes(data[2:4], "big") in (1007, 3501)
    writer.close()
    await _still_receives(bystander, alice, org["slug"])
    await bystander.close()


async def test_floods_of_commands_and_subscribes_end_in_errors_or_a_close(node, settings, services):
    """10,000 pings and 2,000 subscribe commands as fast as they can be written: the server answers or
    closes the flooder, and the bystander's delivery goes on."""
    alice, bob, org = await _member_pair(node, settings, services)
    bystander = await _connected(node, await connection_token(alice, org["slug"]))
    flooder = await _connected(node, await connection_token(bob, org["slug"]))
    sent = 0
    try:
        for i in range(10_000):
            await flooder.send(orjson.dumps({"id": i + 2, "ping": {}}).decode())
            sent += 1
        for i in range(2_000):
            await flooder.send(orjson.dumps({"id": 20_000 + i, "subscribe": {"channel": f"group:{i}"}}).decode())
            sent += 1
        replies = []
        while len(replies) < 50:
            replies.append(orjson.loads((await asyncio.wait_for(flooder.recv(), 5)).split("\n")[0]))
    except ConnectionClosed as exc:
        assert exc.rcvd is None or exc.rcvd.code >= 3000, exc
    await _still_receives(bystander, alice, org["slug"])
    await bystander.close()
    await flooder.close()
    assert sent > 0


async def test_the_node_stays_healthy_after_the_abuse(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    for _ in range(20):
        ws = await websockets.connect(node.ws_url)
        await ws.send(b"\xff" * 100)
        await _close_code(ws)
    assert (await alice.get("/readyz")).status_code == 200
    bystander = await _connected(node, await connection_token(alice, org["slug"]))
    await _still_receives(bystander, alice, org["slug"])
    await bystander.close()
