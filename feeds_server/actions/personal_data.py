"""A person's own data, as one JSON document (GDPR access and portability, F-OPS-3).

It holds the account, and for every org the person has something in (member or not any more):
their membership, posts and messages they wrote, private messages they received, comments,
notifications (with why each came), followed records (with the fields they care about), rules,
notification settings (channels, snooze, quiet hours, zone, digest, dormancy), mutes, the browsers
subscribed to their pushes, the records they were told went dormant, and the sign-ins logged there.
Attachments are listed with the path to download them. An account-level read: it spans orgs, but
only ever reads rows that are the person's own or addressed to them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions import edits, reactions
from feeds_server.actions.notifications import settings_view
from feeds_server.actions.audit import SIGN_IN, SIGN_IN_FAILED
from feeds_server.actions.erasure import orgs_touching, person_of
from feeds_server.store.models import (
    Attachment,
    AuditEntry,
    AutoFollowRule,
    Comment,
    DormancyNotice,
    Follow,
    Group,
    Membership,
    Mute,
    Notification,
    NotificationSettings,
    Org,
    Post,
    Profile,
    PushSubscription,
    Record,
    Role,
    SavedItem,
    Territory,
    TerritoryMember,
    User,
)
from feeds_server.store.scope import allow_cross_org

FORMAT = "feeds-server/personal-data"
# Version 2 added the settings of notifications people can steer, mutes, push subscriptions,
# dormancy notices, notifications' reasons and follows' fields.
VERSION = 2


async def personal_data(session: AsyncSession, user_id: int, now: datetime, readable: Callable[[Org], bool] = lambda _: True) -> dict[str, Any]:
    """Everything of the user. An org `readable` refuses (an IP allow-list, F-SEC-4) is named, not read."""
    allow_cross_org(session)
    person = await person_of(session, user_id)
    user = (await session.execute(select(User).where(User.id == user_id))).scalar_one()
    orgs = (await session.execute(select(Org).where(Org.id.in_(await orgs_touching(session, person))).order_by(Org.id))).scalars().all()
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": now,
        "account": {"id": user.id, "email": user.email, "name": user.name, "created_at": user.created_at,
                    "default_org_id": user.default_org_id},
        "orgs": [],
    }
    for org in orgs:
        entry: dict[str, Any] = {"org": {"id": org.id, "slug": org.slug, "name": org.name}}
        if not readable(org):
            entry["withheld"] = "this org accepts requests only from its own networks (IP allow-list): export from there"
        else:
            entry.update(await _in_org(session, org, user_id))
        out["orgs"].append(entry)
    return out


async def _in_org(session: AsyncSession, org: Org, uid: int) -> dict[str, Any]:
    in_org = org.id
    membership = (
        await session.execute(
            select(Membership, Role.name, Profile.name)
            .outerjoin(Role, Role.id == Membership.role_id)
            .join(Profile, Profile.id == Membership.profile_id)
            .where(Membership.org_id == in_org, Membership.user_id == uid)
        )
    ).first()
    territories = (
        await session.execute(
            select(Territory.name).join(TerritoryMember, TerritoryMember.territory_id == Territory.id)
            .where(TerritoryMember.org_id == in_org, TerritoryMember.user_id == uid).order_by(Territory.name)
        )
    ).scalars().all()
    settings = (
        await session.execute(select(NotificationSettings).where(NotificationSettings.org_id == in_org, NotificationSettings.user_id == uid))
    ).scalar_one_or_none()
    return {
        "membership": None if membership is None else {
            "joined_at": membership[0].joined_at, "role": membership[1], "profile": membership[2],
            "is_super_admin": membership[0].is_super_admin, "territories": list(territories),
        },
        "notification_settings": None if settings is None else {
            **settings_view(settings, org.time_zone),
            "digest_sent_until": settings.digest_sent_until, "digest_due_at": settings.digest_due_at,
        },
        "mutes": await _mutes(session, in_org, uid),
        "push_subscriptions": await _push_subscriptions(session, in_org, uid),
        "dormancy_notices": await _dormancy_notices(session, in_org, uid),
        "posts": await _posts(session, org, Post.author_id == uid),
        "messages_received": await _posts(session, org, Post.recipient_id == uid),
        "comments": await _comments(session, in_org, uid),
        "earlier_versions": await edits.versions_written_by(session, in_org, uid),  # of their edited posts and comments
        "notifications": await _notifications(session, in_org, uid),
        "follows": await _follows(session, in_org, uid),
        "rules": await _rules(session, in_org, uid),
        "saved": await _saved(session, in_org, uid),
        "reactions": await reactions.reactions_of_person(session, in_org, uid),
        "sign_ins": await _sign_ins(session, in_org, uid),
    }


async def _posts(session: AsyncSession, org: Org, which: Any) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(Post, Group.name, User.name)
            .outerjoin(Group, Group.id == Post.group_id)
            .outerjoin(User, User.id == Post.author_id)
            .where(Post.org_id == org.id, which)
            .order_by(Post.id)
        )
    ).all()
    files: dict[int, list[dict[str, Any]]] = {}
    ids = [p.id for p, _, _ in rows]
    if ids:
        for a in (await session.execute(select(Attachment).where(Attachment.org_id == org.id, Attachment.post_id.in_(ids)).order_by(Attachment.id))).scalars():
            files.setdefault(a.post_id, []).append({
                "id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256,
                "download": f"/api/v1/orgs/{org.slug}/attachments/{a.id}",
            })
    return [
        {"id": p.id, "kind": p.kind, "author": author, "body": p.body, "group": group, "recipient_id": p.recipient_id,
         "module": p.module, "data": p.data or {}, "created_at": p.created_at, "attachments": files.get(p.id, [])}
        for p, group, author in rows
    ]


async def _comments(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = (await session.execute(select(Comment).where(Comment.org_id == org_id, Comment.author_id == uid).order_by(Comment.id))).scalars()
    return [{"id": c.id, "post_id": c.post_id, "body": c.body, "data": c.data or {}, "created_at": c.created_at} for c in rows]


async def _notifications(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = (
        await session.execute(select(Notification).where(Notification.org_id == org_id, Notification.user_id == uid).order_by(Notification.id))
    ).scalars()
    return [{"id": n.id, "kind": n.kind, "actor_id": n.actor_id, "post_id": n.post_id, "comment_id": n.comment_id,
             "record_id": n.record_id, "data": n.data or {}, "reason": n.reason, "created_at": n.created_at,
             "updated_at": n.updated_at, "read_at": n.read_at} for n in rows]


async def _follows(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(Follow, Record.crm_id, Record.name)
            .join(Record, Record.id == Follow.record_id)
            .where(Follow.org_id == org_id, Follow.user_id == uid)
            .order_by(Follow.module, Follow.record_id)
        )
    ).all()
    return [{"record": {"id": f.record_id, "module": f.module, "crm_id": crm_id, "name": name}, "source": f.source,
             "rule_id": f.rule_id, "fields": f.fields, "since": f.created_at}
            for f, crm_id, name in rows]


async def _rules(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = (
        await session.execute(select(AutoFollowRule).where(AutoFollowRule.org_id == org_id, AutoFollowRule.creator_id == uid).order_by(AutoFollowRule.id))
    ).scalars()
    return [{"id": r.id, "name": r.name, "module": r.module, "description": r.description, "criteria": r.criteria,
             "followers": r.followers, "fields": r.fields, "created_at": r.created_at} for r in rows]


async def _mutes(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Mute.target_kind, Mute.target_id, Mute.created_at).where(Mute.org_id == org_id, Mute.user_id == uid)
        .order_by(Mute.created_at, Mute.target_kind, Mute.target_id)
    )
    return [{"kind": kind, "id": target_id, "created_at": at} for kind, target_id, at in rows]


async def _push_subscriptions(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    """Where their pushes go and from which browser; not the browser's keys, which only encrypt."""
    rows = (
        await session.execute(select(PushSubscription).where(PushSubscription.org_id == org_id, PushSubscription.user_id == uid).order_by(PushSubscription.id))
    ).scalars()
    return [{"id": s.id, "endpoint": s.endpoint, "user_agent": s.user_agent, "created_at": s.created_at, "last_sent_at": s.last_sent_at}
            for s in rows]


async def _dormancy_notices(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(DormancyNotice.record_id, DormancyNotice.last_activity_at, DormancyNotice.created_at)
        .where(DormancyNotice.org_id == org_id, DormancyNotice.user_id == uid)
        .order_by(DormancyNotice.created_at, DormancyNotice.record_id)
    )
    return [{"record_id": record_id, "record_last_activity_at": last, "told_at": at} for record_id, last, at in rows]


async def _saved(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(SavedItem.post_id, SavedItem.created_at).where(SavedItem.org_id == org_id, SavedItem.user_id == uid).order_by(SavedItem.created_at)
    )
    return [{"post_id": post_id, "saved_at": at} for post_id, at in rows]


async def _sign_ins(session: AsyncSession, org_id: int, uid: int) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(AuditEntry)
            .where(AuditEntry.org_id == org_id, AuditEntry.actor_user_id == uid, or_(AuditEntry.action == SIGN_IN, AuditEntry.action == SIGN_IN_FAILED))
            .order_by(AuditEntry.id)
        )
    ).scalars()
    return [{"action": e.action, "ip": e.ip, "at": e.created_at, "details": e.details or {}} for e in rows]
