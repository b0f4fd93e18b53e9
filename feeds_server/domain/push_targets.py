"""What a browser's Web Push subscription may hold before the server keeps it (RFC 8030, RFC 8291).

The endpoint URL comes from the browser, so from anyone with an account: unchecked, the notifier
would post to the server's own loopback or the private network behind it, as a webhook could
(domain/egress.py). An endpoint must be https, without credentials in it; plain http is accepted
only for a literal loopback address inside FEEDS_PUSH_ALLOW_NETWORKS (a push service on the same
laptop). That list is the push endpoints' own, empty by default: the webhooks' allowlist is for URLs
an admin configures, and must not open the operator's network to an address any member picks.
Keys are kept as base64url without padding (`canonical_key`), one spelling of known length. A literal address egress refuses is refused here for a clear error; names are judged
again at every send, on every address they resolve to (notify/push.py), so a stored URL is never
trusted. The keys must decode to a P-256 point and a 16-byte secret, or nothing could be encrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from feeds_server import limits
from feeds_server.domain import egress

_DEFAULT_PORTS = {"https": 443, "http": 80}
_KEY = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# The longest key text looked at: a P-256 point in base64 with its padding, and a little room.
_MAX_KEY_CHARS = 4 * ((limits.PUSH_P256DH_BYTES + 2) // 3) + 4


def endpoint_hash(endpoint: str) -> str:
    """The key a subscription is found by (one row per endpoint and org)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


def origin(endpoint: str) -> str:
    """scheme://host[:port] of an endpoint, normalised (lower case, the default port left out): the
    audience a VAPID token is signed for (RFC 8292 section 2: the push resource's origin, which a push
    service compares as it serialises it) and the unit of PUSH_PER_ORIGIN_CONCURRENCY."""
    parts = urlsplit(endpoint)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def endpoint_refusal(url: str, allow: Sequence[egress.Network] = ()) -> str | None:
    """Why this endpoint URL is not kept, or None when it may be."""
    if len(url) > limits.MAX_PUSH_ENDPOINT_CHARS:
        return f"the endpoint is longer than {limits.MAX_PUSH_ENDPOINT_CHARS} characters"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return "the endpoint must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the endpoint is not a valid URL"
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in egress.SCHEMES or not host:
        return "the endpoint must be an https URL"
    if parts.username is not None or parts.password is not None:
        return "the endpoint must not carry credentials"
    if port == 0:
        return "the endpoint's port is not valid"
    literal = egress.literal_address(host)
    if scheme == "http" and (literal is None or not literal.is_loopback or egress.refusal(literal, allow)):
        return "the endpoint must be an https URL"
    if literal is not None and (why := egress.refusal(literal, allow)):
        return f"{host} is not an allowed push target: {why}"
    return None


def decode_key(text: str) -> bytes | None:
    """A base64url value (up to two `=` of padding, as base64 has) as bytes, or None when it is not one."""
    if not text or len(text) > _MAX_KEY_CHARS or not _KEY.fullmatch(text):
        return None
    bare = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError):
        return None


def canonical_key(text: str) -> str:
    """A key that passed `keys_refusal` as it is kept: base64url without padding, so one key has one
    spelling and its length is known (the columns hold what PUSH_P256DH_BYTES and PUSH_AUTH_BYTES make)."""
    raw = decode_key(text)
    assert raw is not None, "checked by keys_refusal first"
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def keys_refusal(p256dh: str, auth: str) -> tuple[str, str] | None:
    """(field, why) when a key cannot be used to encrypt for this browser, else None."""
    point = decode_key(p256dh)
    if point is None or len(point) != limits.PUSH_P256DH_BYTES or point[0] != 0x04:
        return "keys.p256dh", f"p256dh must be an uncompressed P-256 point, {limits.PUSH_P256DH_BYTES} bytes in base64url"
    if not _on_curve(point):
        return "keys.p256dh", "p256dh is not a point of the P-256 curve"
    secret = decode_key(auth)
    if secret is None or len(secret) != limits.PUSH_AUTH_BYTES:
        return "keys.auth", f"auth must be {limits.PUSH_AUTH_BYTES} bytes in base64url"
    return None


def _on_curve(point: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return True
