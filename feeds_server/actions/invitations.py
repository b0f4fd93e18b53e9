"""Invitations by email, answerable for 7 days (F-ORG-5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.secrets import tokens
from feeds_server.actions import audit
from feeds_server.actions.orgs import join_org, lock_user
from feeds_server.domain import permissions as perms
from feeds_server.domain.orgs import check_invitation_open, normalize_email
from feeds_server.errors import Conflict, Forbidden, NotFound
from feeds_server.store.events import append_event
from feeds_server.notify.emails import invitation_payload
from feeds_server.store.models import EmailJob, Invitation, Membership, Org, Profile, Role, User
from feeds_server.store.scope import allow_cross_org, get_in_org, set_org


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    link_token: str


async def invite(
    session: AsyncSession, org: Org, inviter: User, email: str, role_id: int | None, profile_id: int | None, now: datetime
) -> NewInvitation:
    """A new invitation replaces a pending one for the same address."""
    email = normalize_email(email)
    if role_id is not None and await get_in_org(session, Role, role_id) is None:
        raise NotFound("role_not_found", "no such role")
    if profile_id is not None and await get_in_org(session, Profile, profile_id) is None:
        raise NotFound("profile_not_found", "no such profile")
    member = (
        await session.execute(
            select(Membership.id).join(User, User.id == Membership.user_id).where(User.email == email)
        )
    ).first()
    if member:
        raise Conflict("already_member", "this person is already a member of the org", field="email")
    await session.execute(
        update(Invitation)
        .where(Invitation.email == email, Invitation.status == "pending")
        .values(status="replaced", responded_at=now)
    )
    secret = tokens.new_secret(tokens.INVITATION_PREFIX)
    invitation = Invitation(
        email=email,
        invited_by_user_id=inviter.id,
        role_id=role_id,
        profile_id=profile_id,
        token_hash=tokens.hash_secret(secret),
        status="pending",
        created_at=now,
        expires_at=now + limits.INVITATION_TTL,
    )
    session.add(invitation)
    await session.flush()
    # The email goes through the outbox, sent by the notifier worker (docs/notifications.md).
    session.add(
        EmailJob(
            kind="invitation", to_email=email, invitation_id=invitation.id, status="pending", created_at=now, next_attempt_at=now,
            payload=invitation_payload(org, inviter, invitation.id, invitation.expires_at, secret),
        )
    )
    append_event(session, "invitation.created", {"invitation_id": invitation.id, "email": email}, inviter.id)
    audit.record(session, "invitation.created", inviter.id, ("invitation", invitation.id), {"email": email, "role_id": role_id, "profile_id": profile_id}, now)
    return NewInvitation(invitation, secret)


async def list_org_invitations(session: AsyncSession, status: str | None) -> list[Invitation]:
    stmt = select(Invitation).order_by(Invitation.id.desc())
    if status:
        stmt = stmt.where(Invitation.status == status)
    return list((await session.execute(stmt)).scalars())


async def revoke(session: AsyncSession, invitation_id: int, actor_id: int, now: datetime) -> None:
    invitation = await get_in_org(session, Invitation, invitation_id)
    if invitation is None:
        raise NotFound("invitation_not_found", "no such invitation")
    if invitation.status != "pending":
        raise Conflict("invitation_answered", f"this invitation was already {invitation.status}")
    invitation.status = "revoked"
    invitation.responded_at = now
    await session.flush()
    append_event(session, "invitation.revoked", {"invitation_id": invitation.id}, actor_id)
    audit.record(session, "invitation.revoked", actor_id, ("invitation", invitation.id), {"email": invitation.email}, now)


async def pending_for_user(session: AsyncSession, user: User, now: datetime) -> list[tuple[Invitation, Org]]:
    """Pending, unexpired invitations to the user's email, except orgs that restrict by IP (F-ORG-5).
    None until the address is verified: anyone can sign up with any address."""
    if user.email_verified_at is None:
        return []
    allow_cross_org(session)
    rows = (
        await session.execute(
            select(Invitation, Org)
            .join(Org, Org.id == Invitation.org_id)
            .where(Invitation.email == user.email, Invitation.status == "pending", Invitation.expires_at > now)
            .order_by(Invitation.id)
        )
    ).all()
    return [(inv, org) for inv, org in rows if not org.ip_allowlist]


async def _for_invitee(session: AsyncSession, user: User, invitation_id: int | None, link_token: str | None) -> tuple[Invitation, Org]:
    """The invitation, answered by the account of the address it was sent to: by its id once that
    address is verified, or through its link, which only reached that address's mailbox."""
    if link_token is None and user.email_verified_at is None:
        raise Forbidden("email_not_verified", "confirm your email address first (the link in the email we sent)")
    allow_cross_org(session)
    stmt = select(Invitation, Org).join(Org, Org.id == Invitation.org_id).with_for_update(of=Invitation)
    if link_token is not None:
        stmt = stmt.where(Invitation.token_hash == tokens.hash_secret(link_token))
    else:
        stmt = stmt.where(Invitation.id == invitation_id)
    row = (await session.execute(stmt)).first()
    # Someone else's invitation answers as one that does not exist.
    if row is None or row[0].email != user.email:
        raise NotFound("invitation_not_found", "no such invitation")
    invitation, org = row
    if link_token is None and org.ip_allowlist:
        raise Forbidden("invitation_link_required", "this org restricts access by IP: use the link in the invitation email")
    return invitation, org


async def accept(
    session: AsyncSession, user_id: int, now: datetime, invitation_id: int | None = None, link_token: str | None = None
) -> tuple[Org, Membership]:
    user = await lock_user(session, user_id)
    invitation, org = await _for_invitee(session, user, invitation_id, link_token)
    check_invitation_open(invitation.status, invitation.expires_at, now)
    set_org(session, org.id)
    profile_id = invitation.profile_id or await _standard_profile_id(session)
    membership = await join_org(session, user, org, profile_id, invitation.role_id, now)
    invitation.status = "accepted"
    invitation.responded_at = now
    if user.email_verified_at is None:
        user.email_verified_at = now  # through the invitation's link, which came to this address
    await session.flush()
    return org, membership


async def decline(
    session: AsyncSession, user_id: int, now: datetime, invitation_id: int | None = None, link_token: str | None = None
) -> None:
    user = await lock_user(session, user_id)
    invitation, org = await _for_invitee(session, user, invitation_id, link_token)
    check_invitation_open(invitation.status, invitation.expires_at, now)
    set_org(session, org.id)
    invitation.status = "declined"
    invitation.responded_at = now
    await session.flush()
    append_event(session, "invitation.declined", {"invitation_id": invitation.id}, user.id)


async def _standard_profile_id(session: AsyncSession) -> int:
    profile = (await session.execute(select(Profile).where(Profile.name == perms.STANDARD_PROFILE))).scalar_one_or_none()
    if profile is None:
        profile = (await session.execute(select(Profile).order_by(Profile.id))).scalars().first()
    assert profile is not None, "every org has a profile"
    return profile.id


__all__ = ["NewInvitation", "accept", "decline", "invite", "list_org_invitations", "pending_for_user", "revoke"]
