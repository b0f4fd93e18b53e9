"""`Idempotency-Key` on create endpoints: the first response is stored with the change and replayed.

The key row is written in the same transaction as what the request creates, so either both exist or
neither does. A retry with the same key and the same request gets the stored response; the same key
with a different request is refused.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.errors import Conflict, ValidationFailed
from feeds_server.store.models import IdempotencyKey

MAX_KEY_CHARS = 200


def check_key(key: str) -> str:
    if not (1 <= len(key) <= MAX_KEY_CHARS) or not key.isprintable() or not key.isascii():
        raise ValidationFailed("invalid_idempotency_key", f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable ASCII characters")
    return key


def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


async def stored_response(session: AsyncSession, user_id: int, key: str, print_: str) -> tuple[int, bytes] | None:
    """The stored (status, body) for this key, or None if the key is new."""
    row = (
        await session.execute(select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.fingerprint != print_:
        raise Conflict("idempotency_key_reused", "this Idempotency-Key was used with a different request")
    return row.status, row.response


def remember(session: AsyncSession, user_id: int, key: str, print_: str, status: int, body: bytes, now: datetime) -> None:
    session.add(IdempotencyKey(user_id=user_id, key=key, fingerprint=print_, status=status, response=body, created_at=now))
