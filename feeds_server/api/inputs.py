"""A request's input: path ids, the body (bounded, read before any session opens), JSON against the
endpoint's model, and query parameters, each refused with the API's error codes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from feeds_server import limits
from feeds_server.errors import BadRequest, FeedsError, NotFound, PayloadTooLarge, ValidationFailed
from feeds_server.domain.numbers import is_digits

MAX_ID = 2**63 - 1


def path_params(request: Request) -> dict[str, Any]:
    params = dict(request.path_params)
    for key, value in params.items():
        if isinstance(value, int) and not 1 <= value <= MAX_ID:
            raise NotFound("not_found", "no such item")
    return params


async def read_body(request: Request) -> bytes:
    """The JSON endpoints' body, read once and kept (the pipeline reads it before any session opens;
    the handler's `read_json` then finds it)."""
    cached = getattr(request.state, "json_body", None)
    if cached is None:
        cached = request.state.json_body = await read_limited(request, limits.MAX_JSON_BODY_BYTES)
    return cached


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it grows past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and is_digits(declared) and int(declared) > limit:
        request.state.unread_body = True
        raise PayloadTooLarge("body_too_large", f"request body over {limit} bytes", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            request.state.unread_body = True
            raise PayloadTooLarge("body_too_large", f"request body over {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> bytes:
    """The body as JSON bytes (`{}` when empty), after its media type is checked."""
    raw = await read_body(request)
    if not raw.strip():
        return b"{}"
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in {"application/json", ""}:
        raise BadRequest("unsupported_media_type", "send the body as application/json")
    return raw


def parse_json_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    """Validate JSON bytes against a body model, with the API's error codes."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    items = request.query_params.multi_items()
    data: dict[str, str] = {}
    for key, value in items:
        if key in data:
            raise ValidationFailed("validation_failed", f"query parameter {key!r} given twice", field=key)
        if "\x00" in value:
            raise ValidationFailed("validation_failed", f"query parameter {key!r} contains NUL", field=key)
        data[key] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> FeedsError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(e["type"] in {"json_invalid", "json_type"} for e in errors):
        return BadRequest("malformed_json", "the request body is not valid JSON")
    fields = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "type": e["type"], "message": e["msg"]}
        for e in errors
    ]
    first = fields[0]
    return ValidationFailed("validation_failed", f"{first['field']}: {first['message']}", errors=fields)
