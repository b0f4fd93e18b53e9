"""Rules about orgs and membership (F-ORG-1 … F-ORG-7), on plain values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from feeds_server import limits
from feeds_server.errors import Conflict, Forbidden, Gone, LimitExceeded, ValidationFailed

EDITION_TRIAL = "enterprise-trial"
EDITIONS = frozenset({EDITION_TRIAL, "free", "standard", "professional", "enterprise", "ultimate"})

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
# Slugs that would clash with paths of the server or the web client.
RESERVED_SLUGS = frozenset({"api", "admin", "static", "assets", "login", "signin", "signup", "ws", "me", "www"})


@dataclass(frozen=True)
class MembershipCounts:
    """How many orgs a user is in now, how many of those they created, and whether they administer one."""

    memberships: int
    created: int
    admin_somewhere: bool


def check_can_join(counts: MembershipCounts) -> None:
    """F-ORG-1: the 11th org is refused."""
    if counts.memberships >= limits.MAX_ORGS_PER_USER:
        raise LimitExceeded(
            "too_many_orgs",
            f"a user can belong to at most {limits.MAX_ORGS_PER_USER} orgs",
            limit=limits.MAX_ORGS_PER_USER,
        )


def check_can_create_org(counts: MembershipCounts) -> None:
    """F-ORG-2: at most 5 created; creating needs admin rights somewhere, except for a first org."""
    if counts.memberships > 0 and not counts.admin_somewhere:
        raise Forbidden("org_creation_not_allowed", "only an admin or super admin of an org can create another org")
    check_can_join(counts)
    if counts.created >= limits.MAX_ORGS_CREATED_PER_USER:
        raise LimitExceeded(
            "too_many_created_orgs",
            f"a user can create at most {limits.MAX_ORGS_CREATED_PER_USER} orgs",
            limit=limits.MAX_ORGS_CREATED_PER_USER,
        )


def normalize_slug(raw: str) -> str:
    """Access URL slugs are lower-case letters, digits and inner hyphens, 3 to 63 long."""
    slug = raw.strip().lower()
    if not (limits.MIN_SLUG_CHARS <= len(slug) <= limits.MAX_SLUG_CHARS) or not _SLUG.match(slug):
        raise ValidationFailed(
            "invalid_slug",
            f"a slug is {limits.MIN_SLUG_CHARS} to {limits.MAX_SLUG_CHARS} lower-case letters, digits "
            "or inner hyphens",
            field="slug",
        )
    if slug in RESERVED_SLUGS:
        raise Conflict("slug_taken", f"the slug {slug!r} is reserved", field="slug")
    return slug


def check_time_zone(name: str) -> str:
    """An IANA time zone name such as `Europe/Berlin`."""
    if name not in _zones():
        raise ValidationFailed("invalid_time_zone", f"unknown time zone {name!r}", field="time_zone")
    ZoneInfo(name)
    return name


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def check_invitation_open(status: str, expires_at: datetime, now: datetime) -> None:
    """F-ORG-5: pending and not past its 7 days; answers the same for accept and decline."""
    if status != "pending":
        raise Conflict("invitation_answered", f"this invitation was already {status}")
    if now >= expires_at:
        raise Gone("invitation_expired", "this invitation has expired; ask an admin for a new one")


def normalize_email(raw: str) -> str:
    email = raw.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or len(email) > limits.MAX_EMAIL_CHARS or any(c.isspace() for c in email):
        raise ValidationFailed("invalid_email", "not an email address", field="email")
    # Case-insensitive as people expect it, though RFC 5321 lets the local part differ by case.
    return f"{local}@{domain}".lower()
