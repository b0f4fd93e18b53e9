"""`Idempotency-Key` on create endpoints: a retried request gets the response stored for its key
(store/idempotency.py keeps them)."""

from __future__ import annotations

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from feeds_server.api.context import Ctx
from feeds_server.store import idempotency


async def begin_idempotent(ctx: Ctx, key: str, print_: str) -> Response | None:
    """The stored response for a retried request, or None (and the key is remembered) for a new one."""
    idempotency.check_key(key)
    assert ctx.member is not None, "idempotency keys are per member"
    stored = await idempotency.stored_response(ctx.session, ctx.member.user_id, key, print_)
    if stored is not None:
        status, payload = stored
        return Response(payload, status_code=status, media_type="application/json", headers={"Idempotent-Replayed": "true"})
    ctx.idempotency = (key, print_)
    return None


def canonical(body: BaseModel) -> bytes:
    return orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
