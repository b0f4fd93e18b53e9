"""In-app notifications and the mention-email outbox (F-NOTIF-1, F-NOTIF-2).

Written in the transaction of the post or comment that causes them, so a mention and its
notification and email job exist together or not at all. Never for one's own actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.domain.audience import OrgGraph, user_channel
from feeds_server.domain.messages import MentionRef
from feeds_server.errors import NotFound
from feeds_server.store.events import append_event
from feeds_server.store.models import EmailJob, Notification, NotificationSettings, User

MENTION = "mention"
RECORD_OWNED = "record_owned"
RECORD_FOLLOWED = "record_followed"
# The live event of new notifications: one per recipient and transaction, listing theirs in order.
NOTIFICATIONS_CREATED = "notifications.created"


def mentioned_users(graph: OrgGraph, refs: Sequence[MentionRef]) -> dict[int, str]:
    """Users behind each mention, with how they were reached (`user`, `role` or `group`); direct wins."""
    reached: dict[int, str] = {}
    for ref in sorted(refs, key=lambda r: ("user", "group", "role").index(r.kind)):
        if ref.kind == "user":
            users: Iterable[int] = [ref.target_id] if ref.target_id in graph.member_roles else []
        elif ref.kind == "role":
            users = graph.role_holders(ref.target_id)
        else:
            users = graph.group_members(ref.target_id)
        for user_id in users:
            reached.setdefault(user_id, ref.kind)
    return reached


async def notify_mentions(
    session: AsyncSession,
    graph: OrgGraph,
    refs: Sequence[MentionRef],
    author_id: int,
    post_id: int,
    comment_id: int | None,
    audience: frozenset[int],
    excerpt: str,
    now: datetime,
) -> list[int]:
    """Notify everyone a message mentions who can see it, except its author; queue their emails.

    Emails go to direct and group mentions (F-NOTIF-2); a role mention notifies in the app only.
    """
    reached = {u: how for u, how in mentioned_users(graph, refs).items() if u != author_id and u in audience}
    if not reached:
        return []
    settings = await _settings(session, reached)
    emails = dict((await session.execute(select(User.id, User.email).where(User.id.in_(reached)))).all())
    notes: list[Notification] = []
    for user_id, how in sorted(reached.items()):
        note = Notification(
            user_id=user_id, kind=MENTION, actor_id=author_id, post_id=post_id, comment_id=comment_id,
            data={"via": how, "excerpt": excerpt}, created_at=now,
        )
        session.add(note)
        await session.flush()
        notes.append(note)
        wants_email, window = settings.get(user_id, (True, limits.DEFAULT_MENTION_BATCH_SECONDS))
        if how in {"user", "group"} and wants_email and user_id in emails:
            session.add(
                EmailJob(
                    kind=MENTION, user_id=user_id, to_email=emails[user_id], notification_id=note.id,
                    payload={"post_id": post_id, "comment_id": comment_id}, status="pending",
                    created_at=now, next_attempt_at=now + timedelta(seconds=window),
                )
            )
    await session.flush()
    announce(session, notes)
    return sorted(reached)


async def notify_record_change(
    session: AsyncSession, post_id: int, actor_id: int | None, owner_id: int | None, follower_ids: Iterable[int], data: dict[str, Any], now: datetime
) -> None:
    """F-NOTIF-1: the owner and the followers of a changed record hear of it (in the app only)."""
    targets: dict[int, str] = {}
    if owner_id is not None:
        targets[owner_id] = RECORD_OWNED
    for user_id in follower_ids:
        targets.setdefault(user_id, RECORD_FOLLOWED)
    if actor_id is not None:
        targets.pop(actor_id, None)
    notes = [Notification(user_id=u, kind=kind, actor_id=actor_id, post_id=post_id, data=data, created_at=now) for u, kind in sorted(targets.items())]
    session.add_all(notes)
    await session.flush()
    announce(session, notes)


class _Noted(Protocol):
    """What `notification_view` reads: a `Notification`, or a row a record batch wrote in bulk."""

    id: int
    user_id: int
    kind: str
    actor_id: int | None
    post_id: int | None
    comment_id: int | None
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


def announce(session: AsyncSession, notes: Sequence[_Noted]) -> None:
    """Queue one `notifications.created` event per recipient with their new notifications, in order.

    One event per recipient rather than per notification: a record batch notifies each follower of
    many items at once, and an event (with its history row) per notification was most of its events.
    The event's actor is the one who caused them all, or none when several people did.
    """
    by_user: dict[int, list[_Noted]] = {}
    for note in notes:
        by_user.setdefault(note.user_id, []).append(note)
    for user_id, mine in by_user.items():
        actors = {n.actor_id for n in mine}
        actor_id = actors.pop() if len(actors) == 1 else None
        append_event(session, NOTIFICATIONS_CREATED, {"notifications": [notification_view(n) for n in mine]}, actor_id, [user_channel(user_id)])


async def _settings(session: AsyncSession, users: Iterable[int]) -> dict[int, tuple[bool, int]]:
    rows = await session.execute(
        select(NotificationSettings.user_id, NotificationSettings.mention_emails, NotificationSettings.batch_window_seconds).where(
            NotificationSettings.user_id.in_(list(users))
        )
    )
    return {u: (on, window) for u, on, window in rows}


def notification_view(n: _Noted) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "actor_id": n.actor_id,
        "post_id": n.post_id,
        "comment_id": n.comment_id,
        "data": n.data or {},
        "created_at": n.created_at,
        "read_at": n.read_at,
    }


async def list_for(session: AsyncSession, user_id: int, unread_only: bool, before_id: int | None, limit: int) -> list[Notification]:
    stmt = select(Notification).where(Notification.user_id == user_id).order_by(Notification.id.desc()).limit(limit)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if before_id is not None:
        stmt = stmt.where(Notification.id < before_id)
    return list((await session.execute(stmt)).scalars())


async def unread_count(session: AsyncSession, user_id: int) -> int:
    stmt = select(func.count()).select_from(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    return (await session.execute(stmt)).scalar_one()


async def mark_read(session: AsyncSession, user_id: int, notification_id: int | None, now: datetime) -> int:
    """Mark one (or, with None, every) unread notification read; returns the unread count left."""
    stmt = update(Notification).where(Notification.user_id == user_id, Notification.read_at.is_(None)).values(read_at=now)
    if notification_id is not None:
        found = (await session.execute(select(Notification.id).where(Notification.id == notification_id, Notification.user_id == user_id))).first()
        if found is None:
            raise NotFound("notification_not_found", "no such notification")
        stmt = stmt.where(Notification.id == notification_id)
    await session.execute(stmt)
    left = await unread_count(session, user_id)
    append_event(session, "notifications.read", {"id": notification_id, "unread": left}, user_id, [user_channel(user_id)])
    return left


async def get_settings(session: AsyncSession, user_id: int) -> NotificationSettings:
    row = (await session.execute(select(NotificationSettings).where(NotificationSettings.user_id == user_id))).scalar_one_or_none()
    if row is None:
        row = NotificationSettings(user_id=user_id, mention_emails=True, batch_window_seconds=limits.DEFAULT_MENTION_BATCH_SECONDS)
        session.add(row)
        await session.flush()
    return row
