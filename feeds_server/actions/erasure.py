"""Erasing a person on request (GDPR, F-OPS-3).

What goes, in every org the person ever left a trace in:
- their posts and private messages, with their attachments' files (others' comments under them go
  with them, as when an author deletes a post, F-POST-8), and private messages addressed to them;
- their comments on others' items; their notifications, follows, rules, notification settings,
  mutes, dormancy notices, push subscriptions, live-connection marks, territory and group
  memberships, pending invitations to their address, retry keys, queued emails and notes to the CRM;
- pushes of what they did (a notification they caused): waiting, held for quiet hours, or set aside
  as dead letters, a push carries their name and an excerpt of their words, so it goes;
- their sign-ins in the audit log (the addresses), and the event history of what they did;
- their membership; then, for a whole account, the login itself (name, email, password, tokens).

What stays, anonymised, because others' items must stay whole: record-update items they caused in
the CRM (no author any more), the admin actions they took in the audit log (no actor), groups and
integrations they created (no creator). Others' messages that mention them say `@(deleted)`; every
stored document that named them (event history, notifications, business cards, the audit log) is
rewritten without their name or address (domain/scrub.py).

Each deletion is an event in the same transaction (`post.deleted`, `comment.deleted`,
`group.updated`, `member.removed`), so others' live feeds drop the items and the person's own live
connections close. A super admin's org passes to its longest-standing admin (or member); an org of
which they are the only member is deleted with them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, and_, cast, delete, or_, select, tuple_, union, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions import audit, edits, reactions, rules
from feeds_server.actions.orgs import delete_org
from feeds_server.actions.posts import RECORD
from feeds_server.domain import permissions as perms
from feeds_server.domain.audience import SOURCE_USER, group_channel, user_channel
from feeds_server.domain.scrub import Person, scrub, scrub_text, search_terms
from feeds_server.errors import NotFound
from feeds_server.runtime.services import Services
from feeds_server.store.base import utcnow
from feeds_server.store.events import append_event, take_committed_events
from feeds_server.store.files import LocalFileStore
from feeds_server.store.models import (
    Attachment,
    AuditEntry,
    AuthToken,
    AutoFollowRule,
    Comment,
    DormancyNotice,
    EmailJob,
    Event,
    EventChannel,
    Follow,
    Group,
    GroupSource,
    IdempotencyKey,
    Integration,
    Invitation,
    Membership,
    Mention,
    Mute,
    Notification,
    NotificationSettings,
    Org,
    Pin,
    Post,
    PostAudience,
    Presence,
    Profile,
    PushJob,
    PushSubscription,
    Record,
    SavedItem,
    TerritoryMember,
    User,
    WebhookDelivery,
)
from feeds_server.store.scope import account_session, allow_cross_org, set_org

BATCH = 500


@dataclass
class OrgErasure:
    """What erasing a person did in one org."""

    org_id: int
    posts: int = 0
    comments: int = 0
    file_keys: list[str] = field(default_factory=list)
    # The thumbnails of those files (notify/previews.py): removed with them, not counted as files.
    preview_keys: list[str] = field(default_factory=list)
    org_deleted: bool = False
    new_super_admin: int | None = None

    def summary(self) -> dict[str, Any]:
        return {"posts": self.posts, "comments": self.comments, "files": len(self.file_keys),
                "org_deleted": self.org_deleted, "new_super_admin": self.new_super_admin}


async def person_of(session: AsyncSession, user_id: int) -> Person:
    user = (await session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()
    if user is None:
        raise NotFound("user_not_found", "no such user")
    return Person(user.id, user.email.lower(), user.name)


async def erase_in_org(
    session: AsyncSession, org: Org, person: Person, actor_id: int | None, via: str, now: datetime, delete_if_alone: bool = False
) -> OrgErasure:
    """Everything of `person` in the session's org, in its transaction. The person's login stays.

    `delete_if_alone`: an org of which they are the super admin and only member is deleted (for a
    whole account); otherwise the super admin role passes to someone else first.
    """
    done = OrgErasure(org.id)
    membership = (await session.execute(select(Membership).where(Membership.user_id == person.user_id))).scalar_one_or_none()
    if membership is not None and membership.is_super_admin:
        successor = await _successor(session, person.user_id)
        if successor is None and delete_if_alone:
            done.file_keys = await _all_file_keys(session)
            done.preview_keys = await _preview_keys(session, None)
            await delete_org(session, org)
            done.org_deleted = True
            return done
        if successor is not None:
            successor.is_super_admin = True
            done.new_super_admin = successor.user_id
            append_event(session, "member.updated", {"user_id": successor.user_id, "role_id": successor.role_id, "profile_id": successor.profile_id}, actor_id)
            audit.record(session, "org.super_admin_handed_over", actor_id, ("user", successor.user_id), {"via": via}, now)
    await _forget_pushes(session, person)  # before their posts go, and the notifications of those with them
    await _delete_posts(session, person, actor_id, done)
    await _delete_comments(session, person, actor_id, done)
    await _unmention(session, person)
    await _forget_relations(session, org, person, actor_id)
    await _forget_history(session, person)
    if membership is not None:
        await session.delete(membership)
        await session.execute(
            update(User).where(User.id == person.user_id, User.default_org_id == org.id).values(default_org_id=None, default_org_lost=True)
        )
        append_event(session, "member.removed", {"user_id": person.user_id}, actor_id)
    audit.record(session, "member.erased", actor_id, ("user", person.user_id), {"via": via, **done.summary()}, now)
    await session.flush()
    return done


async def _successor(session: AsyncSession, user_id: int) -> Membership | None:
    """The longest-standing admin, or else the longest-standing member."""
    rows = (
        await session.execute(
            select(Membership, Profile.permissions)
            .join(Profile, Profile.id == Membership.profile_id)
            .where(Membership.user_id != user_id)
            .order_by(Membership.joined_at, Membership.id)
        )
    ).all()
    admins = [m for m, permissions in rows if perms.ADMIN in (permissions or [])]
    return (admins or [m for m, _ in rows] or [None])[0]


async def _all_file_keys(session: AsyncSession) -> list[str]:
    return list((await session.execute(select(Attachment.storage_key))).scalars())


async def org_file_keys(session: AsyncSession) -> list[str]:
    """Every stored file of the session's org and every thumbnail of one: what goes when the org does."""
    return await _all_file_keys(session) + await _preview_keys(session, None)


async def _preview_keys(session: AsyncSession, post_ids: list[int] | None) -> list[str]:
    """The thumbnails of the given posts' files (of every file of the org when None)."""
    stmt = select(Attachment.preview_key).where(Attachment.preview_key.is_not(None))
    if post_ids is not None:
        stmt = stmt.where(Attachment.post_id.in_(post_ids))
    return list((await session.execute(stmt)).scalars())


async def _channels_of(session: AsyncSession, post_ids: set[int] | list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    rows = await session.execute(select(PostAudience.post_id, PostAudience.channel).where(PostAudience.post_id.in_(list(post_ids))))
    for post_id, channel in rows:
        out.setdefault(post_id, []).append(channel)
    return out


async def _delete_posts(session: AsyncSession, person: Person, actor_id: int | None, done: OrgErasure) -> None:
    """Their posts and messages, and private messages to them; record items they caused stay, unsigned."""
    uid = person.user_id
    theirs = or_(and_(Post.author_id == uid, Post.kind != RECORD), Post.recipient_id == uid)
    while ids := list((await session.execute(select(Post.id).where(theirs).order_by(Post.id).limit(BATCH))).scalars()):
        channels = await _channels_of(session, ids)
        done.file_keys += (await session.execute(select(Attachment.storage_key).where(Attachment.post_id.in_(ids)))).scalars()
        done.preview_keys += await _preview_keys(session, ids)
        await session.execute(delete(Post).where(Post.id.in_(ids)))
        for post_id in ids:
            append_event(session, "post.deleted", {"post_id": post_id}, actor_id, channels.get(post_id, []))
        done.posts += len(ids)
    await session.execute(update(Post).where(Post.author_id == uid).values(author_id=None))


async def _delete_comments(session: AsyncSession, person: Person, actor_id: int | None, done: OrgErasure) -> None:
    stmt = select(Comment.id, Comment.post_id).where(Comment.author_id == person.user_id).order_by(Comment.id).limit(BATCH)
    while rows := (await session.execute(stmt)).all():
        channels = await _channels_of(session, {post_id for _, post_id in rows})
        await session.execute(delete(Comment).where(Comment.id.in_([comment_id for comment_id, _ in rows])))
        for post_id, n in Counter(post_id for _, post_id in rows).items():
            await session.execute(update(Post).where(Post.id == post_id).values(comment_count=Post.comment_count - n))
        for comment_id, post_id in rows:
            append_event(session, "comment.deleted", {"post_id": post_id, "comment_id": comment_id}, actor_id, channels.get(post_id, []))
        done.comments += len(rows)


async def _unmention(session: AsyncSession, person: Person) -> None:
    """Others' messages that mention them keep their text, with `@(deleted)` for the mention."""
    last = 0
    mentions = and_(Mention.kind == "user", Mention.target_id == person.user_id)
    while rows := (await session.execute(select(Mention.id, Mention.post_id, Mention.comment_id).where(mentions, Mention.id > last).order_by(Mention.id).limit(BATCH))).all():
        last = rows[-1].id
        await _rewrite_bodies(session, Post, {r.post_id for r in rows if r.comment_id is None}, person)
        await _rewrite_bodies(session, Comment, {r.comment_id for r in rows if r.comment_id is not None}, person)
    await session.execute(delete(Mention).where(mentions))


async def _rewrite_bodies(session: AsyncSession, model: type[Post] | type[Comment], ids: set[int], person: Person) -> None:
    if not ids:
        return
    for item_id, body in (await session.execute(select(model.id, model.body).where(model.id.in_(ids)))).all():
        new = scrub_text(body, person)
        if new != body:
            await session.execute(update(model).where(model.id == item_id).values(body=new))


async def _forget_pushes(session: AsyncSession, person: Person) -> None:
    """Their own pushes, and pushes of notifications they caused, whatever their state: a waiting or
    held one would still go out with their name, a dead letter keeps its payload for an operator to
    put back."""
    theirs = select(Notification.id).where(Notification.actor_id == person.user_id)
    await session.execute(delete(PushJob).where(or_(PushJob.user_id == person.user_id, PushJob.notification_id.in_(theirs))))


async def _drop_pushes_naming(session: AsyncSession, person: Person) -> None:
    """Others' pushes whose title or excerpt names them (a push is rendered text: nothing to rewrite
    it by, and it is only a copy of a notification, which stays, rewritten)."""
    terms = search_terms(person)
    last = 0
    stmt = select(PushJob.id, PushJob.payload).where(_mentions_them(PushJob.payload, person))
    while rows := (await session.execute(stmt.where(PushJob.id > last).order_by(PushJob.id).limit(BATCH))).all():
        last = rows[-1][0]
        naming = [job_id for job_id, payload in rows if any(term in _json_text(payload) for term in terms)]
        if naming:
            await session.execute(delete(PushJob).where(PushJob.id.in_(naming)))


async def _forget_relations(session: AsyncSession, org: Org, person: Person, actor_id: int | None) -> None:
    uid = person.user_id
    await session.execute(delete(Notification).where(Notification.user_id == uid))
    await session.execute(update(Notification).where(Notification.actor_id == uid).values(actor_id=None))
    await session.execute(delete(Follow).where(Follow.user_id == uid))
    await session.execute(delete(SavedItem).where(SavedItem.user_id == uid))
    await reactions.forget_person(session, uid, actor_id)
    await session.execute(update(Pin).where(Pin.pinned_by_user_id == uid).values(pinned_by_user_id=None))
    for rule in (await session.execute(select(AutoFollowRule).where(AutoFollowRule.creator_id == uid))).scalars().all():
        await rules.release_follows(session, rule.id)
        await session.delete(rule)
        append_event(session, "rule.deleted", {"rule_id": rule.id}, actor_id)
    for rule in (await session.execute(select(AutoFollowRule))).scalars().all():
        users = list((rule.followers or {}).get("users") or [])
        if uid in users:
            rule.followers = {**rule.followers, "users": [u for u in users if u != uid]}
            rule.version += 1
            append_event(session, "rule.updated", {"rule_id": rule.id}, actor_id)
    groups = (await session.execute(select(GroupSource.group_id).where(GroupSource.kind == SOURCE_USER, GroupSource.ref_id == uid))).scalars().all()
    await session.execute(delete(GroupSource).where(GroupSource.kind == SOURCE_USER, GroupSource.ref_id == uid))
    for group_id, name in (await session.execute(select(Group.id, Group.name).where(Group.id.in_(set(groups))))).all():
        # Real time re-subscribes the group's members (as when an admin edits its sources).
        append_event(session, "group.updated", {"group_id": group_id, "name": name, "sources_changed": True}, actor_id, [group_channel(group_id)])
    await session.execute(update(Group).where(Group.created_by_user_id == uid).values(created_by_user_id=None))
    await session.execute(delete(TerritoryMember).where(TerritoryMember.user_id == uid))
    await session.execute(delete(NotificationSettings).where(NotificationSettings.user_id == uid))
    await session.execute(delete(PushSubscription).where(PushSubscription.user_id == uid))  # its pushes go with it
    await session.execute(delete(Mute).where(Mute.user_id == uid))
    await session.execute(delete(DormancyNotice).where(DormancyNotice.user_id == uid))
    await session.execute(delete(Presence).where(Presence.user_id == uid))
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == uid))
    await _forget_replays(session, person)
    await session.execute(delete(EmailJob).where(or_(EmailJob.user_id == uid, EmailJob.to_email == person.email)))
    await session.execute(delete(Invitation).where(Invitation.email == person.email))
    await session.execute(update(Invitation).where(Invitation.invited_by_user_id == uid).values(invited_by_user_id=None))
    await session.execute(update(Integration).where(Integration.created_by_user_id == uid).values(created_by_user_id=None))
    await session.execute(update(Record).where(Record.owner_id == uid).values(owner_id=None))
    await session.execute(update(Record).where(Record.creator_id == uid).values(creator_id=None))
    await session.execute(update(Org).where(Org.id == org.id, Org.created_by_user_id == uid).values(created_by_user_id=None))


async def _forget_replays(session: AsyncSession, person: Person) -> None:
    """Others' stored answers to retried requests (store/idempotency.py) that name them are dropped:
    a retry would otherwise replay their name."""
    terms = [t.encode() for t in search_terms(person)]
    last: tuple[int, str] = (0, "")
    cols = (IdempotencyKey.user_id, IdempotencyKey.key, IdempotencyKey.response)
    order = (IdempotencyKey.user_id, IdempotencyKey.key)
    while rows := (await session.execute(select(*cols).where(tuple_(*order) > tuple_(*last)).order_by(*order).limit(BATCH))).all():
        last = (rows[-1].user_id, rows[-1].key)
        for user_id, key, body in rows:
            if any(term in body for term in terms):
                await session.execute(delete(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))


async def _forget_history(session: AsyncSession, person: Person) -> None:
    """The event history of what they did goes; every stored document that names them is rewritten.

    Their own channel goes too: on SQLite a later account may be given the same id.
    """
    uid = person.user_id
    await session.execute(delete(PostAudience).where(PostAudience.channel == user_channel(uid)))
    await session.execute(delete(EventChannel).where(EventChannel.channel == user_channel(uid)))
    while seqs := list((await session.execute(select(Event.seq).where(Event.actor_user_id == uid).order_by(Event.seq).limit(BATCH))).scalars()):
        await session.execute(delete(EventChannel).where(EventChannel.seq.in_(seqs)))
        await session.execute(delete(Event).where(Event.seq.in_(seqs)))
    await audit.forget_sign_ins(session, uid)
    await session.execute(update(AuditEntry).where(AuditEntry.actor_user_id == uid).values(actor_user_id=None))
    await _scrub_column(session, Event, Event.payload, person)
    await _scrub_column(session, Post, Post.data, person, Post.kind == RECORD)
    await edits.forget_person(session, person)  # earlier texts of edited items (F-POST-9)
    await _scrub_column(session, Notification, Notification.data, person)
    await _scrub_column(session, AuditEntry, AuditEntry.details, person)
    await _scrub_column(session, EmailJob, EmailJob.payload, person)
    await _drop_pushes_naming(session, person)
    await _drop_their_notes(session, person)


def _json_text(doc: Any) -> str:
    return orjson.dumps(doc).decode()


def _mentions_them(column: Any, person: Person) -> Any:
    """A superset of the rows whose document names the person, found by the database."""
    as_text = cast(column, Text)
    escaped = (t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for t in search_terms(person))
    return or_(*(as_text.like(f"%{t}%", escape="\\") for t in escaped))


async def _scrub_column(session: AsyncSession, model: Any, column: Any, person: Person, *where: Any) -> None:
    last = 0
    stmt = select(model.id, column).where(_mentions_them(column, person), *where).order_by(model.id).limit(BATCH)
    while rows := (await session.execute(stmt.where(model.id > last))).all():
        last = rows[-1][0]
        for row_id, doc in rows:
            new = scrub(doc, person)
            if new != doc:
                await session.execute(update(model).where(model.id == row_id).values({column.key: new}))


async def _drop_their_notes(session: AsyncSession, person: Person) -> None:
    """Notes of their comments, queued for (or sent to) the CRM: not sent, not kept."""
    last = 0
    stmt = select(WebhookDelivery.id, WebhookDelivery.payload).where(_mentions_them(WebhookDelivery.payload, person))
    while rows := (await session.execute(stmt.where(WebhookDelivery.id > last).order_by(WebhookDelivery.id).limit(BATCH))).all():
        last = rows[-1][0]
        theirs = [row_id for row_id, payload in rows if person.is_named_by((payload or {}).get("author"))]
        if theirs:
            await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(theirs)))


# --- a whole account ------------------------------------------------------------------------------
async def orgs_touching(session: AsyncSession, person: Person) -> list[int]:
    """Every org holding something of the person, member or not any more (an account-level read)."""
    allow_cross_org(session)
    uid = person.user_id
    found = union(
        select(Membership.org_id).where(Membership.user_id == uid),
        select(Post.org_id).where(or_(Post.author_id == uid, Post.recipient_id == uid)),
        select(Comment.org_id).where(Comment.author_id == uid),
        select(Mention.org_id).where(Mention.kind == "user", Mention.target_id == uid),
        select(Notification.org_id).where(or_(Notification.user_id == uid, Notification.actor_id == uid)),
        select(Follow.org_id).where(Follow.user_id == uid),
        select(AutoFollowRule.org_id).where(AutoFollowRule.creator_id == uid),
        select(GroupSource.org_id).where(GroupSource.kind == SOURCE_USER, GroupSource.ref_id == uid),
        select(TerritoryMember.org_id).where(TerritoryMember.user_id == uid),
        select(NotificationSettings.org_id).where(NotificationSettings.user_id == uid),
        select(Mute.org_id).where(Mute.user_id == uid),
        select(DormancyNotice.org_id).where(DormancyNotice.user_id == uid),
        select(PushSubscription.org_id).where(PushSubscription.user_id == uid),
        select(Presence.org_id).where(Presence.user_id == uid),
        select(Record.org_id).where(or_(Record.owner_id == uid, Record.creator_id == uid)),
        select(Invitation.org_id).where(or_(Invitation.email == person.email, Invitation.invited_by_user_id == uid)),
        # An account's own emails name no org (they go with the account: actions/account_mail.py).
        select(EmailJob.org_id).where(or_(EmailJob.user_id == uid, EmailJob.to_email == person.email), EmailJob.org_id.is_not(None)),
        select(AuditEntry.org_id).where(AuditEntry.actor_user_id == uid),
        select(Event.org_id).where(Event.actor_user_id == uid),
    )
    return sorted(set((await session.execute(found)).scalars()))


@dataclass
class AccountErasure:
    user_id: int
    orgs: dict[int, OrgErasure] = field(default_factory=dict)


async def erase_account(services: Services, user_id: int, via: str, now: datetime | None = None) -> AccountErasure:
    """Erase a login and everything of it, org by org (one transaction each), then the login.

    Its sign-ins end first, so nothing new is written while the rest goes. Run again after a failure,
    it goes on with what is left.
    """
    now = now or utcnow()
    async with account_session(services.sessions) as session:
        person = await person_of(session, user_id)
        token_ids = list((await session.execute(select(AuthToken.id).where(AuthToken.user_id == user_id))).scalars())
        await session.execute(update(AuthToken).where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None)).values(revoked_at=now))
        org_ids = await orgs_touching(session, person)
    for token_id in token_ids:
        await services.control({"control": "auth_revoked", "auth_token_id": token_id})
    result = AccountErasure(user_id)
    for org_id in org_ids:
        async with services.sessions() as session:
            set_org(session, org_id)
            async with session.begin():
                org = (await session.execute(select(Org).where(Org.id == org_id))).scalar_one_or_none()
                if org is None:
                    continue
                result.orgs[org_id] = await erase_in_org(session, org, person, None, via, now, delete_if_alone=True)
        await services.publish(take_committed_events(session))
        await delete_files(services, result.orgs[org_id].file_keys + result.orgs[org_id].preview_keys)
    async with account_session(services.sessions) as session:
        await session.execute(delete(User).where(User.id == user_id))
    return result


async def delete_files(services: Services, keys: list[str]) -> None:
    store = LocalFileStore(services.settings.files_dir)
    for key in keys:
        await store.delete(key)
