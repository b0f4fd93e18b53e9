"""The short way through the opening handshake (feeds_server/realtime/upgrade.py, wire.py): it takes
exactly the requests `websockets` would accept, answers them with the same response, and leaves
everything else — and every compressed connection — to `websockets`."""

from __future__ import annotations

import asyncio
import base64
import os

import orjson
import pytest
import websockets
from websockets.datastructures import Headers
from websockets.server import ServerProtocol

from feeds_server.realtime.upgrade import parse_upgrade, switching_protocols
from tests import factory
from tests.realtime.conftest import node_env
from tests.realtime.helpers import connection_token
from tests.realtime.test_ws_security import _member_pair
from tests.server import ServerProcess

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
PLAIN = [
    (b"host", b"feeds.example"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13"), (b"origin", b"http://allowed.example"),
]


def _request(headers: list[tuple[bytes, bytes]], line: bytes = b"GET /connection/websocket?x=1 HTTP/1.1") -> bytes:
    """As uvicorn hands an upgrade to the WebSocket protocol."""
    return line + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"


def _replace(name: bytes, *values: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in PLAIN if n != name] + [(name, v) for v in values]


CASES = {
    "plain": _request(PLAIN),
    "browser, offering compression": _request(PLAIN + [(b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")]),
    "keep-alive, Upgrade": _request(_replace(b"connection", b"keep-alive, Upgrade")),
    "Upgrade in capitals": _request(_replace(b"upgrade", b"WebSocket")),
    "no Origin": _request([(n, v) for n, v in PLAIN if n != b"origin"]),
    "POST": _request(PLAIN, b"POST /connection/websocket HTTP/1.1"),
    "HTTP/1.0": _request(PLAIN, b"GET /connection/websocket HTTP/1.0"),
    "no key": _request([(n, v) for n, v in PLAIN if n != b"sec-websocket-key"]),
    "two keys": _request(_replace(b"sec-websocket-key", KEY, KEY)),
    "a 15-byte key": _request(_replace(b"sec-websocket-key", base64.b64encode(b"x" * 15))),
    "a key that is not base64": _request(_replace(b"sec-websocket-key", b"not*base64*at*all*xx==")),
    "version 8": _request(_replace(b"sec-websocket-version", b"8")),
    "no Connection: upgrade": _request(_replace(b"connection", b"keep-alive")),
    "Upgrade: h2c": _request(_replace(b"upgrade", b"h2c")),
    "two upgrades": _request(_replace(b"upgrade", b"websocket, h2c")),
    "two Origins": _request(_replace(b"origin", b"http://allowed.example", b"http://evil.example")),
}


def _by_websockets(request: bytes) -> tuple[int, bytes]:
    """What uvicorn's WebSocket protocol answers without the short way (its Date removed, its
    default headers added: here a fixed date)."""
    conn = ServerProtocol(max_size=65536)
    conn.receive_data(request)
    events = conn.events_received()
    if not events:
        return 400, b""
    response = conn.accept(events[0])
    if response.status_code == 101:
        del response.headers["Date"]
        response.headers.update(Headers([("date", "Sun, 29 Nov 2026 12:00:00 GMT")]))
    return response.status_code, response.serialize()


@pytest.mark.parametrize("case", list(CASES))
def test_the_short_way_takes_exactly_what_websockets_accepts_and_answers_the_same(case):
    request = CASES[case]
    status, response = _by_websockets(request)
    upgrade = parse_upgrade(request)
    if status != 101:
        assert upgrade is None
        return
    assert upgrade is not None
    assert upgrade.target == "/connection/websocket?x=1"
    assert upgrade.headers == [tuple(line.split(b": ", 1)) for line in request.split(b"\r\n")[1:-2]]
    assert switching_protocols(upgrade.key, [(b"date", b"Sun, 29 Nov 2026 12:00:00 GMT")]) == response


def test_a_subprotocol_or_an_incomplete_request_takes_the_long_way():
    assert parse_upgrade(_request(PLAIN + [(b"sec-websocket-protocol", b"centrifuge-protobuf")])) is None
    assert parse_upgrade(CASES["plain"][:-2]) is None
    assert parse_upgrade(b"") is None


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 65536
    length = bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return bytes([0x81]) + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class _Transport(asyncio.Transport):
    """The socket side of one connection, recorded (what the protocol writes, whether it closed)."""

    def __init__(self) -> None:
        super().__init__()
        self.out, self.closed = bytearray(), False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_frames_sent_before_the_upgrade_is_accepted_are_read_once_it_is():
    """A client that does not wait for the 101: its frames wait in the queue until the app accepts."""
    import uvicorn
    from uvicorn.server import ServerState

    from feeds_server.realtime.wire import WireProtocol

    async def echo(scope, receive, send):  # type: ignore[no-untyped-def]
        assert (await receive())["type"] == "websocket.connect"
        await asyncio.sleep(0.01)  # the early frame arrives meanwhile
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})

    config = uvicorn.Config(echo, ws=WireProtocol, ws_max_size=65536, log_config=None)
    config.load()
    protocol = WireProtocol(config=config, server_state=ServerState(), app_state={})
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.data_received(CASES["plain"])
    protocol.data_received(_masked_text_frame(b"early"))
    assert not transport.out  # nothing answered before the app accepts
    for _ in range(100):
        if b"echo early" in transport.out:
            break
        await asyncio.sleep(0.01)
    assert transport.out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), bytes(transport.out)
    assert transport.out.endswith(b"\x81\x0aecho early"), bytes(transport.out)


async def test_refusals_before_the_upgrade_are_still_http_responses(node):
    """A foreign Origin: 403 from the handshake state, whichever way the request came."""
    host, port = node.ws_url.split("//", 1)[1].split("/", 1)[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(_request(_replace(b"origin", b"http://evil.example"), b"GET /connection/websocket HTTP/1.1"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 403"), head
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and the connection closed
    writer.close()


async def test_with_compression_on_the_connection_negotiates_deflate_and_works(settings, services, tmp_path):  # type: ignore[no-untyped-def]
    node = ServerProcess(node_env(settings, FEEDS_WS_COMPRESSION="true"), log_path=tmp_path / "node.log").start()
    try:
        alice, bob, org = await _member_pair(node, settings, services)
        async with websockets.connect(node.ws_url, compression="deflate") as ws:
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
            await ws.send(orjson.dumps({"id": 1, "connect": {"token": await connection_token(bob, org["slug"])}}).decode())
            assert "connect" in orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            marker = factory.unique("deflated")
            assert (await alice.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": marker})).status_code == 201
            while marker not in (frame := await asyncio.wait_for(ws.recv(), 5)):
                pass
            assert marker in frame
    finally:
        node.stop()


async def test_a_closed_connection_is_freed_without_the_cyclic_collector():
    """Each closed connection left to the collector would be scanned during the next crowd of connects."""
    import gc
    import weakref

    import uvicorn
    from uvicorn.server import ServerState

    from feeds_server.realtime.wire import EXTENSION, WireProtocol

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        assert scope["extensions"][EXTENSION] is not None
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    config = uvicorn.Config(app, ws=WireProtocol, ws_max_size=65536, log_config=None)
    config.load()
    state = ServerState()
    gc.collect()
    gc.disable()
    try:
        protocol = WireProtocol(config=config, server_state=state, app_state={})
        protocol.connection_made(_Transport())
        protocol.data_received(CASES["plain"])
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        while state.tasks:
            await asyncio.sleep(0.01)
        freed = weakref.ref(protocol)
        del protocol
        assert freed() is None
    finally:
        gc.enable()
