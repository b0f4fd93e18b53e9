"""The WebSocket endpoint: the only code that touches the socket.

Order of a connection's life: Origin checked before the upgrade is accepted; the first frame must
be a `connect` command with a connection token; the token, the sign-in behind it, the membership and
the Feeds tab are checked before anything is subscribed; then the hub registers the connection and
recovers what the client asked for; then three loops run until one ends: reading commands, writing
queued frames (coalesced: everything queued goes out in one frame), and pinging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from sqlalchemy import select
from starlette.websockets import WebSocket, WebSocketDisconnect

from feeds_server import __version__, metrics
from feeds_server.domain import network
from feeds_server.domain import permissions as perms
from feeds_server.realtime import conn_tokens
from feeds_server.realtime import protocol as proto
from feeds_server.realtime.hub import Connection, Hub, RecoverRequests
from feeds_server.services import Services
from feeds_server.store.graph import load_graph
from feeds_server.store.models import AuthToken, Membership, Org, Profile
from feeds_server.store.scope import org_session

log = logging.getLogger("feeds_server.realtime")

CONNECT_TIMEOUT = 10.0
PATH = "/connection/websocket"


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """F-SEC-2. Browsers always send Origin; a request without one is not a browser's and is
    authenticated by its token alone. `null`, look-alikes and other ports are refused."""
    if origin is None:
        return True
    return origin.rstrip("/").lower() in {a.rstrip("/").lower() for a in allowed}


async def websocket_endpoint(ws: WebSocket) -> None:
    services: Services = ws.app.state.services
    hub: Hub = ws.app.state.hub
    if not origin_allowed(ws.headers.get("origin"), services.settings.allowed_origins):
        await ws.close(code=1008)  # before accept: the upgrade is answered 403
        return
    await ws.accept()
    conn: Connection | None = None
    try:
        conn = await _handshake(ws, services, hub)
        if conn is not None:
            await _serve(ws, services, hub, conn)
    except WebSocketDisconnect:
        pass
    finally:
        if conn is not None:
            await hub.disconnect(conn)
            if ws.app.state.rates.connections_cap:
                await ws.app.state.limiter.close_connection(conn.user_id, conn.client_id)


async def _close(ws: WebSocket, disconnect: proto.Disconnect) -> None:
    metrics.WS_DISCONNECTS.labels(str(disconnect.code)).inc()
    with contextlib.suppress(Exception):
        await ws.close(code=disconnect.code, reason=disconnect.reason)


async def _send(ws: WebSocket, frame: bytes) -> None:
    await ws.send_text(frame.decode())


async def _handshake(ws: WebSocket, services: Services, hub: Hub) -> Connection | None:
    try:
        message = await asyncio.wait_for(ws.receive(), timeout=CONNECT_TIMEOUT)
    except asyncio.TimeoutError:
        await _close(ws, proto.DISCONNECT_STALE)
        return None
    if message["type"] == "websocket.disconnect":
        return None
    try:
        commands = proto.decode_commands(message.get("text") or message.get("bytes") or b"")
    except proto.ProtocolError as exc:
        await _close(ws, exc.disconnect)
        return None
    if not commands or commands[0].kind != "connect":
        await _close(ws, proto.DISCONNECT_BAD_REQUEST)
        return None
    cmd = commands[0]
    token = cmd.params.get("token") or ""
    try:
        claims = conn_tokens.verify(services.settings.secret_key, token, time.time())
    except conn_tokens.ExpiredToken:
        await _send(ws, proto.encode_error(cmd.id, proto.ERROR_TOKEN_EXPIRED, "token expired"))
        await _close(ws, proto.DISCONNECT_INVALID_TOKEN)
        return None
    except conn_tokens.InvalidToken:
        await _close(ws, proto.DISCONNECT_INVALID_TOKEN)
        return None
    peer = ws.client.host if ws.client else None
    address = network.client_address(peer, ws.headers.get("x-forwarded-for"), services.settings.trusted_proxies)
    member = await _member(services, claims, address)
    if member is None:
        await _close(ws, proto.DISCONNECT_INVALID_TOKEN)
        return None
    role_id, profile_id, channels = member
    conn = Connection(uuid.uuid4().hex, claims.user_id, claims.org_id, claims.auth_token_id, profile_id, role_id)
    recover_requests = _recover_requests(cmd.params.get("subs"))
    settings = services.settings

    def make_reply(subs: dict[str, dict[str, Any]]) -> bytes:
        result = {
            "client": conn.client_id,
            "version": __version__,
            "subs": subs,
            "ping": int(settings.ws_ping_interval),
            "pong": True,
        }
        return proto.encode_reply(cmd.id, "connect", result)

    cap, limiter = ws.app.state.rates.connections_cap, ws.app.state.limiter
    if cap and not await limiter.open_connection(conn.user_id, conn.client_id, cap):
        ws.app.state.rates.refused["ws_connections_per_user"].inc()
        await _close(ws, proto.DISCONNECT_CONNECTION_LIMIT)
        return None
    try:
        await hub.connect(conn, channels, recover_requests, make_reply)
    except BaseException:
        if cap:
            await limiter.close_connection(conn.user_id, conn.client_id)
        raise
    return conn


async def _member(services: Services, claims: conn_tokens.ConnectionClaims, address: str | None) -> tuple[int | None, int, list[str]] | None:
    """(role, profile, channels) of a live sign-in of a member with the Feeds tab, from an allowed
    address (F-SEC-4), else None."""
    async with org_session(services.sessions, claims.org_id) as session:
        org = (await session.execute(select(Org).where(Org.id == claims.org_id))).scalar_one_or_none()
        if org is None or not network.allowed(address, org.ip_allowlist or []):
            return None
        auth = (await session.execute(select(AuthToken).where(AuthToken.id == claims.auth_token_id))).scalar_one_or_none()
        now = services.clock()
        if auth is None or auth.user_id != claims.user_id or auth.revoked_at is not None or auth.expires_at <= now:
            return None
        row = (
            await session.execute(
                select(Membership, Profile).join(Profile, Profile.id == Membership.profile_id).where(Membership.user_id == claims.user_id)
            )
        ).first()
        if row is None:
            return None
        membership, profile = row
        if perms.FEEDS_TAB not in perms.effective_permissions(profile.permissions, membership.is_super_admin):
            return None
        graph = await load_graph(session)
        return membership.role_id, membership.profile_id, graph.reader_channels(claims.user_id, membership.role_id)


def _recover_requests(subs: Any) -> RecoverRequests:
    out: RecoverRequests = {}
    if not isinstance(subs, dict):
        return out
    for channel, req in subs.items():
        if isinstance(channel, str) and isinstance(req, dict) and req.get("recover"):
            offset = req.get("offset", 0)
            epoch = req.get("epoch", "")
            if isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0 and isinstance(epoch, str):
                out[channel] = (epoch, offset)
    return out


async def _serve(ws: WebSocket, services: Services, hub: Hub, conn: Connection) -> None:
    state = {"last_pong": time.monotonic()}
    tasks = [
        asyncio.create_task(_writer(ws, conn)),
        asyncio.create_task(_reader(ws, conn, state)),
        asyncio.create_task(_pinger(conn, services, state)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if conn.close_request is not None:
        await _close(ws, conn.close_request)


async def _writer(ws: WebSocket, conn: Connection) -> None:
    while True:
        await conn.wake.wait()
        conn.wake.clear()
        if conn.outbox:
            frames = list(conn.outbox)
            conn.outbox.clear()
            await _send(ws, proto.join_frames(frames))
        if conn.close_request is not None:
            return


async def _reader(ws: WebSocket, conn: Connection, state: dict[str, float]) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            commands = proto.decode_commands(message.get("text") or message.get("bytes") or b"")
        except proto.ProtocolError as exc:
            conn.request_close(exc.disconnect)
            return
        for cmd in commands:
            reply = _answer(cmd, state)
            if reply is not None:
                conn.push(reply)


def _answer(cmd: proto.Command, state: dict[str, float]) -> bytes | None:
    """Commands after connect. Subscriptions are server-side only: clients cannot pick channels."""
    if cmd.kind == "pong":
        state["last_pong"] = time.monotonic()
        return None
    if cmd.kind == "send":
        return None
    if cmd.kind == "ping":
        return proto.encode_reply(cmd.id, "ping", {})
    if cmd.kind == "refresh":
        return proto.encode_reply(cmd.id, "refresh", {"client": "", "version": __version__, "expires": False})
    if cmd.kind in {"subscribe", "unsubscribe", "publish", "sub_refresh"}:
        return proto.encode_error(cmd.id, proto.ERROR_PERMISSION_DENIED, "permission denied")
    if cmd.kind in {"presence", "presence_stats", "history"}:
        return proto.encode_error(cmd.id, proto.ERROR_NOT_AVAILABLE, "not available")
    if cmd.kind == "connect":
        return proto.encode_error(cmd.id, proto.ERROR_BAD_REQUEST, "already connected")
    return proto.encode_error(cmd.id, proto.ERROR_METHOD_NOT_FOUND, "method not found")


async def _pinger(conn: Connection, services: Services, state: dict[str, float]) -> None:
    interval = services.settings.ws_ping_interval
    timeout = services.settings.ws_pong_timeout
    while True:
        await asyncio.sleep(interval)
        if time.monotonic() - state["last_pong"] > interval + timeout:
            conn.request_close(proto.DISCONNECT_NO_PONG)
            return
        conn.push(proto.encode_ping())


__all__ = ["PATH", "origin_allowed", "websocket_endpoint"]
