"""Opaque keyset cursors: a position (time, id) encoded so clients pass it back untouched."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

from feeds_server.errors import ValidationFailed

_MAX_ID = 2**63 - 1


def encode(at: datetime, item_id: int) -> str:
    micros = int(at.timestamp() * 1_000_000)
    return base64.urlsafe_b64encode(f"{micros}.{item_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, int]:
    """Refuses anything this server did not give out (422 `invalid_cursor`), never a 500."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros_s, _, id_s = raw.partition(".")
        micros, item_id = int(micros_s), int(id_s)
        if not (0 <= micros < 253_402_300_800_000_000 and 0 < item_id <= _MAX_ID):
            raise ValueError(raw)
        return datetime.fromtimestamp(micros / 1_000_000, tz=timezone.utc), item_id
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise ValidationFailed("invalid_cursor", "the cursor is not one this server gave out", field="cursor") from None
