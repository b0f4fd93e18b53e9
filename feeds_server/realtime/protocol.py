"""The Centrifuge bidirectional client protocol v2, JSON format, as plain functions (no I/O).

Source of truth: `definitions/client.proto` of the centrifugal/protocol repository, and the
behaviour of the Centrifuge server library that the SDKs are written against. In JSON format a
WebSocket text frame carries one or more JSON objects separated by newlines, in both directions.

Client → server: commands `{"id": N, "<method>": {...params}}`; an empty object `{}` is the
client's pong. Server → client: replies `{"id": N, "<method>": {...result}}` or
`{"id": N, "error": {"code", "message", "temporary"}}`; pushes `{"push": {"channel", "<type>": ...}}`;
an empty object `{}` is the server's ping. Publication `data` is embedded as raw JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

METHODS = (
    "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
    "history", "ping", "send", "rpc", "refresh", "sub_refresh",
)
_METHOD_SET = frozenset(METHODS)
MAX_COMMANDS_PER_FRAME = 100
MAX_ID = 2**32 - 1

# Error codes of replies (centrifuge errors.go).
ERROR_INTERNAL = 100
ERROR_UNAUTHORIZED = 101
ERROR_UNKNOWN_CHANNEL = 102
ERROR_PERMISSION_DENIED = 103
ERROR_METHOD_NOT_FOUND = 104
ERROR_ALREADY_SUBSCRIBED = 105
ERROR_LIMIT_EXCEEDED = 106
ERROR_BAD_REQUEST = 107
ERROR_NOT_AVAILABLE = 108
ERROR_TOKEN_EXPIRED = 109
ERROR_EXPIRED = 110
ERROR_TOO_MANY_REQUESTS = 111
ERROR_UNRECOVERABLE_POSITION = 112

# Unsubscribe push codes: below 2500 the client stays unsubscribed, from 2500 it resubscribes.
UNSUBSCRIBE_SERVER = 2000
UNSUBSCRIBE_INSUFFICIENT = 2500


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A close code and reason. 3000–3499: the client reconnects; 3500–3999: it does not."""

    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        return self.code < 3500


DISCONNECT_CONNECTION_CLOSED = Disconnect(3000, "connection closed")
DISCONNECT_SHUTDOWN = Disconnect(3001, "shutdown")
DISCONNECT_SERVER_ERROR = Disconnect(3004, "internal server error")
DISCONNECT_EXPIRED = Disconnect(3005, "connection expired")
DISCONNECT_SLOW = Disconnect(3008, "slow")
DISCONNECT_WRITE_ERROR = Disconnect(3009, "write error")
DISCONNECT_INSUFFICIENT_STATE = Disconnect(3010, "insufficient state")
DISCONNECT_FORCE_RECONNECT = Disconnect(3011, "force reconnect")
DISCONNECT_NO_PONG = Disconnect(3012, "no pong")
DISCONNECT_TOO_MANY_REQUESTS = Disconnect(3013, "too many requests")
DISCONNECT_INVALID_TOKEN = Disconnect(3500, "invalid token")
DISCONNECT_BAD_REQUEST = Disconnect(3501, "bad request")
DISCONNECT_STALE = Disconnect(3502, "stale")
DISCONNECT_FORCE_NO_RECONNECT = Disconnect(3503, "force disconnect")
DISCONNECT_CONNECTION_LIMIT = Disconnect(3504, "connection limit")
DISCONNECT_CHANNEL_LIMIT = Disconnect(3505, "channel limit")
DISCONNECT_INAPPROPRIATE_PROTOCOL = Disconnect(3506, "inappropriate protocol")
DISCONNECT_PERMISSION_DENIED = Disconnect(3507, "permission denied")
DISCONNECT_NOT_AVAILABLE = Disconnect(3508, "not available")
DISCONNECT_TOO_MANY_ERRORS = Disconnect(3509, "too many errors")


class ProtocolError(Exception):
    """The client broke the protocol; the connection closes with `disconnect`."""

    def __init__(self, message: str, disconnect: Disconnect = DISCONNECT_BAD_REQUEST) -> None:
        super().__init__(message)
        self.disconnect = disconnect


@dataclass(frozen=True, slots=True)
class Command:
    """One client command. `kind` is a method name, or `pong` for the empty command."""

    id: int
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def decode_commands(frame: bytes | str) -> list[Command]:
    """Parse a frame of newline-separated JSON commands; anything malformed raises ProtocolError."""
    raw = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
    lines = [line for line in raw.split(b"\n") if line.strip()]
    if not lines:
        raise ProtocolError("empty frame")
    if len(lines) > MAX_COMMANDS_PER_FRAME:
        raise ProtocolError("too many commands in one frame")
    return [_decode_one(line) for line in lines]


def _decode_one(line: bytes) -> Command:
    try:
        obj = orjson.loads(line)  # rejects invalid UTF-8, lone surrogates and nesting past 1024
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a command is a JSON object")
    if not obj:
        return Command(0, "pong")
    cmd_id = obj.get("id", 0)
    if isinstance(cmd_id, bool) or not isinstance(cmd_id, int) or not 0 <= cmd_id <= MAX_ID:
        raise ProtocolError("command id must be a non-negative integer")
    methods = [key for key in obj if key != "id"]
    if len(methods) != 1 or methods[0] not in _METHOD_SET:
        raise ProtocolError(f"unknown command {methods!r}")
    method = methods[0]
    params = obj[method]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(f"{method} parameters must be an object")
    if cmd_id == 0 and method not in {"send"}:
        raise ProtocolError("command id required")
    _check_types(method, params)
    return Command(cmd_id, method, params)


_STRING_FIELDS = {"token", "channel", "name", "version", "epoch", "method"}


def _check_types(method: str, params: dict[str, Any]) -> None:
    for key in _STRING_FIELDS & params.keys():
        if not isinstance(params[key], str):
            raise ProtocolError(f"{method}.{key} must be a string")
    offset = params.get("offset")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or offset < 0):
        raise ProtocolError(f"{method}.offset must be a non-negative integer")
    subs = params.get("subs")
    if subs is not None and not isinstance(subs, dict):
        raise ProtocolError(f"{method}.subs must be an object")


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def encode_reply(cmd_id: int, method: str, result: dict[str, Any]) -> bytes:
    return _dumps({"id": cmd_id, method: result})


def encode_error(cmd_id: int, code: int, message: str, temporary: bool = False) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if temporary:
        error["temporary"] = True
    return _dumps({"id": cmd_id, "error": error})


def encode_publication_push(channel: str, data: bytes, offset: int) -> bytes:
    """`data` is already-encoded JSON, embedded as is: encoded once, sent to many."""
    return _dumps({"push": {"channel": channel, "pub": {"data": orjson.Fragment(data), "offset": offset}}})


def encode_subscribe_push(channel: str, epoch: str, offset: int) -> bytes:
    """A server-side subscription added while connected."""
    return _dumps({"push": {"channel": channel, "subscribe": {"recoverable": True, "epoch": epoch, "offset": offset, "positioned": True}}})


def encode_unsubscribe_push(channel: str, code: int, reason: str) -> bytes:
    return _dumps({"push": {"channel": channel, "unsubscribe": {"code": code, "reason": reason}}})


def encode_disconnect_push(disconnect: Disconnect) -> bytes:
    return _dumps({"push": {"disconnect": {"code": disconnect.code, "reason": disconnect.reason, "reconnect": disconnect.reconnect}}})


def encode_ping() -> bytes:
    return b"{}"


def join_frames(frames: Iterable[bytes]) -> bytes:
    """Several replies and pushes in one WebSocket frame (JSON streaming)."""
    return b"\n".join(frames)
