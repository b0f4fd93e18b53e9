"""WebSocket abuse (issue 9, F-SEC-1, F-SEC-2): hijacking Origins, dead credentials and hostile
frames are refused with a close, and another client on the same node keeps receiving.

Already covered in tests/realtime/test_ws_security.py: foreign, `null`, look-alike, port- and
scheme-variant Origins; no token, garbage, forged and expired connection tokens; a first frame
that is not `connect`; subscribing to channels oneself."""

from __future__ import annotations

import asyncio
import base64
import os
import time

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feeds_server import limits
from feeds_server.realtime import conn_tokens
from tests import factory
from tests.realtime.helpers import actor_on, connection_token


@pytest.fixture
def backend() -> str:
    return "sqlite"  # frames never reach the store; the checks before it run the same on PostgreSQL


async def _team(node, settings, services):  # type: ignore[no-untyped-def]
    alice = await actor_on(node.url, factory.unique("Alice"))
    bob = await actor_on(node.url, factory.unique("Bob"))
    org = await factory.create_org(alice, factory.unique("abuse"))
    await factory.invite_and_join(alice, org["slug"], bob, settings.mail_dir, services)
    return alice, bob, org


async def _connected(node, token: str):  # type: ignore[no-untyped-def]
    ws = await websockets.connect(node.ws_url, max_size=None)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": token}}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert "connect" in reply, reply
    return ws


async def _closed_without_data(ws, timeout: float = 5.0) -> int:  # type: ignore[no-untyped-def]
    """Read until the server closes; no frame may carry a publication before that."""
    frames = []
    try:
        while True:
            frames.append(await asyncio.wait_for(ws.recv(), timeout))
    except ConnectionClosed as exc:
        assert not any(b'"pub"' in (f.encode() if isinstance(f, str) else f) for f in frames), frames
        return exc.rcvd.code if exc.rcvd else -1


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


@pytest.mark.parametrize("origin", [
    "http://allowed.example.evil.com", "http://allowed.example@evil.com", "http://evil.com/http://allowed.example",
    "http://sub.allowed.example", "http://allowed.example:8000", "ws://allowed.example", "http://allowed.exampl",
])
async def test_more_hijacking_origins_are_refused_before_the_upgrade(node, origin):
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(node.ws_url, origin=origin)
    assert info.value.response.status_code == 403


async def test_a_token_of_a_signed_out_session_is_refused_before_any_data(node, settings, services):
    alice, bob, org = await _team(node, settings, services)
    token = await connection_token(bob, org["slug"])
    assert (await bob.post("/api/v1/auth/signout")).status_code in (200, 204)
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": token}}).decode())
    assert await _closed_without_data(ws) >= 3500
    assert (await bob.get("/api/v1/me")).status_code == 401


async def test_a_token_of_an_erased_user_is_refused_before_any_data(node, settings, services):
    alice, bob, org = await _team(node, settings, services)
    token = await connection_token(bob, org["slug"])
    r = await bob.post("/api/v1/me/erase", json={"password": factory.PASSWORD})
    assert r.status_code in (200, 202, 204), r.text
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": token}}).decode())
    assert await _closed_without_data(ws) >= 3500
    assert (await bob.get("/api/v1/me")).status_code == 401


async def test_a_forged_token_for_a_real_member_is_refused(node, settings, services):
    """Right claims, wrong key: nothing but a close comes back."""
    alice, bob, org = await _team(node, settings, services)
    claims = conn_tokens.ConnectionClaims(bob.id, org["id"], 1, int(time.time()) + 60)
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": conn_tokens.mint("guessed-key", claims)}}).decode())
    assert await _closed_without_data(ws) == 3500


def _hostile_frames() -> dict[str, str | bytes]:
    return {
        "16 MiB frame": "x" * (16 * 1024 * 1024),
        "deep nesting": '{"id": 2, "rpc": {"data": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        "unknown command": orjson.dumps({"id": 2, "launch": {"missiles": True}}).decode(),
        "not JSON": "\x00\x01 not json",
        "binary invalid UTF-8": b'{"id": 2, "ping": {}}\xff\xfe',
        "too many commands": "\n".join(orjson.dumps({"id": i + 2, "ping": {}}).decode() for i in range(limits_commands() + 1)),
    }


def limits_commands() -> int:
    from feeds_server.realtime.protocol import MAX_COMMANDS_PER_FRAME

    return MAX_COMMANDS_PER_FRAME


@pytest.mark.parametrize("kind", list(_hostile_frames()))
async def test_hostile_frames_close_the_connection_and_spare_the_others(node, settings, services, kind):
    alice, bob, org = await _team(node, settings, services)
    bystander = await _connected(node, await connection_token(alice, org["slug"]))
    attacker = await _connected(node, await connection_token(bob, org["slug"]))
    try:
        await attacker.send(_hostile_frames()[kind])
    except ConnectionClosed:
        pass
    code = await _closed_without_data(attacker)
    assert code in (1007, 1009, 3501), code
    await _still_receives(bystander, alice, org["slug"])
    await bystander.close()


async def test_the_frame_limit_itself_is_enforced_by_the_server(node, settings, services):
    """One byte over the configured frame limit closes with 1009 (message too big)."""
    alice, bob, org = await _team(node, settings, services)
    ws = await _connected(node, await connection_token(bob, org["slug"]))
    try:
        await ws.send("x" * (limits.MAX_WS_FRAME_BYTES + 1))
    except ConnectionClosed:
        pass
    assert await _closed_without_data(ws) == 1009


def _raw_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def test_a_text_frame_of_invalid_utf8_is_closed_with_1007(node, settings, services):
    """A text frame must be UTF-8 (RFC 6455 §8.1); the client libraries refuse to send one, so it is written by hand."""
    alice, bob, org = await _team(node, settings, services)
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
    alice, bob, org = await _team(node, settings, services)
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
    alice, bob, org = await _team(node, settings, services)
    for _ in range(20):
        ws = await websockets.connect(node.ws_url)
        await ws.send(b"\xff" * 100)
        await _closed_without_data(ws)
    assert (await alice.get("/readyz")).status_code == 200
    bystander = await _connected(node, await connection_token(alice, org["slug"]))
    await _still_receives(bystander, alice, org["slug"])
    await bystander.close()
