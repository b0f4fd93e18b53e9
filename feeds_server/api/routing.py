"""Endpoint declarations: one table of routes from which Starlette routes and OpenAPI are built.

An endpoint says its method, path, who may call it, the checks it runs before its input is parsed,
and its body and query models. The pipeline (api/pipeline.py) authenticates, resolves the org from
the path, runs the checks, parses the input, runs the handler inside one transaction, publishes the
transaction's events after commit, and maps errors to one JSON shape: a handler holds only its work.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

Handler = Callable[..., Awaitable[Any]]
# A check run once the caller is known and before the input is parsed (e.g. a rate limit): a
# request it refuses costs no parsing, and one whose body is invalid still counts.
Check = Callable[..., Awaitable[None]]

# Who may call an endpoint.
PUBLIC = "public"  # anyone
USER = "user"  # any signed-in user
MEMBER = "member"  # a member of the org named in the path
INTEGRATION = "integration"  # an integration token of the org named in the path


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    access: str = MEMBER
    permission: str | None = None  # e.g. "admin", "feeds_tab", "super_admin"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    summary: str = ""
    tag: str = ""
    # Also accepts multipart/form-data: the body as a JSON `message` part and up to five `files`
    # parts, stored before the handler runs (api/uploads.py); the handler finds them in `ctx.files`.
    files: bool = False
    checks: tuple[Check, ...] = ()
    idempotent: bool = False  # honours the Idempotency-Key header (create endpoints)
    # The request's own transaction only reads (its writes are Deferred to a writer): on PostgreSQL
    # its statements run without BEGIN and COMMIT, which READ COMMITTED makes no less consistent.
    reads_only: bool = False

    def __post_init__(self) -> None:
        assert not self.files or self.body is not None, f"{self.path}: an endpoint that takes files needs a body model"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)


@dataclass
class Routes:
    """Collects the endpoints of one API module."""

    tag: str
    endpoints: list[Endpoint] = field(default_factory=list)

    def add(self, method: str, path: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = options.pop("summary", None) or (handler.__doc__ or "").strip().split("\n")[0]
            self.endpoints.append(Endpoint(method, path, handler, summary=summary, tag=self.tag, **options))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.add("DELETE", path, **options)
