"""The org's audit log: sign-ins of its members and its admins' actions. Admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from feeds_server import limits
from feeds_server.actions import audit
from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import TimeRangeQuery
from feeds_server.domain import permissions as perms

routes = Routes("audit")


class AuditQuery(TimeRangeQuery):
    action: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$")
    since: datetime | None = Field(default=None, alias="from")
    until: datetime | None = Field(default=None, alias="to")
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)


@routes.get("/api/v1/orgs/{slug}/audit", permission=perms.ADMIN, query=AuditQuery)
async def audit_log(ctx: Ctx) -> dict[str, Any]:
    """Sign-ins of members and admin actions, newest first: `action` (or `family.*`), `from`, `to`; `cursor` pages back."""
    q: AuditQuery = ctx.query
    return await audit.page(ctx.session, audit.AuditFilter(q.action, q.since, q.until, q.cursor, q.limit))
