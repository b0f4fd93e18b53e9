"""The WebSocket opening handshake (RFC 6455 §4.2) for a plain upgrade, checked and answered in
one pass (used by `wire.py`).

`parse_upgrade` accepts exactly what `websockets`' `ServerProtocol.accept` accepts when no
subprotocol and no extension are offered for negotiation, and gives up (None) on anything else —
a second Origin, a subprotocol, a key that is not 16 bytes — so that `websockets` answers those
requests as it always did. `switching_protocols` writes the same 101 response uvicorn would
send: `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, then the server's default headers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A plain upgrade request: its target and its headers as the ASGI scope holds them."""

    target: str
    headers: list[tuple[bytes, bytes]]
    key: bytes


def parse_upgrade(data: bytes) -> Upgrade | None:
    """The request uvicorn hands to a WebSocket protocol (request line, one header per line), if it
    is a complete, plain and valid upgrade; None sends it the long way."""
    lines = data.split(b"\r\n")
    if len(lines) < 3 or lines[-1] or lines[-2]:
        return None  # not one complete request
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1" or not parts[1].isascii():
        return None
    headers: list[tuple[bytes, bytes]] = []
    connection: list[bytes] = []
    upgrade: list[bytes] = []
    key: list[bytes] = []
    version: list[bytes] = []
    origins = 0
    for line in lines[1:-2]:
        name, sep, value = line.partition(b":")
        if not sep or not name:
            return None
        value = value.strip(b" \t")
        headers.append((name, value))
        lower = name.lower()
        if lower == b"connection":
            connection += [t.strip(b" \t").lower() for t in value.split(b",")]
        elif lower == b"upgrade":
            upgrade += [t.strip(b" \t").lower() for t in value.split(b",")]
        elif lower == b"sec-websocket-key":
            key.append(value)
        elif lower == b"sec-websocket-version":
            version.append(value)
        elif lower == b"origin":
            origins += 1
        elif lower == b"sec-websocket-protocol":
            return None  # a subprotocol to select
    if b"upgrade" not in connection or upgrade != [b"websocket"] or version != [b"13"] or len(key) != 1 or origins > 1:
        return None
    try:
        if len(base64.b64decode(key[0], validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return Upgrade(parts[1].decode("ascii"), headers, key[0])


def accept_value(key: bytes) -> bytes:
    """`Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def switching_protocols(key: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The 101 response accepting an upgrade, with `headers` after the handshake's own."""
    out = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ", accept_value(key), b"\r\n"]
    for name, value in headers:
        out += [name, b": ", value, b"\r\n"]
    out.append(b"\r\n")
    return b"".join(out)
