"""Feed module preferences (F-FEED-5): which CRM modules produce feed updates, org-wide."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions import audit
from feeds_server.domain.audience import ORG
from feeds_server.errors import ValidationFailed
from feeds_server.store.events import append_event
from feeds_server.store.models import Org, PostAudience

STANDARD_MODULES = (
    "Leads", "Contacts", "Accounts", "Deals", "Tasks", "Events", "Calls", "Campaigns",
    "Cases", "Solutions", "Products", "Vendors", "Quotes", "Sales Orders", "Purchase Orders", "Invoices",
)


async def known_modules(session: AsyncSession) -> list[str]:
    """Standard modules, then custom modules the org's items have used."""
    used = set((await session.execute(select(PostAudience.module).where(PostAudience.module.is_not(None)).distinct())).scalars())
    return list(STANDARD_MODULES) + sorted(used - set(STANDARD_MODULES))


async def module_settings(session: AsyncSession, org: Org) -> list[dict[str, object]]:
    disabled = set(org.disabled_modules or [])
    names = await known_modules(session)
    names += sorted(disabled - set(names))
    return [{"module": name, "enabled": name not in disabled} for name in names]


async def set_modules(session: AsyncSession, org: Org, actor_id: int, changes: dict[str, bool]) -> list[dict[str, object]]:
    for name in changes:
        if not name.strip() or len(name) > 64 or "\x00" in name:
            raise ValidationFailed("invalid_module", f"bad module name {name!r}", field="modules")
    disabled = set(org.disabled_modules or [])
    disabled |= {m for m, on in changes.items() if not on}
    disabled -= {m for m, on in changes.items() if on}
    org.disabled_modules = sorted(disabled)
    await session.flush()
    append_event(session, "feed_modules.updated", {"disabled_modules": org.disabled_modules}, actor_id, [ORG])
    audit.record(session, "feed_modules.updated", actor_id, ("org", org.id), {"changes": changes, "disabled_modules": org.disabled_modules})
    return await module_settings(session, org)
