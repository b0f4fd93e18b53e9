"""Every table of the schema. Importing this package fills `Base.metadata` for Alembic."""

from feeds_server.store.models.events import Event
from feeds_server.store.models.identity import AuthToken, User
from feeds_server.store.models.orgs import (
    Integration,
    Invitation,
    Membership,
    Org,
    Profile,
    Role,
    Territory,
    TerritoryMember,
)

__all__ = [
    "AuthToken",
    "Event",
    "Integration",
    "Invitation",
    "Membership",
    "Org",
    "Profile",
    "Role",
    "Territory",
    "TerritoryMember",
    "User",
]
