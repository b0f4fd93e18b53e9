"""Signed account links (verify an email address, reset a password): nothing stored, nothing to steal.

A link names a user and an expiry and carries an HMAC of them under the server's secret key, over
the account's *state* as well: for a verification, the address being verified; for a reset, the
password hash it replaces. The state is read again from the database when the link is used, so a
reset link stops working once the password it would replace has changed (its own use included:
single use without a table of used links), and a verification link is tied to the one address it
was sent to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

from feeds_server.errors import BadRequest, Gone
from feeds_server.domain.numbers import is_digits

VERIFY_EMAIL = "fsv_"
RESET_PASSWORD = "fsr_"
_MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class LinkClaim:
    """What a link says before its signature is checked against the account's state."""

    kind: str
    user_id: int
    expires: int  # seconds since the epoch


def _mac(secret: str, claim: LinkClaim, state: str) -> str:
    msg = f"{claim.kind}|{claim.user_id}|{claim.expires}|{state}".encode("utf-8", "surrogatepass")
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(secret: str, kind: str, user_id: int, expires_at: datetime, state: str) -> str:
    claim = LinkClaim(kind, user_id, int(expires_at.timestamp()))
    return f"{kind}{user_id}.{claim.expires}.{_mac(secret, claim, state)}"


def read(token: str, kind: str) -> LinkClaim:
    """The claim of a well-formed link of `kind` (its signature not yet checked); else `invalid_link`."""
    if len(token) > _MAX_TOKEN_CHARS or not token.startswith(kind):
        raise invalid_link()
    parts = token[len(kind):].split(".")
    if len(parts) != 3 or not is_digits(parts[0]) or not is_digits(parts[1]):
        raise invalid_link()
    return LinkClaim(kind, int(parts[0]), int(parts[1]))


def check(secret: str, token: str, claim: LinkClaim, state: str | None, now: datetime) -> None:
    """Refuse a link whose signature does not match the account's current `state` (forged, or used:
    the state moved on; None: no such account), then one past its expiry."""
    expected = _mac(secret, claim, state) if state is not None else ""
    given = token.rsplit(".", 1)[-1]
    if state is None or not hmac.compare_digest(expected.encode(), given.encode()):
        raise invalid_link()
    if now >= datetime.fromtimestamp(claim.expires, timezone.utc):
        raise Gone("link_expired", "this link has expired: ask for a new one")


def invalid_link() -> BadRequest:
    return BadRequest("invalid_link", "this link is not valid (mistyped, already used, or replaced by a newer one)")
