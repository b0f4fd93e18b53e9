"""The server's VAPID identity (RFC 8292): the P-256 key that signs every push, and its public half
that browsers subscribe with (`GET /api/v1/push/public-key`).

`FEEDS_VAPID_PRIVATE_KEY` (PEM, or base64url of the 32-byte private value or of its DER) sets the
key. Without it the key is derived from the server's secret key (`FEEDS_SECRET_KEY`, or the one
kept in the data folder), so a laptop needs no configuration and every node and notifier that
share the secret share the key too; changing the secret then changes the key, and browsers must
subscribe again (a subscription is bound to the key it was made with).

A signed token is valid for VAPID_TOKEN_SECONDS and reused for that push service's origin until
half of it is left: signing once per push would cost more than the encryption.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import lru_cache
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from feeds_server import limits
from feeds_server.config import Settings
from feeds_server.domain import push_targets

# The order of the P-256 group: a private value is in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def private_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The configured key, or one derived from the secret key; ValueError for a key that is not P-256."""
    return _private_key(settings.vapid_private_key, settings.secret_key)


@lru_cache(maxsize=4)
def _private_key(configured: str, secret: str) -> ec.EllipticCurvePrivateKey:
    if configured:
        return _parse(configured)
    seed = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=b"feeds vapid key").derive(secret.encode())
    return ec.derive_private_key(int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _parse(text: str) -> ec.EllipticCurvePrivateKey:
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.replace("\\n", "\n").encode(), password=None)
    else:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("FEEDS_VAPID_PRIVATE_KEY is neither PEM nor base64url") from exc
        if len(raw) == 32:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        else:
            key = serialization.load_der_private_key(raw, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("FEEDS_VAPID_PRIVATE_KEY must be a P-256 (prime256v1) key")
    return key


def public_key(settings: Settings) -> str:
    """The uncompressed public point, base64url: what `PushManager.subscribe` takes as applicationServerKey."""
    point = private_key(settings).public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(point)


def subject(settings: Settings) -> str:
    """Who push services may contact about our pushes (RFC 8292 section 2.1: a mailto: or https:
    URI): FEEDS_VAPID_SUBJECT, else the sender address of emails, else the public URL, whichever is
    one a push service accepts. Apple's refuses a subject at localhost or any name that is not a
    public one (403 BadJwtToken), so such a subject is never sent: ValueError, naming the setting."""
    if settings.vapid_subject:
        if why := subject_refusal(settings.vapid_subject):
            raise ValueError(f"FEEDS_VAPID_SUBJECT {why}")
        return settings.vapid_subject
    address = parseaddr(settings.mail_from)[1]
    for candidate in (f"mailto:{address}", settings.public_url):
        if subject_refusal(candidate) is None:
            return candidate
    raise ValueError(
        "set FEEDS_VAPID_SUBJECT to a mailto: address or https: URL push services can reach you at"
        " (neither FEEDS_MAIL_FROM nor FEEDS_PUBLIC_URL is one: a localhost or http one is refused)"
    )


def subject_refusal(value: str) -> str | None:
    """Why a push service would refuse this VAPID subject, or None."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or len(value) > 512:
        return "must not contain spaces or control characters"
    if value.startswith("mailto:"):
        local, at, host = value.removeprefix("mailto:").rpartition("@")
        if not at or not local:
            return "must be a mailto: address"
    elif value.startswith("https://"):
        try:
            host = urlsplit(value).hostname or ""
        except ValueError:
            return "must be a valid https: URL"
    else:
        return "must be a mailto: or https: URL"
    if not _public_name(host.lower().rstrip(".")):
        return f"must name a public host, not {host!r}"
    return None


def _public_name(host: str) -> bool:
    """A DNS name under a public suffix: not localhost, not a single label, not an address, not a
    name reserved for local or test use (RFC 6761, RFC 6762)."""
    if "." not in host or host.endswith(_LOCAL_SUFFIXES) or host.startswith("["):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


_LOCAL_SUFFIXES = (".localhost", ".local", ".invalid", ".test", ".example", ".internal", ".lan", ".home.arpa")


@dataclass
class Signer:
    """Signs VAPID tokens, one per push service origin, reused until half of their life is left."""

    key: ec.EllipticCurvePrivateKey
    sub: str
    clock: Callable[[], float] = time.time
    _tokens: dict[str, tuple[float, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        point = self.key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self._k = b64url(point)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Signer":
        return cls(private_key(settings), subject(settings))

    def authorization(self, endpoint: str) -> str:
        """The `Authorization` header value for a push to `endpoint` (RFC 8292 section 3)."""
        audience = push_targets.origin(endpoint)
        now = self.clock()
        cached = self._tokens.get(audience)
        if cached is None or cached[0] - now < limits.VAPID_TOKEN_SECONDS / 2:
            expires = int(now) + limits.VAPID_TOKEN_SECONDS
            cached = (expires, self._token(audience, expires))
            if len(self._tokens) > 1_000:
                self._tokens.clear()
            self._tokens[audience] = cached
        return f"vapid t={cached[1]}, k={self._k}"

    def _token(self, audience: str, expires: int) -> str:
        header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
        claims = b64url(json.dumps({"aud": audience, "exp": expires, "sub": self.sub}, separators=(",", ":")).encode())
        signing_input = f"{header}.{claims}".encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{header}.{claims}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
