"""Connection tokens: short-lived, signed, bound to one user, one org and the sign-in they came from.

The REST API mints one (`POST /api/v1/orgs/{slug}/realtime/token`); the WebSocket `connect` command
carries it. Signed with `FEEDS_SECRET_KEY` (HMAC-SHA256), so any node can check it without a lookup;
the sign-in it names is still checked against the database at connect time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "fsc_"


@dataclass(frozen=True)
class ConnectionClaims:
    user_id: int
    org_id: int
    auth_token_id: int
    expires_at: int  # unix seconds


class InvalidToken(Exception):
    """Malformed or badly signed."""


class ExpiredToken(Exception):
    """Well signed but past its time: the client should fetch a new one."""


def mint(secret: str, claims: ConnectionClaims) -> str:
    body = f"{claims.user_id}.{claims.org_id}.{claims.auth_token_id}.{claims.expires_at}".encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return PREFIX + _b64(body) + "." + _b64(sig)


def verify(secret: str, token: str, now: float) -> ConnectionClaims:
    if not isinstance(token, str) or not token.startswith(PREFIX) or len(token) > 300:
        raise InvalidToken()
    try:
        body_b64, sig_b64 = token[len(PREFIX) :].split(".")
        body, sig = _unb64(body_b64), _unb64(sig_b64)
    except ValueError:
        raise InvalidToken() from None
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(sig, expected):
        raise InvalidToken()
    try:
        user_id, org_id, auth_id, exp = (int(p) for p in body.decode().split("."))
    except ValueError:
        raise InvalidToken() from None
    claims = ConnectionClaims(user_id, org_id, auth_id, exp)
    if exp <= now:
        raise ExpiredToken()
    return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
