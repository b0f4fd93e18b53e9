"""The WebSocket transport under uvicorn: its `websockets-sansio` protocol, plus a synchronous write
of frames made once for many sockets and a short way through the opening handshake.

Fan-out writes one publication to thousands of sockets. Through ASGI every socket costs a
coroutine call, a decode and re-encode of the text and its own framing. Here the frame is built
once (`text_frame`) and each socket that can take it now gets the same bytes with one
`transport.write`, as `websockets.broadcast` does. A socket whose buffer is full, or one using
compression (each has its own deflate state), is written the ASGI way, after waiting.

The endpoint finds this protocol under the scope's extensions (`EXTENSION`); under any other
server it is absent and every write goes through ASGI.

When a crowd reconnects, the opening handshake is most of what a connect costs. uvicorn has
already parsed the upgrade request (httptools) and hands it over re-serialized; `websockets` would
parse it again, line by line, build header objects and a dated response, and uvicorn would then
rewrite those headers. A plain upgrade (GET, HTTP/1.1, one key, version 13, no subprotocol, no
compression to negotiate) is checked and answered here instead (`upgrade.py`), about 85 µs less
per connect; anything else takes `websockets`' way, which also answers every malformed request.
"""

from __future__ import annotations

import struct
from typing import Any
from urllib.parse import unquote

from websockets.protocol import State
from websockets.server import ServerProtocol

from feeds_server.realtime.upgrade import Upgrade, parse_upgrade, switching_protocols
from feeds_server.runtime.uvicorn_parts import (
    ClientDisconnected,
    WebSocketsSansIOProtocol,
    get_client_addr,
    get_path_with_query_string,
)

EXTENSION = "feeds.wire"


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame (RFC 6455 §5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class WireProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol that also writes ready-made frames without waiting."""

    # The fan-out asks every socket "can you take this now?": plain attributes answer it faster
    # than the `writable` event and the protocol's properties.
    paused = False  # the transport's buffer is above its high-water mark
    plain = True  # no extension (compression) negotiated: a shared frame is valid as is
    upgrade: Upgrade | None = None  # set while a plain upgrade awaits the app's accept

    def data_received(self, data: bytes) -> None:
        if not self.handshake_initiated and not self.config.ws_per_message_deflate:
            upgrade = parse_upgrade(data)
            if upgrade is not None:
                self._handle_plain_upgrade(upgrade)
                return
        super().data_received(data)

    def _handle_plain_upgrade(self, upgrade: Upgrade) -> None:
        """uvicorn's `handle_connect` for a request checked by `parse_upgrade`: the same ASGI scope.

        From here on bytes are frames, as after `websockets`' own parse of the request (frames that
        arrive before the app accepts wait in the queue); a refusal is still answered with an HTTP
        response (`reject` and `send_response` do not depend on the state)."""
        self.handshake_initiated = True
        self.upgrade = upgrade
        self.conn = ServerProtocol(state=State.OPEN, max_size=self.config.ws_max_size, logger=self.conn.logger)
        raw_path, _, query_string = upgrade.target.partition("?")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path),
            "raw_path": self.root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": upgrade.headers,
            "subprotocols": [],
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}, EXTENSION: self},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    async def send(self, message: Any) -> None:
        upgrade = self.upgrade
        if upgrade is None or message["type"] != "websocket.accept":
            self.upgrade = None
            await super().send(message)
            return
        # uvicorn's accept, with the 101 response written here.
        self.upgrade = None
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        self.logger.info('%s - "WebSocket %s" [accepted]', get_client_addr(self.scope), get_path_with_query_string(self.scope))
        if self.transport.is_closing():
            return
        self.handshake_complete = True
        headers = [*self.default_headers, *message.get("headers", [])]
        if message.get("subprotocol"):
            headers.append((b"sec-websocket-protocol", message["subprotocol"].encode("latin-1")))
        self.transport.write(switching_protocols(upgrade.key, headers))
        self.start_keepalive()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # The scope names this protocol and the protocol holds the scope: without this, every closed
        # connection's objects would wait for the cyclic collector, which then runs through them during
        # the next crowd of connects.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(EXTENSION, None)

    def pause_writing(self) -> None:
        self.paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self.paused = False
        super().resume_writing()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        self.plain = not self.conn.extensions
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = self

    def write_frame(self, frame: bytes) -> bool:
        """Write a frame made by `text_frame` if the socket takes it now; False: send it through ASGI."""
        if self.close_sent or self.disconnected or self.paused or not self.plain:
            return False
        if self.conn.state is not State.OPEN or self.transport.is_closing():
            return False
        self.transport.write(frame)
        return True

    def close_now(self, code: int, reason: str) -> bool:
        """ASGI `websocket.close` without first waiting for a full buffer to drain, so that a
        client that stopped reading is still closed. False if the socket is already closing."""
        if self.close_sent or self.disconnected or self.transport.is_closing() or not self.handshake_complete:
            return False
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
        return True
