"""The demo account and sample org created on a fresh database by the run command."""

from __future__ import annotations

from sqlalchemy import func, select

from feeds_server.actions import accounts, orgs
from feeds_server.actions.sample import load_sample_data
from feeds_server.config import Settings
from feeds_server.runtime.services import Services
from feeds_server.store.models import User
from feeds_server.store.scope import account_session

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_SLUG = "acme"


async def ensure_demo(settings: Settings) -> str:
    """Create the demo login and the "Acme Corp" org with sample data, unless the database has users."""
    services = Services.build(settings)
    try:
        password_hash = await services.passwords.hash(DEMO_PASSWORD)
        async with account_session(services.sessions) as session:
            users = (await session.execute(select(func.count()).select_from(User))).scalar_one()
            if users:
                return f"Feeds is at {settings.public_url}/ (the database already has accounts; no demo created)"
            now = services.clock()
            # Verified: its address is an example one, and the demo shows a finished account.
            user = await accounts.create_user(session, DEMO_EMAIL, "Demo Admin", password_hash, verified_at=now)
            org, _ = await orgs.create_org(session, user.id, "Acme Corp", DEMO_SLUG, "Europe/Berlin", now)
            await load_sample_data(session, org, user, services.passwords, now, password=DEMO_PASSWORD)
    finally:
        await services.close()
    return (
        f"Feeds is at {settings.public_url}/\n"
        f"Demo sign-in: {DEMO_EMAIL} / {DEMO_PASSWORD} (org '{DEMO_SLUG}').\n"
        f"Sample colleagues sign in with the same password, e.g. maya.patel@{DEMO_SLUG}.example.com"
    )
