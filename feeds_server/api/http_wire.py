"""The HTTP/1.1 connection under uvicorn, bounded in bytes and in time before the application sees it.

uvicorn's httptools protocol buffers a request's head for as long as it keeps arriving: a header
that never ends grows the node's memory without limit, and a client sending one byte every few
seconds keeps its connection (and, worse, whatever the application holds while it waits for the
body) for ever. Each connection here is held to:

- a head (request line and headers) of at most `limits.MAX_REQUEST_HEAD_BYTES`: 431 and closed above;
- a head finished within `Settings.header_timeout` of the connection opening or of the request's
  first byte: closed without an answer (nothing was asked yet);
- a body finished within `Settings.body_timeout` of the head (`upload_timeout` for multipart):
  408 if no answer has started, then closed, whether or not the application was reading it.

Time bounds are met within a second (`Deadlines`: one sweep per process, not a timer per request).
The application then never waits on a client for longer than these bounds, and reads bodies before
it opens a database session (api/pipeline.py), so a slow client costs a socket and a timer only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
import weakref
from typing import Any

import orjson

from feeds_server import limits
from feeds_server.runtime import metrics
from feeds_server.config import Settings
from feeds_server.runtime.uvicorn_parts import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("feeds_server.api")


class _HeadTooLarge(Exception):
    """Raised inside the parser's callbacks: stops parsing; the protocol answers 431."""


def error_bytes(status: int, code: str, message: str) -> bytes:
    """A complete `Connection: close` response in the API's error shape, written by the protocol itself."""
    rid = uuid.uuid4().hex
    body = orjson.dumps({"error": {"code": code, "message": message, "request_id": rid}})
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"x-request-id: " + rid.encode() + b"\r\n",
        b"x-content-type-options: nosniff\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


_NONE, _HEAD, _BODY = 0, 1, 2  # what a connection's deadline is for


class Deadlines:
    """One timer per event loop that closes the connections whose deadline has passed.

    A timer of their own for each request's head and body (arm, then cancel) cost about 3 µs a
    request, a few per cent of a plain post; a deadline is a float set on the connection, and this
    sweep reads them all a few times a second (the HTTP connections only: a WebSocket leaves it
    when it upgrades). A deadline is met within one `interval` of its time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.connections: set[GuardedHttpProtocol] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, conn: GuardedHttpProtocol) -> None:
        self.connections.add(conn)
        if self._handle is None:
            self._handle = self.loop.call_later(self.interval, self._sweep)

    def discard(self, conn: GuardedHttpProtocol) -> None:
        self.connections.discard(conn)

    def _sweep(self) -> None:
        self._handle = None
        now = self.loop.time()
        for conn in [c for c in self.connections if c.deadline <= now]:
            try:
                conn.expire()
            except Exception:  # one connection's failure must not stop the sweep for the others
                log.exception("closing a connection past its deadline failed")
                self.connections.discard(conn)
        if self.connections:
            self._handle = self.loop.call_later(self.interval, self._sweep)


_sweeps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above; built for a node by `http_protocol`."""

    header_timeout = 10.0
    body_timeout = 10.0
    upload_timeout = 120.0
    deadline = math.inf  # loop time after which `expire` runs
    _waiting = _NONE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_raw = 0  # bytes received since the head began (counted before parsing)
        self._head_too_large = False
        sweep = _sweeps.get(self.loop)
        if sweep is None:
            interval = min(1.0, max(0.05, min(self.header_timeout, self.body_timeout) / 8))
            sweep = _sweeps[self.loop] = Deadlines(self.loop, interval)
        self._sweep = sweep

    # Connection life
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait(_HEAD, self.header_timeout)
        self._sweep.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._sweep.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_raw += len(data)
        super().data_received(data)
        # A head still unfinished past the bound: the parser holds it all, so stop here.
        if self._in_head and self._head_raw > limits.MAX_REQUEST_HEAD_BYTES and not self.transport.is_closing():
            self._refuse_head()

    def handle_websocket_upgrade(self) -> None:
        self._sweep.discard(self)  # the WebSocket protocol has its own pings and limits from here on
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:  # the parser stopped on our own exception
            self._refuse_head()
            return
        super().send_400_response(msg)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._waiting == _NONE:  # a request after a finished one: its head gets its own time
            self._wait(_HEAD, self.header_timeout)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_raw = 0
        self._waiting, self.deadline = _NONE, math.inf
        # One pass over the headers (this runs for every request): the head's size, measured here for
        # a head that arrived whole in one read, and whether a body follows, and of which kind.
        size = len(self.url)
        body = upload = False
        for name, value in self.headers:
            size += len(name) + len(value) + 4
            if name == b"content-length":
                body = value != b"0"
            elif name == b"transfer-encoding":
                body = True
            elif name == b"content-type":
                upload = value[:10].lower() == b"multipart/"
        if size > limits.MAX_REQUEST_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLarge()  # the parser stops; uvicorn's answer to a parser error becomes 431
        super().on_headers_complete()
        if body and not (self.parser.should_upgrade() and self._should_upgrade()):
            self._waiting, self.deadline = _BODY, self.loop.time() + (self.upload_timeout if upload else self.body_timeout)

    def on_message_complete(self) -> None:
        self._waiting, self.deadline = _NONE, math.inf
        super().on_message_complete()

    # Bounds
    def _wait(self, what: int, seconds: float) -> None:
        self._waiting, self.deadline = what, self.loop.time() + seconds

    def expire(self) -> None:
        """The deadline has passed (called by `Deadlines`)."""
        waiting = self._waiting
        self._waiting, self.deadline = _NONE, math.inf
        if self.transport.is_closing():
            return
        if waiting == _HEAD and self._in_head:
            metrics.HTTP_REFUSED.labels("head_timeout").inc()
            self.transport.close()
        elif waiting == _BODY:
            self._body_expired()

    def _refuse_head(self) -> None:
        metrics.HTTP_REFUSED.labels("head_too_large").inc()
        self._waiting, self.deadline = _NONE, math.inf
        self._in_head = False
        message = f"request line and headers over {limits.MAX_REQUEST_HEAD_BYTES} bytes"
        self.transport.write(error_bytes(431, "headers_too_large", message))
        self.transport.close()

    def _body_expired(self) -> None:
        metrics.HTTP_REFUSED.labels("body_timeout").inc()
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            message = "the request body did not arrive in time"
            self.transport.write(error_bytes(408, "request_timeout", message))
        if cycle is not None and not cycle.response_complete:
            # The application's next receive answers http.disconnect; what it sends goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def http_protocol(settings: Settings) -> type[GuardedHttpProtocol]:
    """The protocol class for uvicorn's `http=`, with this node's timeouts."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
            "upload_timeout": settings.upload_timeout,
        },
    )
