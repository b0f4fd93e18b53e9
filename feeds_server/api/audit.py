"""The org's audit log: sign-ins of its members and its admins' actions. Admins only."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import Field, model_validator

from feeds_server import limits
from feeds_server.actions import audit
from feeds_server.api.context import Ctx
from feeds_server.api.routing import Routes
from feeds_server.api.schemas import Query
from feeds_server.domain import permissions as perms

routes = Routes("audit")


class AuditQuery(Query):
    action: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)*(\.\*)?$")
    since: datetime | None = Field(default=None, alias="from")
    until: datetime | None = Field(default=None, alias="to")
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=limits.DEFAULT_PAGE_SIZE, ge=1, le=limits.MAX_PAGE_SIZE)

    @model_validator(mode="after")
    def _aware(self) -> "AuditQuery":
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{'from' if name == 'since' else 'to'} needs a time zone offset (e.g. Z)")
            if value is not None and value.utcoffset() and not _utc_can_hold(value):
                raise ValueError(f"{'from' if name == 'since' else 'to'} is outside years 1-9999 in UTC")
        return self


def _utc_can_hold(value: datetime) -> bool:
    """Year 1 or 9999 with an offset may fall outside what a UTC datetime can hold."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        return False
    return True


@routes.get("/api/v1/orgs/{slug}/audit", permission=perms.ADMIN, query=AuditQuery)
async def audit_log(ctx: Ctx) -> dict[str, Any]:
    """Sign-ins of members and admin actions, newest first: `action` (or `family.*`), `from`, `to`; `cursor` pages back."""
    q: AuditQuery = ctx.query
    return await audit.page(ctx.session, audit.AuditFilter(q.action, q.since, q.until, q.cursor, q.limit))
