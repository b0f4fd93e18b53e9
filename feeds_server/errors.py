"""Domain error types, each with a stable code, and their HTTP status.

Domain and store code raise these; the API layer turns them into one JSON shape
(`{"error": {"code", "message", "details"}}`) and the real-time layer into protocol errors.
"""

from __future__ import annotations

from typing import Any


class FeedsError(Exception):
    """Base of every error a client may see. `code` is stable and documented in docs/api.md."""

    status = 400
    default_code = "bad_request"

    def __init__(self, code: str | None = None, message: str | None = None, **details: Any) -> None:
        self.code = code or self.default_code
        self.message = message or self.code.replace("_", " ")
        self.details = details
        super().__init__(self.message)


class BadRequest(FeedsError):
    """The request cannot be read (malformed JSON, wrong content type)."""

    status = 400
    default_code = "bad_request"


class ValidationFailed(FeedsError):
    """The request was read but a field is missing, unknown, of the wrong type or out of range."""

    status = 422
    default_code = "validation_failed"


class LimitExceeded(FeedsError):
    """A numeric limit of the spec was crossed; `details["limit"]` names the number."""

    status = 422
    default_code = "limit_exceeded"


class PayloadTooLarge(LimitExceeded):
    """A body or upload crossed a byte limit."""

    status = 413
    default_code = "payload_too_large"


class Unauthenticated(FeedsError):
    """No valid credentials."""

    status = 401
    default_code = "unauthenticated"


class Forbidden(FeedsError):
    """Authenticated, but the member's profile does not allow this."""

    status = 403
    default_code = "forbidden"


class NotFound(FeedsError):
    """Does not exist, or exists where the caller cannot see it (another org, a private item)."""

    status = 404
    default_code = "not_found"


class Conflict(FeedsError):
    """The request clashes with the current state (taken slug, already a member, idempotency key reuse)."""

    status = 409
    default_code = "conflict"


class RequestTimeout(FeedsError):
    """The client did not send its request in time (api/http_wire.py closes the connection)."""

    status = 408
    default_code = "request_timeout"


class Gone(FeedsError):
    """The thing existed but can no longer be used (expired invitation)."""

    status = 410
    default_code = "gone"


class InternalError(FeedsError):
    """Something failed on the server: the answer says only that; the log has the details."""

    status = 500
    default_code = "internal_error"

    def __init__(self) -> None:
        super().__init__("internal_error", "something went wrong on the server; it has been logged")


class RateLimited(FeedsError):
    """Too many requests; `details["retry_after"]` in seconds."""

    status = 429
    default_code = "rate_limited"
