"""Graceful shutdown of `feeds-server serve` (docs/operations.md, "Graceful shutdown").

On SIGTERM (or Ctrl-C) a node, within `FEEDS_SHUTDOWN_TIMEOUT` seconds:

1. stops accepting connections and answers `/readyz` with 503;
2. asks every WebSocket client to go away with the protocol's 3001 "shutdown", which Centrifuge SDKs
   answer by reconnecting (through the balancer, to another node) and recovering what they missed;
   each connection first sends everything already queued for it;
3. lets HTTP requests in flight finish, then closes what is left (WebSockets still open with 1012);
4. stops the hub, the limiter and the database pool, and exits with status 0.

uvicorn alone would close WebSockets with 1012 before the application hears of the shutdown, so
this server runs steps 1–2 first and then hands over to uvicorn's own shutdown for 3–4.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from types import FrameType
from typing import Any

import uvicorn

from feeds_server.realtime import protocol as proto
from feeds_server.realtime.hub import Hub

# Share of the timeout given to WebSocket clients; HTTP requests run meanwhile and get the rest.
WEBSOCKET_SHARE = 0.5
# Kept back at the end for stopping the hub, the broker and the database pool.
CLOSING_SECONDS = 1.0


async def drain_connections(hub: Hub, deadline: float) -> None:
    """Ask every connection to close with 3001 and wait until they have, or until `deadline`
    (monotonic). Asked again each round, for connections that finished connecting meanwhile."""
    while hub.connection_count and time.monotonic() < deadline:
        for room in list(hub.rooms.values()):
            for conn in list(room.connections):
                conn.request_close(proto.DISCONNECT_SHUTDOWN)
        await asyncio.sleep(0.05)


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, timeout: float) -> None:
        super().__init__(config)
        self.timeout = timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        app: Any = self.config.app
        app.state.draining = True
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await drain_connections(app.state.hub, started + self.timeout * WEBSOCKET_SHARE)
        self.config.timeout_graceful_shutdown = max(0.5, started + self.timeout - CLOSING_SECONDS - time.monotonic())
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has stopped; a graceful stop on SIGTERM exits 0 instead.
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and captured and captured[-1] == sig:
            captured.pop()
