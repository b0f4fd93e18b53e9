"""Slow and oversized requests against a real node: a client that sends its head or its body slowly,
or never finishes them, holds no database connection, transaction or lock, makes no other request
wait, and is answered (431, 408) and closed within the node's bounds (api/http_wire.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from feeds_server import limits
from tests import factory
from tests.realtime.conftest import node_env
from tests.ops.test_metrics import sample, scrape
from tests.realtime.helpers import actor_on
from tests.server import ServerProcess


@pytest.fixture
def slow_node(settings, services, tmp_path: Path) -> Iterator[ServerProcess]:  # type: ignore[no-untyped-def]
    """A node with short read bounds and a small pool, so that holding it would show at once."""
    env = node_env(settings, FEEDS_HEADER_TIMEOUT="1.5", FEEDS_BODY_TIMEOUT="2", FEEDS_DB_POOL_SIZE="4", FEEDS_RATE_LIMITS="false")
    server = ServerProcess(env, log_path=tmp_path / "node.log").start()
    yield server
    server.stop()


async def _open(node: ServerProcess, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(head)
    await writer.drain()
    return reader, writer


def _post_head(path: str, token: str, length: int, ctype: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def _answer(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the node sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), within)


async def test_half_sent_bodies_hold_no_connection_or_lock(slow_node, settings):
    """Ten stalled sign-ups with a bearer token, and stalled comments by a real member (more than
    the pool's four connections): every honest request still answers at once, on SQLite (one write
    lock) and on PostgreSQL; the stalled ones get 408 when the body time is up, and are closed."""
    owner = await actor_on(slow_node.url, factory.unique("Owner"))
    org = await factory.create_org(owner)
    base = f"/api/v1/orgs/{org['slug']}"
    post = (await owner.post(f"{base}/posts", json={"body": "first"})).json()["post"]
    stalled = []
    for _ in range(10):
        stalled.append(await _open(slow_node, _post_head("/api/v1/auth/signup", "fst_x", 72) + b'{"ema'))
    for _ in range(6):
        stalled.append(await _open(slow_node, _post_head(f"{base}/posts/{post['id']}/comments", owner.token, 200) + b'{"bo'))
    started = time.monotonic()
    for call in (owner.get("/api/v1/me"), owner.get(f"{base}/feed"), owner.post(f"{base}/posts", json={"body": "while stalled"})):
        r = await call
        assert r.status_code in (200, 201), r.text
    assert time.monotonic() - started < 1.5, "an honest request waited on a stalled one"
    answers = await asyncio.gather(*(_answer(reader, 10) for reader, _ in stalled))
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"request_timeout"' in answer and b"connection: close" in answer.lower()
    for _, writer in stalled:
        writer.close()
    comments = (await owner.get(f"{base}/posts/{post['id']}/comments")).json()["comments"]
    assert comments == []


async def test_a_body_sent_slowly_but_in_time_is_accepted(slow_node, settings):
    owner = await actor_on(slow_node.url, factory.unique("Owner"))
    org = await factory.create_org(owner)
    body = b'{"body": "slow but steady"}'
    reader, writer = await _open(slow_node, _post_head(f"/api/v1/orgs/{org['slug']}/posts", owner.token, len(body)))
    for i in range(0, len(body), 9):
        writer.write(body[i : i + 9])
        await writer.drain()
        await asyncio.sleep(0.3)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 201 "), head
    writer.close()


async def test_a_head_that_never_ends_is_refused_with_431_at_the_bound(slow_node):
    """A head past 16 KiB is answered 431 and closed, without waiting for its end."""
    reader, writer = await _open(slow_node, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"a" * 20_000)
    answer = await _answer(reader, 5)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"headers_too_large"' in answer
    writer.close()
    async with httpx.AsyncClient(base_url=slow_node.url) as c:
        assert sample(await scrape(c), "feeds_http_refused_total", reason="head_too_large") >= 1


async def test_50_mb_of_header_are_cut_off_early(slow_node):
    """A client streaming a header as fast as it can is cut off after a few hundred KiB at most,
    not after 50 MB: the node never holds more than the bound and one read."""
    reader, writer = await _open(slow_node, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: ")
    sent = 0
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        while sent < 50 * 1024 * 1024:
            writer.write(b"a" * 4096)
            await writer.drain()
            sent += 4096
    assert sent < 8 * 1024 * 1024, sent
    writer.close()


@pytest.mark.parametrize("extra, status", [(0, 200), (1, 431)])
async def test_the_head_limit_boundary(slow_node, extra, status):
    """A complete head of exactly `MAX_REQUEST_HEAD_BYTES` is served; one byte more is refused."""
    # The bound counts the request target and each header's name and value plus 4 bytes of framing.
    counted_without_fill = len(b"/healthz") + (len(b"host") + len(b"x") + 4) + (len(b"x-fill") + 4)
    fill = b"f" * (limits.MAX_REQUEST_HEAD_BYTES - counted_without_fill + extra)
    reader, writer = await _open(slow_node, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: " + fill + b"\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    writer.close()


async def test_a_slowloris_head_is_closed_at_the_header_timeout(slow_node):
    """One header line every 0.3 s never finishes the head: closed at 1.5 s, with nothing asked yet."""
    reader, writer = await _open(slow_node, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < 6:
        try:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        try:
            if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                closed = True
                break
        except asyncio.TimeoutError:
            pass
    assert closed and time.monotonic() - started < 3.5
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(slow_node):
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_node.port)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 1.0 < time.monotonic() - started < 3.5
    writer.close()


async def test_keep_alive_requests_each_get_their_own_head_time(slow_node):
    """One connection kept alive past the first request's head bound (1.5 s) still serves the next
    requests: each head gets its own time. One socket, so a reconnect cannot hide a close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_node.port)
    try:
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            await asyncio.sleep(1.0)
    finally:
        writer.close()
