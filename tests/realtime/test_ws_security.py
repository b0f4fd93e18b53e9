"""WebSocket security: Origin allow-list, authentication before any data, revocation within 1 s
(F-SEC-1, F-SEC-2, F-ORG-9)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feeds_server.realtime import conn_tokens
from tests import factory
from tests.realtime.helpers import actor_on, connection_token


async def _member_pair(node, settings, services):  # type: ignore[no-untyped-def]
    alice = await actor_on(node.url, factory.unique("Alice"))
    bob = await actor_on(node.url, factory.unique("Bob"))
    org = await factory.create_org(alice, factory.unique("sec"))
    await factory.invite_and_join(alice, org["slug"], bob, settings.mail_dir, services)
    return alice, bob, org


async def _connect(node, token: str, origin: str | None = None):  # type: ignore[no-untyped-def]
    ws = await websockets.connect(node.ws_url, origin=origin)
    await ws.send(orjson.dumps({"id": 1, "connect": {"token": token}}).decode())
    return ws


async def _close_code(ws, timeout: float = 3.0) -> int:  # type: ignore[no-untyped-def]
    """Read until the server closes; no frame may carry data before that."""
    frames = []
    try:
        while True:
            frames.append(await asyncio.wait_for(ws.recv(), timeout))
    except ConnectionClosed as exc:
        assert not any(b'"push"' in (f.encode() if isinstance(f, str) else f) for f in frames), frames
        return exc.rcvd.code if exc.rcvd else -1


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://allowed.example.evil.example", "http://allowed.example:8080", "https://allowed.example",
     "http://allowed.example@evil.example", "http://evil.example/http://allowed.example", "http://sub.allowed.example",
     "ws://allowed.example", "http://allowed.exampl"],
)
async def test_foreign_origins_are_refused_before_the_upgrade(node, origin):
    """F-SEC-2: foreign, `null`, look-alike, port- and scheme-variant Origins get HTTP 403."""
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(node.ws_url, origin=origin)
    assert info.value.response.status_code == 403


async def test_allowed_origin_connects(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    ws = await _connect(node, await connection_token(bob, org["slug"]), origin="http://allowed.example")
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 3))
    assert reply["id"] == 1 and "org" in reply["connect"]["subs"]
    await ws.close()


@pytest.mark.parametrize("token", ["", "garbage", "fsc_" + "A" * 40 + "." + "B" * 43])
async def test_missing_or_bad_token_is_refused_before_any_data(node, token):
    ws = await _connect(node, token)
    assert await _close_code(ws) == 3500


async def test_token_signed_with_another_key_is_refused(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    forged = conn_tokens.mint("not-the-key", conn_tokens.ConnectionClaims(bob.id, org["id"], 1, int(time.time()) + 60))
    assert await _close_code(await _connect(node, forged)) == 3500


async def test_expired_token_gets_token_expired_error(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    expired = conn_tokens.mint("test-secret-key", conn_tokens.ConnectionClaims(bob.id, org["id"], 1, int(time.time()) - 1))
    ws = await _connect(node, expired)
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 3))
    assert reply["error"]["code"] == 109
    await _close_code(ws)


async def test_first_frame_must_be_connect(node):
    ws = await websockets.connect(node.ws_url)
    await ws.send(orjson.dumps({"id": 1, "subscribe": {"channel": "org"}}).decode())
    assert await _close_code(ws) == 3501


async def test_no_token_for_an_org_one_is_not_a_member_of(node, settings, services):
    """A member of another org cannot get a connection token for this one (404 as for no org)."""
    alice, bob, org = await _member_pair(node, settings, services)
    outsider = await actor_on(node.url, factory.unique("Eve"))
    await factory.create_org(outsider, factory.unique("other"))
    r = await outsider.post(f"/api/v1/orgs/{org['slug']}/realtime/token")
    assert r.status_code == 404


async def test_client_cannot_subscribe_to_channels_itself(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    ws = await _connect(node, await connection_token(bob, org["slug"]))
    await ws.recv()
    await ws.send(orjson.dumps({"id": 2, "subscribe": {"channel": "g:999"}}).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), 3))
    assert reply == {"id": 2, "error": {"code": 103, "message": "permission denied"}}
    await ws.close()


async def _timed_close(ws) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    code = await _close_code(ws, timeout=5)
    return code, time.monotonic() - start


async def test_sign_out_closes_connections_within_one_second(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    ws = await _connect(node, await connection_token(bob, org["slug"]))
    await ws.recv()
    task = asyncio.create_task(_timed_close(ws))
    assert (await bob.post("/api/v1/auth/signout")).status_code == 204
    code, took = await task
    assert code == 3500 and took < 1.0


async def test_removal_from_org_closes_connections_within_one_second(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    ws = await _connect(node, await connection_token(bob, org["slug"]))
    await ws.recv()
    task = asyncio.create_task(_timed_close(ws))
    assert (await alice.delete(f"/api/v1/orgs/{org['slug']}/members/{bob.id}")).status_code == 204
    code, took = await task
    assert code == 3503 and took < 1.0


async def test_deleting_the_org_closes_its_connections_within_one_second(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    ws_bob = await _connect(node, await connection_token(bob, org["slug"]))
    ws_alice = await _connect(node, await connection_token(alice, org["slug"]))
    await ws_bob.recv()
    await ws_alice.recv()
    tasks = [asyncio.create_task(_timed_close(ws)) for ws in (ws_bob, ws_alice)]
    assert (await alice.delete(f"/api/v1/orgs/{org['slug']}")).status_code == 204
    for code, took in await asyncio.gather(*tasks):
        assert code == 3503 and took < 1.0


async def test_losing_the_feeds_tab_closes_connections_within_one_second(node, settings, services):
    alice, bob, org = await _member_pair(node, settings, services)
    slug = org["slug"]
    r = await alice.post(f"/api/v1/orgs/{slug}/profiles", json={"name": "No feed", "permissions": []})
    profile_id = r.json()["profile"]["id"]
    ws = await _connect(node, await connection_token(bob, slug))
    await ws.recv()
    task = asyncio.create_task(_timed_close(ws))
    assert (await alice.patch(f"/api/v1/orgs/{slug}/members/{bob.id}", json={"profile_id": profile_id})).status_code == 200
    code, took = await task
    assert code == 3507 and took < 1.0
    r = await bob.post(f"/api/v1/orgs/{slug}/realtime/token")
    assert r.status_code == 403


async def test_joining_a_group_subscribes_live_and_group_posts_arrive(node, settings, services):
    """Group membership changes add subscriptions to live connections."""
    alice, bob, org = await _member_pair(node, settings, services)
    slug = org["slug"]
    ws = await _connect(node, await connection_token(bob, slug))
    reply = orjson.loads(await ws.recv())
    assert not any(ch.startswith("g:") for ch in reply["connect"]["subs"])
    r = await alice.post(f"/api/v1/orgs/{slug}/groups", json={"name": "Deals desk", "sources": [{"type": "user", "id": bob.id}]})
    gid = r.json()["group"]["id"]
    r = await bob.post(f"/api/v1/orgs/{slug}/posts", json={"body": "for the desk", "group_id": gid})
    assert r.status_code == 201
    seen: list[dict] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(
        m.get("push", {}).get("pub", {}).get("data", {}).get("type") == "post.created" for m in seen
    ):
        frame = await asyncio.wait_for(ws.recv(), 3)
        seen.extend(orjson.loads(line) for line in frame.split("\n") if line.strip() and line.strip() != "{}")
    subscribe = [m for m in seen if "subscribe" in m.get("push", {})]
    assert subscribe and subscribe[0]["push"]["channel"] == f"g:{gid}"
    pubs = [m["push"] for m in seen if "pub" in m.get("push", {}) and m["push"]["pub"]["data"]["type"] == "post.created"]
    assert pubs[0]["channel"] == f"g:{gid}"
    await ws.close()


async def test_connects_arriving_together_are_each_checked(node, settings, services):
    """Connect checks of one org are read in one batch; each still gets its own answer."""
    alice, bob, org = await _member_pair(node, settings, services)
    good = [await connection_token(alice, org["slug"]), await connection_token(bob, org["slug"])]
    signed_out = await actor_on(node.url, factory.unique("Carol"))
    await factory.invite_and_join(alice, org["slug"], signed_out, settings.mail_dir, services)
    dead = await connection_token(signed_out, org["slug"])
    assert (await signed_out.post("/api/v1/auth/signout")).status_code == 204
    sockets = await asyncio.gather(*(_connect(node, t) for t in [*good, dead, *good]))
    for ws in [sockets[0], sockets[1], sockets[3], sockets[4]]:
        assert '"connect"' in await asyncio.wait_for(ws.recv(), 3)
        await ws.close()
    assert await _close_code(sockets[2]) == 3500
