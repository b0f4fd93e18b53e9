"""The WebSocket endpoint: the only code that touches the socket.

Order of a connection's life: Origin checked before the upgrade is accepted; the first frame must
be a `connect` command with a connection token; the token, the sign-in behind it, the membership and
the Feeds tab are checked before anything is subscribed; then the hub registers the connection and
recovers what the client asked for; then the endpoint reads commands until the client leaves.

Writing needs no task of its own: the hub writes each frame straight to the socket when it takes it
at once (under uvicorn, the same framed bytes for every subscriber: `wire.py`). Only when the
socket's buffer is full does a task start, which sends everything queued meanwhile in one frame
(coalesced, in order) and ends. Pings come from the hub's one timer for all connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from feeds_server import __version__
from feeds_server.runtime import metrics
from feeds_server.domain import network
from feeds_server.realtime import conn_tokens
from feeds_server.realtime import protocol as proto
from feeds_server.realtime.admission import Admitted
from feeds_server.realtime.hub import Connection, Hub, RecoverRequests
from feeds_server.realtime.wire import EXTENSION as WIRE
from feeds_server.realtime.wire import WireProtocol, text_frame
from feeds_server.runtime.services import Services

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
            await _serve(ws, conn)
    except WebSocketDisconnect:
        pass
    finally:
        if conn is not None:
            await hub.disconnect(conn)
            conn.sink = None  # the connection and its socket refer to each other: freed now, not by the collector
            if ws.app.state.rates.connections_cap:
                await ws.app.state.limiter.close_connection(conn.user_id, conn.client_id)


async def _close(ws: WebSocket, disconnect: proto.Disconnect, wire: WireProtocol | None = None) -> None:
    metrics.WS_DISCONNECTS.labels(str(disconnect.code)).inc()
    if wire is not None and wire.close_now(disconnect.code, disconnect.reason):
        return
    with contextlib.suppress(Exception):
        await ws.close(code=disconnect.code, reason=disconnect.reason)


async def _send(ws: WebSocket, frame: bytes) -> None:
    await ws.send_text(frame.decode())


class _Socket:
    """The hub's way to one client's socket (`hub.Sink`)."""

    __slots__ = ("ws", "conn", "wire", "task")

    def __init__(self, ws: WebSocket, conn: Connection) -> None:
        self.ws, self.conn = ws, conn
        self.wire: WireProtocol | None = ws.scope.get("extensions", {}).get(WIRE)
        self.task: asyncio.Task[None] | None = None

    def write_now(self, frame: bytes) -> bool:
        return self.task is None and self.wire is not None and self.wire.write_frame(_framed(frame))

    def flush_later(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        conn = self.conn
        try:
            while conn.outbox and conn.close_request is None:
                frames = list(conn.outbox)
                conn.outbox.clear()
                await _send(self.ws, proto.join_frames(frames))
            if conn.close_request is not None:
                await _close(self.ws, conn.close_request, self.wire)
        except Exception:  # noqa: BLE001 - the client is gone; the reader sees the disconnect
            pass
        finally:
            self.task = None

    async def stop(self) -> None:
        task = self.task
        if task is not None:
            if self.conn.close_request is None:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# One publication goes to every subscriber as the same object: frame it once.
_last_framed: tuple[bytes, bytes] = (b"", text_frame(b""))


def _framed(frame: bytes) -> bytes:
    global _last_framed
    if _last_framed[0] is not frame:
        _last_framed = (frame, text_frame(frame))
    return _last_framed[1]


async def _handshake(ws: WebSocket, services: Services, hub: Hub) -> Connection | None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):  # a timer, where wait_for would also start a task
            message = await ws.receive()
    except TimeoutError:
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
    member = await _member(hub, claims, address)
    if member is None:
        await _close(ws, proto.DISCONNECT_INVALID_TOKEN)
        return None
    conn = Connection(_client_id(), claims.user_id, claims.org_id, claims.auth_token_id, member.profile_id, member.role_id)
    conn.checked_at = member.checked_at
    conn.sink = _Socket(ws, conn)
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
        await hub.connect(conn, recover_requests, make_reply)
    except BaseException:
        hub.presence.left(conn)  # it may have joined before the failure: not counted as online
        if cap:
            await limiter.close_connection(conn.user_id, conn.client_id)
        raise
    return conn


# Client ids: unique across nodes and restarts (a random prefix per process), cheap per connect.
_ids = itertools.count(1)
_ID_PREFIX = uuid.uuid4().hex[:16]


def _client_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):016x}"


async def _member(hub: Hub, claims: conn_tokens.ConnectionClaims, address: str | None) -> Admitted | None:
    """A live sign-in of a member with the Feeds tab, from an allowed address (F-SEC-4), else None.
    The allow-list comes from the hub's copy of the org; the sign-in is read together with those of
    the other connects arriving at the same moment (`admission.py`)."""
    allowlist = await hub.ip_allowlist(claims.org_id)
    if allowlist is None or not network.allowed(address, allowlist):
        return None
    return await hub.admissions.check(claims.org_id, claims.user_id, claims.auth_token_id)


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


async def _serve(ws: WebSocket, conn: Connection) -> None:
    """Read commands until the client leaves or the connection is closed."""
    sock = conn.sink
    assert isinstance(sock, _Socket)
    if conn.close_request is not None or conn.outbox:
        sock.flush_later()  # closed or queued while connecting
    try:
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
                reply = _answer(cmd, conn)
                if reply is not None:
                    conn.push(reply)
    finally:
        await sock.stop()


def _answer(cmd: proto.Command, conn: Connection) -> bytes | None:
    """Commands after connect. Subscriptions are server-side only: clients cannot pick channels."""
    if cmd.kind == "pong":
        conn.last_pong = time.monotonic()
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


__all__ = ["PATH", "origin_allowed", "websocket_endpoint"]
