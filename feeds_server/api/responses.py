"""The API's answers: JSON bodies, and every error in one shape with its request id (docs/api.md, Errors)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from feeds_server.errors import FeedsError
from feeds_server.runtime import logs, metrics


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(exc: FeedsError) -> Response:
    metrics.HTTP_ERRORS.labels(str(exc.status), exc.code).inc()
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    rid = logs.request_id.get()
    if rid:  # the same id as the X-Request-ID header and the server's log lines
        body["request_id"] = rid
    headers = {"Retry-After": str(exc.details["retry_after"])} if "retry_after" in exc.details else None
    if exc.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return json_response({"error": body}, exc.status, headers)
