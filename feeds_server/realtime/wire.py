"""The WebSocket transport under uvicorn: its `websockets-sansio` protocol, plus a synchronous write
of frames made once for many sockets.

Fan-out writes one publication to thousands of sockets. Through ASGI every socket costs a
coroutine call, a decode and re-encode of the text and its own framing. Here the frame is built
once (`text_frame`) and each socket that can take it now gets the same bytes with one
`transport.write`, as `websockets.broadcast` does. A socket whose buffer is full, or one using
compression (each has its own deflate state), is written the ASGI way, after waiting.

The endpoint finds this protocol under the scope's extensions (`EXTENSION`); under any other
server it is absent and every write goes through ASGI.
"""

from __future__ import annotations

import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

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
