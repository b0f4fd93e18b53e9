"""The Centrifuge bidirectional client protocol v2, JSON format, as plain functions (no I/O).

Source of truth: `client.proto` of github.com/centrifugal/protocol (message and field names;
JSON uses the proto field names, snake_case, and leaves out zero values as Go's `omitempty`
does), plus the behaviour of github.com/centrifugal/centrifuge (errors.go, disconnect.go,
client.go) that centrifuge-js and centrifuge-python are written against.

Framing: a WebSocket text frame carries one or more JSON objects separated by "\\n" (JSON
streaming), in both directions. Raw newlines cannot occur inside a JSON value, only between
tokens, so the encoders below never emit one.

Client → server, a `Command`: `{"id": N, "<method>": {...request}}`, exactly one method.
`id` is 0 or absent only for `send`, and for the empty command `{}`, the client's pong.

Server → client, a `Reply`: `{"id": N, "<method>": {...result}}`, or
`{"id": N, "error": {"code", "message", "temporary"}}`; a push has no id:
`{"push": {"channel": ..., "pub" | "subscribe" | "unsubscribe" | "disconnect" | ...: {...}}}`;
the empty reply `{}` is the server's ping. Fields of proto type `bytes` (publication `data`,
connect `data`, ...) are raw JSON embedded as is, not strings.

Over a bidirectional WebSocket the server disconnects with a close frame (code, reason); the
`disconnect` push is for unidirectional transports only (centrifuge's websocket transport
disables it). Codes 3000–3499, 4000–4499 and from 5000 tell the client to reconnect;
3500–3999 and 4500–4999 not to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

METHODS = (
    "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
    "history", "ping", "send", "rpc", "refresh", "sub_refresh",
)
_METHOD_SET = frozenset(METHODS)

MAX_COMMANDS_PER_FRAME = 100
MAX_DEPTH = 32  # objects and arrays, the command itself being depth 1
MAX_ID = 2**32 - 1  # Command.id is uint32
_UINT64 = 2**64 - 1
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is 125 bytes, 2 being the code

# --- reply error codes (centrifuge errors.go) -----------------------------------------------
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
ERROR_TOKEN_REVOKED = 113

ERROR_MESSAGES: Mapping[int, str] = {
    ERROR_INTERNAL: "internal server error",
    ERROR_UNAUTHORIZED: "unauthorized",
    ERROR_UNKNOWN_CHANNEL: "unknown channel",
    ERROR_PERMISSION_DENIED: "permission denied",
    ERROR_METHOD_NOT_FOUND: "method not found",
    ERROR_ALREADY_SUBSCRIBED: "already subscribed",
    ERROR_LIMIT_EXCEEDED: "limit exceeded",
    ERROR_BAD_REQUEST: "bad request",
    ERROR_NOT_AVAILABLE: "not available",
    ERROR_TOKEN_EXPIRED: "token expired",
    ERROR_EXPIRED: "expired",
    ERROR_TOO_MANY_REQUESTS: "too many requests",
    ERROR_UNRECOVERABLE_POSITION: "unrecoverable position",
    ERROR_TOKEN_REVOKED: "token revoked",
}
# Errors worth retrying: SDKs retry a subscribe that failed with a temporary error.
TEMPORARY_ERRORS = frozenset({ERROR_INTERNAL, ERROR_TOO_MANY_REQUESTS})

# --- unsubscribe push codes: below 2500 the client stays unsubscribed, from 2500 it resubscribes
UNSUBSCRIBE_SERVER = 2000
UNSUBSCRIBE_INSUFFICIENT = 2500
UNSUBSCRIBE_EXPIRED = 2501


@dataclass(frozen=True, slots=True)
class Disconnect:
    """A close code and reason (centrifuge disconnect.go).

    The reason must fit a close frame and must not itself be valid JSON: centrifuge-js first
    tries to parse it as protocol v1's `{"reason", "reconnect"}` advice.
    """

    code: int
    reason: str

    def __post_init__(self) -> None:
        if len(self.reason.encode()) > MAX_CLOSE_REASON_BYTES:
            raise ValueError("a close reason is at most 123 bytes")

    @property
    def reconnect(self) -> bool:
        """Whether the client reconnects on its own, as the SDKs decide from the code."""
        return self.code < 3500 or self.code >= 5000 or 4000 <= self.code < 4500


# Not sent: what the server records when the client went away without a word.
DISCONNECT_CONNECTION_CLOSED = Disconnect(3000, "connection closed")
# The client reconnects.
DISCONNECT_SHUTDOWN = Disconnect(3001, "shutdown")
DISCONNECT_SERVER_ERROR = Disconnect(3004, "internal server error")
DISCONNECT_EXPIRED = Disconnect(3005, "connection expired")
DISCONNECT_SUB_EXPIRED = Disconnect(3006, "subscription expired")
DISCONNECT_SLOW = Disconnect(3008, "slow")
DISCONNECT_WRITE_ERROR = Disconnect(3009, "write error")
DISCONNECT_INSUFFICIENT_STATE = Disconnect(3010, "insufficient state")
DISCONNECT_FORCE_RECONNECT = Disconnect(3011, "force reconnect")
DISCONNECT_NO_PONG = Disconnect(3012, "no pong")
DISCONNECT_TOO_MANY_REQUESTS = Disconnect(3013, "too many requests")
# The client does not reconnect.
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
    """The client broke the protocol; the connection closes with `disconnect`.

    The message is for logs only: the client gets the disconnect's code and reason.
    """

    def __init__(self, message: str, disconnect: Disconnect = DISCONNECT_BAD_REQUEST) -> None:
        super().__init__(message)
        self.disconnect = disconnect


# --- decoding -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One client command. `kind` is a method name, or `pong` for the empty command.

    `params` is the request object with the fields of client.proto checked for type and JSON
    nulls dropped (Go reads a null as an absent field); unknown fields are kept, unchecked.
    """

    id: int
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def decode_commands(frame: bytes | bytearray | memoryview | str) -> list[Command]:
    """Parse a frame of newline-separated JSON commands; anything malformed raises ProtocolError."""
    raw = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else bytes(frame)
    lines = [line for line in raw.split(b"\n") if line.strip()]
    if not lines:
        raise ProtocolError("empty frame")
    if len(lines) > MAX_COMMANDS_PER_FRAME:
        raise ProtocolError("too many commands in one frame")
    return [_decode_command(line) for line in lines]


def _decode_command(line: bytes) -> Command:
    try:
        # orjson rejects invalid UTF-8, lone surrogates (raw or escaped), NaN and Infinity,
        # and nesting past 1024 without recursing in Python.
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a command is a JSON object")
    _check_depth(obj)
    cmd_id = obj.get("id")
    cmd_id = 0 if cmd_id is None else cmd_id
    if not _is_int(cmd_id) or not 0 <= cmd_id <= MAX_ID:
        raise ProtocolError("command id must be an integer from 0 to 2^32-1")
    methods = [key for key in _METHOD_SET.intersection(obj) if obj[key] is not None]
    if not methods:
        if cmd_id == 0 and all(value is None for key, value in obj.items() if key != "id"):
            return Command(0, "pong")
        raise ProtocolError(f"unknown command {sorted(obj)!r}")
    if len(methods) > 1:
        raise ProtocolError(f"more than one method in a command: {sorted(methods)!r}")
    method = methods[0]
    if cmd_id == 0 and method != "send":
        raise ProtocolError(f"{method} needs a command id")
    return Command(cmd_id, method, _check_object(obj[method], _REQUESTS[method], method))


def _check_depth(value: Any) -> None:
    """Bound nesting without recursion: an explicit stack of (container, depth)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_DEPTH:
                    raise ProtocolError(f"JSON nested deeper than {MAX_DEPTH}")
                stack.append((child, depth + 1))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# A field checker takes the value and its path, returns the value to keep or raises.
_Checker = Callable[[Any, str], Any]


def _fail(path: str, expected: str) -> ProtocolError:
    return ProtocolError(f"{path} must be {expected}")


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, "a string")
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, "a boolean")
    return value


def _integer(low: int, high: int, expected: str) -> _Checker:
    def check(value: Any, path: str) -> int:
        if not _is_int(value) or not low <= value <= high:
            raise _fail(path, expected)
        return value

    return check


_uint64 = _integer(0, _UINT64, "an integer from 0 to 2^64-1")
_int32 = _integer(*_INT32, "a 32-bit integer")
_int64 = _integer(*_INT64, "a 64-bit integer")


def _any_json(value: Any, path: str) -> Any:
    """A proto `bytes` field: in JSON format, any JSON value embedded as is."""
    return value


def _object(schema: Mapping[str, _Checker]) -> _Checker:
    def check(value: Any, path: str) -> dict[str, Any]:
        return _check_object(value, schema, path)

    return check


def _map_of(item: _Checker) -> _Checker:
    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(path, "an object")
        return {key: item(v, f"{path}.{key}") for key, v in value.items() if v is not None}

    return check


def _list_of(item: _Checker) -> _Checker:
    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _fail(path, "an array")
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return check


def _check_object(value: Any, schema: Mapping[str, _Checker], path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            continue
        check = schema.get(key)
        out[key] = item if check is None else check(item, f"{path}.{key}")
    return out


def _filter_node(value: Any, path: str) -> dict[str, Any]:
    """FilterNode is recursive; its children are checked as objects, the depth bound holds."""
    return _check_object(value, _FILTER_NODE, path)


_FILTER_NODE: dict[str, _Checker] = {
    "op": _string, "key": _string, "cmp": _string, "val": _string,
    "vals": _list_of(_string), "nodes": _list_of(_filter_node),
}
_SUBSCRIBE_REQUEST: dict[str, _Checker] = {
    "channel": _string, "token": _string, "recover": _boolean, "epoch": _string,
    "offset": _uint64, "data": _any_json, "positioned": _boolean, "recoverable": _boolean,
    "join_leave": _boolean, "delta": _string, "tf": _filter_node, "flag": _int64,
    "type": _int32, "phase": _int32, "cursor": _string, "limit": _int32, "asc": _boolean,
}
_CHANNEL_ONLY: dict[str, _Checker] = {"channel": _string}
_REQUESTS: dict[str, dict[str, _Checker]] = {
    "connect": {
        "token": _string, "data": _any_json, "subs": _map_of(_object(_SUBSCRIBE_REQUEST)),
        "name": _string, "version": _string, "headers": _map_of(_string), "flag": _int64,
    },
    "subscribe": _SUBSCRIBE_REQUEST,
    "unsubscribe": _CHANNEL_ONLY,
    "publish": {"channel": _string, "data": _any_json, "type": _int32, "key": _string, "removed": _boolean},
    "presence": _CHANNEL_ONLY,
    "presence_stats": _CHANNEL_ONLY,
    "history": {
        "channel": _string, "limit": _int32, "reverse": _boolean,
        "since": _object({"offset": _uint64, "epoch": _string}),
    },
    "ping": {},
    "send": {"data": _any_json},
    "rpc": {"data": _any_json, "method": _string},
    "refresh": {"token": _string},
    "sub_refresh": {
        "channel": _string, "token": _string, "type": _int32, "signature": _string,
        "items": _list_of(_object({"key": _string, "version": _uint64})),
        "untrack_keys": _list_of(_string),
    },
}


# --- typed views of the requests the server acts on ------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """A subscribe command, or one entry of a connect's `subs` (then `channel` is the key)."""

    channel: str
    token: str = ""
    recover: bool = False
    epoch: str = ""
    offset: int = 0
    data: Any = None
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    delta: str = ""


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """`subs` are the server-side subscriptions the client holds a position in, to recover."""

    token: str = ""
    data: Any = None
    subs: Mapping[str, SubscribeRequest] = field(default_factory=dict)
    name: str = ""
    version: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


def _subscribe_request(channel: str, params: Mapping[str, Any]) -> SubscribeRequest:
    return SubscribeRequest(
        channel=channel,
        token=params.get("token", ""),
        recover=params.get("recover", False),
        epoch=params.get("epoch", ""),
        offset=params.get("offset", 0),
        data=params.get("data"),
        positioned=params.get("positioned", False),
        recoverable=params.get("recoverable", False),
        join_leave=params.get("join_leave", False),
        delta=params.get("delta", ""),
    )


def subscribe_request(cmd: Command) -> SubscribeRequest:
    """The typed request of a decoded `subscribe` command."""
    if cmd.kind != "subscribe":
        raise ValueError(f"not a subscribe command: {cmd.kind}")
    return _subscribe_request(cmd.params.get("channel", ""), cmd.params)


def connect_request(cmd: Command) -> ConnectRequest:
    """The typed request of a decoded `connect` command."""
    if cmd.kind != "connect":
        raise ValueError(f"not a connect command: {cmd.kind}")
    p = cmd.params
    subs = {channel: _subscribe_request(channel, req) for channel, req in p.get("subs", {}).items()}
    return ConnectRequest(
        token=p.get("token", ""),
        data=p.get("data"),
        subs=subs,
        name=p.get("name", ""),
        version=p.get("version", ""),
        headers=p.get("headers", {}),
    )


# --- building results: zero values left out, as Go's omitempty does ---------------------------


def raw_json(data: Any) -> orjson.Fragment:
    """A value for a proto `bytes` field, as raw JSON. Bytes are already-encoded JSON and are
    embedded as is (checked once, and compacted if they span lines, so that the frame's "\\n"
    framing holds); any other value is encoded here."""
    if isinstance(data, orjson.Fragment):
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return orjson.Fragment(orjson.dumps(data))
    encoded = bytes(data)
    try:
        value = orjson.loads(encoded)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return orjson.Fragment(orjson.dumps(value) if b"\n" in encoded else encoded)


def _compact(fields: dict[str, Any]) -> dict[str, Any]:
    """Leave out zero values (None, False, 0, "", empty containers); raw JSON always stays."""
    return {key: value for key, value in fields.items() if value or isinstance(value, orjson.Fragment)}


def publication(data: Any, offset: int = 0, *, tags: Mapping[str, str] | None = None,
                info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Publication: `data` raw JSON, `offset` in the channel's stream, optional tags and
    publisher ClientInfo (`user`, `client`, `conn_info`, `chan_info`)."""
    pub: dict[str, Any] = {"data": raw_json(data)}
    if info:
        pub["info"] = dict(info)
    if offset:
        pub["offset"] = offset
    if tags:
        pub["tags"] = dict(tags)
    return pub


def subscribe_result(*, recoverable: bool = False, epoch: str = "", offset: int = 0,
                     publications: Iterable[Mapping[str, Any]] = (), recovered: bool = False,
                     positioned: bool = False, was_recovering: bool = False, expires: bool = False,
                     ttl: int = 0, data: Any = None) -> dict[str, Any]:
    """A SubscribeResult, also the value type of ConnectResult.subs."""
    return _compact({
        "expires": expires, "ttl": ttl, "recoverable": recoverable, "epoch": epoch,
        "publications": list(publications), "recovered": recovered, "offset": offset,
        "positioned": positioned, "data": None if data is None else raw_json(data),
        "was_recovering": was_recovering,
    })


def connect_result(client: str, version: str = "", *, subs: Mapping[str, Mapping[str, Any]] | None = None,
                   data: Any = None, expires: bool = False, ttl: int = 0, ping: int = 0,
                   pong: bool = False, session: str = "", node: str = "") -> dict[str, Any]:
    """A ConnectResult. `ping` is the server's ping interval in seconds; `pong` asks the
    client to answer pings; `subs` are server-side subscriptions, channel → SubscribeResult."""
    return _compact({
        "client": client, "version": version, "expires": expires, "ttl": ttl,
        "data": None if data is None else raw_json(data), "subs": dict(subs or {}),
        "ping": ping, "pong": pong, "session": session, "node": node,
    })


# --- encoding: each returns one JSON object, ready to share between connections ---------------


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def encode_reply(cmd_id: int, method: str, result: Mapping[str, Any]) -> bytes:
    """The reply to command `cmd_id`, its result under the method's name."""
    if method not in _METHOD_SET:
        raise ValueError(f"unknown method {method!r}")
    return _dumps({"id": cmd_id, method: result})


def encode_error(cmd_id: int, code: int, message: str | None = None, temporary: bool | None = None) -> bytes:
    """An error reply; message and temporary default to centrifuge's for the code."""
    error: dict[str, Any] = {"code": code, "message": ERROR_MESSAGES.get(code, "") if message is None else message}
    if code in TEMPORARY_ERRORS if temporary is None else temporary:
        error["temporary"] = True
    return _dumps({"id": cmd_id, "error": error})


def encode_publication_push(channel: str, data: Any, offset: int = 0, tags: Mapping[str, str] | None = None,
                            info: Mapping[str, Any] | None = None) -> bytes:
    """A publication in a channel. Encode it once per publication and hand the same bytes to
    every subscriber; `data` given as bytes is embedded as is."""
    return _dumps({"push": {"channel": channel, "pub": publication(data, offset, tags=tags, info=info)}})


def encode_subscribe_push(channel: str, epoch: str = "", offset: int = 0, *, recoverable: bool = True,
                          positioned: bool = True, data: Any = None) -> bytes:
    """A server-side subscription added while connected (the Subscribe push). The defaults
    describe this server's channels: a stream the client may recover from `epoch`/`offset`."""
    sub = _compact({
        "recoverable": recoverable, "epoch": epoch, "offset": offset, "positioned": positioned,
        "data": None if data is None else raw_json(data),
    })
    return _dumps({"push": {"channel": channel, "subscribe": sub}})


def encode_unsubscribe_push(channel: str, code: int, reason: str) -> bytes:
    """A server-side unsubscribe; codes from 2500 make the client subscribe again."""
    return _dumps({"push": {"channel": channel, "unsubscribe": {"code": code, "reason": reason}}})


def encode_disconnect_push(code: int, reason: str) -> bytes:
    """The Disconnect push of unidirectional transports. Protocol v2 sends no `reconnect`
    (v1 only): the client decides from the code. A WebSocket uses its close frame instead."""
    return _dumps({"push": {"disconnect": {"code": code, "reason": reason}}})


PING = b"{}"


def encode_ping() -> bytes:
    """The server's ping: an empty reply, which the client answers with an empty command."""
    return PING


def join_frames(frames: Iterable[bytes]) -> bytes:
    """Several replies and pushes in one WebSocket frame (JSON streaming)."""
    return b"\n".join(frames)
