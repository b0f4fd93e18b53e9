"""Notifications and their deliveries: who hears of what, why, on which channel, and when
(F-NOTIF-1, F-NOTIF-2).

Every producer goes through the same pipeline, in the transaction of what it tells of: the
people concerned, less those who muted its record, group or post (a direct @mention always gets
through), less those who turned every channel of its kind off (domain/preferences.py); a row
per person with the `reason` they got it (domain/reasons.py); then `queue_deliveries` writes the
email and push jobs (the outboxes the notifier drains), due when the person's snooze and quiet
hours allow. Never for one's own actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Text, cast, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.domain import notification_text, reasons
from feeds_server.domain.audience import OrgGraph, user_channel
from feeds_server.domain.messages import MentionRef
from feeds_server.domain.preferences import (
    CHANNELS, DEFAULTS, DIGEST, DIGEST_OFF, EMAIL, GROUP_POST, IN_APP, KINDS, MENTION, PRIVATE_MESSAGE, PUSH, REACTION, RECORD_DORMANT,
    RECORD_FOLLOWED, RECORD_OWNED, Preferences, check_channels, matrix, zone,
)
from feeds_server.errors import LimitExceeded, NotFound
from feeds_server.store.bulk import insert_many
from feeds_server.store.events import append_event
from feeds_server.store.graph import load_graph
from feeds_server.store.models import EmailJob, Group, Membership, Mute, Notification, NotificationSettings, Org, PushJob, PushSubscription, Role, User
from feeds_server.store.scope import current_org

__all__ = [
    "MENTION", "PRIVATE_MESSAGE", "GROUP_POST", "REACTION", "RECORD_OWNED", "RECORD_FOLLOWED", "RECORD_DORMANT",
    "Mutes", "load_preferences", "load_mutes", "queue_deliveries", "reaches", "announce", "notification_view",
]

# The live event of new notifications: one per recipient and transaction, listing theirs in order.
NOTIFICATIONS_CREATED = "notifications.created"
# Kinds whose emails wait for the person's batch window and go out together (all but the digest,
# which is an email of its own).
BATCHED_EMAIL_KINDS = frozenset(KINDS) - {DIGEST}


# --- the pipeline every producer uses -------------------------------------------------------------
@dataclass(frozen=True)
class Mutes:
    """Who muted what, for the people of one notification batch."""

    pairs: frozenset[tuple[int, str, int]] = field(default_factory=frozenset)

    def muted(self, user_id: int, target_kind: str, target_id: int | None) -> bool:
        """Whether `user_id` muted that record, group or post (a None target is never muted)."""
        return target_id is not None and (user_id, target_kind, target_id) in self.pairs


async def load_preferences(session: AsyncSession, user_ids: Iterable[int], org_time_zone: str) -> dict[int, Preferences]:
    """Each member's choices in the session's org, in one query; a member without a settings row
    gets the defaults. Only members are in the answer: whoever left the org (their follows, their
    authorship stay behind) hears nothing more of it, whichever producer asks."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    stmt = (
        select(Membership.user_id, NotificationSettings)
        .outerjoin(
            NotificationSettings,
            (NotificationSettings.org_id == Membership.org_id) & (NotificationSettings.user_id == Membership.user_id),
        )
        .where(Membership.user_id.in_(ids))
    )
    default = Preferences.of(None, org_time_zone)
    return {u: Preferences.of(row, org_time_zone) if row is not None else default for u, row in await session.execute(stmt)}


async def load_mutes(session: AsyncSession, user_ids: Iterable[int]) -> Mutes:
    """The mutes of these people in the session's org, in one query."""
    ids = sorted(set(user_ids))
    if not ids:
        return Mutes()
    rows = await session.execute(select(Mute.user_id, Mute.target_kind, Mute.target_id).where(Mute.user_id.in_(ids)))
    return Mutes(frozenset((u, k, t) for u, k, t in rows))


async def members_and_mutes(session: AsyncSession, pairs: Iterable[tuple[int, int]]) -> tuple[frozenset[tuple[int, int]], dict[int, Mutes]]:
    """For the workers, at send time across orgs (an account session): which (org, person) pairs
    are still members, and each org's mutes of those people; two queries for a whole claim."""
    wanted = set(pairs)
    if not wanted:
        return frozenset(), {}
    orgs, people = {o for o, _ in wanted}, {u for _, u in wanted}
    stmt = select(Membership.org_id, Membership.user_id).where(Membership.org_id.in_(orgs), Membership.user_id.in_(people))
    members = frozenset(pair for pair in (tuple(r) for r in await session.execute(stmt)) if pair in wanted)
    by_org: dict[int, set[tuple[int, str, int]]] = {}
    stmt = select(Mute.org_id, Mute.user_id, Mute.target_kind, Mute.target_id).where(Mute.org_id.in_(orgs), Mute.user_id.in_(people))
    for org_id, user_id, kind, target in await session.execute(stmt):
        by_org.setdefault(org_id, set()).add((user_id, kind, target))
    return members, {o: Mutes(frozenset(p)) for o, p in by_org.items()}


def muted_now(mutes: Mutes, note: Any) -> bool:
    """Whether the person's mutes hold back a notification written before they chose them (the
    workers ask before sending): the same rules as when it was written, read from the row. Its
    record, the group it came through, or, for a comment or a reaction, the post's thread; a
    direct @mention always gets through."""
    reason = getattr(note, "reason", None) or {}
    if note.kind == MENTION and reason.get("code") == reasons.MENTIONED:
        return False
    user_id = note.user_id
    if mutes.muted(user_id, "record", getattr(note, "record_id", None)):
        return True
    group_id = reason.get("group_id")
    if group_id is None:
        group_id = (note.data or {}).get("group_id")
    if isinstance(group_id, int) and mutes.muted(user_id, "group", group_id):
        return True
    return (note.comment_id is not None or note.kind == REACTION) and mutes.muted(user_id, "post", note.post_id)


def reaches(prefs: Preferences, kind: str, reason: Mapping[str, Any] | None = None) -> bool:
    """Whether a notification of `kind` is worth a row for this person: some channel of it is on
    (a role mention only ever reaches the app, so only its in-app channel counts)."""
    if reason is not None and reason.get("code") == reasons.MENTIONED_VIA_ROLE:
        return prefs.wants(kind, IN_APP)
    return any(prefs.wants(kind, channel) for channel in CHANNELS)


class _Delivered(Protocol):
    """What `queue_deliveries` reads of a freshly written notification (a `Notification`, or a row
    written in bulk with the same attributes)."""

    id: int
    user_id: int
    kind: str
    actor_id: int | None
    post_id: int | None
    comment_id: int | None
    data: dict[str, Any]


async def queue_deliveries(session: AsyncSession, notes: Sequence[_Delivered], prefs: Mapping[int, Preferences], now: datetime, *, org: Org) -> None:
    """Write the email and push jobs of freshly written notifications, in their transaction.

    An email job per notification whose kind the person gets by email, due at
    `Preferences.send_at` plus their batch window (the worker sends a person's due jobs as one
    email); a push job per notification and browser subscription of the person, due at `send_at`.
    Nothing while snoozed; at the end of quiet hours when in them. A role mention reaches the app
    only. Two queries at most (browsers; addresses and names), none when nothing is due.
    """
    default = Preferences.of(None, org.time_zone)
    emails: list[tuple[_Delivered, datetime]] = []
    pushes: list[tuple[_Delivered, datetime]] = []
    for note in notes:
        if _role_mention(note):
            continue
        pref = prefs.get(note.user_id, default)
        at = pref.send_at(note.kind, EMAIL, now)
        if at is not None:
            window = pref.batch_window_seconds if note.kind in BATCHED_EMAIL_KINDS else 0
            emails.append((note, at + timedelta(seconds=window)))
        at = pref.send_at(note.kind, PUSH, now)
        if at is not None:
            pushes.append((note, at))
    if not emails and not pushes:
        return
    subs: dict[int, list[int]] = {}
    if pushes:
        stmt = select(PushSubscription.user_id, PushSubscription.id).where(PushSubscription.user_id.in_({n.user_id for n, _ in pushes}))
        for user_id, sub_id in await session.execute(stmt.order_by(PushSubscription.id)):
            subs.setdefault(user_id, []).append(sub_id)
        pushes = [(n, at) for n, at in pushes if n.user_id in subs]
    people = {n.user_id for n, _ in emails} | {n.actor_id for n, _ in pushes if n.actor_id is not None}
    users: dict[int, tuple[str, str]] = {}
    if people:
        users = {u: (email, name) for u, email, name in await session.execute(select(User.id, User.email, User.name).where(User.id.in_(people)))}
    org_id = org.id
    email_rows = [
        {"org_id": org_id, "kind": n.kind, "user_id": n.user_id, "to_email": users[n.user_id][0], "notification_id": n.id,
         "invitation_id": None, "payload": {"post_id": n.post_id, "comment_id": n.comment_id}, "dedupe_key": None,
         "status": "pending", "batch_id": None, "attempts": 0, "created_at": now, "next_attempt_at": at}
        for n, at in emails if n.user_id in users and users[n.user_id][0]
    ]
    await insert_many(session, EmailJob.__table__, email_rows)
    push_rows = [
        {"org_id": org_id, "user_id": n.user_id, "subscription_id": sub_id, "notification_id": n.id,
         "payload": push_payload(n, org, users.get(n.actor_id, (None, None))[1] if n.actor_id is not None else None),
         "status": "pending", "attempts": 0, "next_attempt_at": at, "lease_until": None, "last_error": None,
         "created_at": now, "sent_at": None}
        for n, at in pushes for sub_id in subs[n.user_id]
    ]
    await insert_many(session, PushJob.__table__, push_rows)


def push_payload(note: _Delivered, org: Org, actor_name: str | None) -> dict[str, Any]:
    """What a browser shows: small (well under a push service's 4 KiB once encrypted), no more of
    the content than the notification's excerpt, and a link into the app relative to the server."""
    data = note.data or {}
    reason = getattr(note, "reason", None) or {}
    target = f"/#/org/{org.slug}/post/{note.post_id}" if note.post_id is not None else f"/#/org/{org.slug}/notifications"
    return {
        "title": notification_text.headline(note.kind, actor_name, data, reason),
        "body": notification_text.body(data),
        "url": target,
        "tag": f"notification-{note.id}",  # a merged notification pushed again replaces the one on screen
        "kind": note.kind,
        "org": org.slug,
        "notification_id": note.id,
    }


def _role_mention(note: _Delivered) -> bool:
    reason = getattr(note, "reason", None) or {}
    return note.kind == MENTION and reason.get("code") == reasons.MENTIONED_VIA_ROLE


async def org_of(session: AsyncSession) -> Org:
    """The session's org (its zone, slug and name), read once per session."""
    org = session.info.get("notify_org")
    if org is None:
        org = (await session.execute(select(Org).where(Org.id == current_org(session)))).scalar_one()
        session.info["notify_org"] = org
    return org


async def _write(session: AsyncSession, notes: list[Notification], prefs: Mapping[int, Preferences], now: datetime) -> None:
    """Insert the rows (one flush), queue their deliveries and their live event."""
    if not notes:
        return
    session.add_all(notes)
    await session.flush()
    await queue_deliveries(session, notes, prefs, now, org=await org_of(session))
    announce(session, notes)


# --- mentions ---------------------------------------------------------------------------------------
@dataclass
class _Route:
    """How a mention reached one person: directly, and/or through groups and roles."""

    direct: bool = False
    groups: list[int] = field(default_factory=list)
    roles: list[int] = field(default_factory=list)


def _routes(graph: OrgGraph, refs: Sequence[MentionRef]) -> dict[int, _Route]:
    routes: dict[int, _Route] = {}
    for ref in refs:
        if ref.kind == "user":
            if ref.target_id in graph.member_roles:
                routes.setdefault(ref.target_id, _Route()).direct = True
        elif ref.kind == "group":
            for user_id in graph.group_members(ref.target_id):
                routes.setdefault(user_id, _Route()).groups.append(ref.target_id)
        else:
            for user_id in graph.role_holders(ref.target_id):
                routes.setdefault(user_id, _Route()).roles.append(ref.target_id)
    return routes


def mentioned_users(graph: OrgGraph, refs: Sequence[MentionRef]) -> dict[int, str]:
    """Users behind each mention, with how they were reached (`user`, `role` or `group`); direct wins."""
    return {u: ("user" if r.direct else "group" if r.groups else "role") for u, r in _routes(graph, refs).items()}


@dataclass(frozen=True)
class Mentioning:
    """A new post or comment whose mentions may notify: who wrote it, who can see it."""

    refs: Sequence[MentionRef]
    author_id: int
    post_id: int
    comment_id: int | None
    audience: frozenset[int]
    excerpt: str
    now: datetime


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
    """Notify everyone one message mentions (`notify_mentions_of`); returns the people notified."""
    return (await notify_mentions_of(session, graph, [Mentioning(refs, author_id, post_id, comment_id, audience, excerpt, now)]))[0]


async def notify_mentions_of(session: AsyncSession, graph: OrgGraph, items: Sequence[Mentioning]) -> list[list[int]]:
    """Notify everyone each message mentions who can see it, except its author; queue their deliveries.

    A mention that came only through a group the person muted does not reach them, nor, on a comment,
    one through a group or role when they muted the post's thread; a direct mention always does.
    Emails and pushes go to direct and group mentions (F-NOTIF-2); a role mention reaches the app only.
    The same few queries for a batch of posts as for one. Returns, per message, the people notified.
    """
    routes = [{u: r for u, r in _routes(graph, i.refs).items() if u != i.author_id and u in i.audience} for i in items]
    people = {u for mine in routes for u in mine}
    if not people:
        return [[] for _ in items]
    org = await org_of(session)
    prefs = await load_preferences(session, people, org.time_zone)
    mutes = await load_mutes(session, people)
    chosen: list[dict[int, tuple[str, int | None]]] = []
    for item, mine in zip(items, routes):
        thread = item.post_id if item.comment_id is not None else None
        hows = {u: _mention_reason(u, route, mutes, thread) for u, route in mine.items() if u in prefs}
        chosen.append({u: how for u, how in hows.items() if how is not None})
    names = await _names(session, [how for mine in chosen for how in mine.values()])
    notes: list[Notification] = []
    told: list[list[int]] = []
    for item, mine in zip(items, chosen):
        told.append([])
        for user_id, (code, ref) in sorted(mine.items()):
            reason = _reason_of(code, ref, names)
            if not reaches(prefs[user_id], MENTION, reason):
                continue
            how = {reasons.MENTIONED: "user", reasons.MENTIONED_VIA_GROUP: "group", reasons.MENTIONED_VIA_ROLE: "role"}[code]
            notes.append(Notification(
                user_id=user_id, kind=MENTION, actor_id=item.author_id, post_id=item.post_id, comment_id=item.comment_id,
                data={"via": how, "excerpt": item.excerpt}, reason=reason, created_at=item.now,
            ))
            told[-1].append(user_id)
    await _write(session, notes, prefs, items[0].now)
    return told


def _mention_reason(user_id: int, route: _Route, mutes: Mutes, thread: int | None) -> tuple[str, int | None] | None:
    """The reason a mention reaches this person, or None when their mutes hold it back."""
    if route.direct:
        return reasons.MENTIONED, None
    if thread is not None and mutes.muted(user_id, "post", thread):
        return None
    groups = [g for g in route.groups if not mutes.muted(user_id, "group", g)]
    if groups:
        return reasons.MENTIONED_VIA_GROUP, groups[0]
    if route.roles:
        return reasons.MENTIONED_VIA_ROLE, route.roles[0]
    return None


async def _names(session: AsyncSession, hows: Iterable[tuple[str, int | None]]) -> dict[tuple[str, int], str]:
    """Names of the groups and roles mentions came through, one query per kind that is there."""
    wanted: dict[str, set[int]] = {}
    for code, ref in hows:
        if ref is not None:
            wanted.setdefault(code, set()).add(ref)
    out: dict[tuple[str, int], str] = {}
    for code, model in ((reasons.MENTIONED_VIA_GROUP, Group), (reasons.MENTIONED_VIA_ROLE, Role)):
        if wanted.get(code):
            for ref, name in await session.execute(select(model.id, model.name).where(model.id.in_(wanted[code]))):  # type: ignore[attr-defined]
                out[(code, ref)] = name
    return out


def _reason_of(code: str, ref: int | None, names: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    if code == reasons.MENTIONED_VIA_GROUP and ref is not None:
        return reasons.reason(code, group_id=ref, group_name=names.get((code, ref)))
    if code == reasons.MENTIONED_VIA_ROLE and ref is not None:
        return reasons.reason(code, role_id=ref, role_name=names.get((code, ref)))
    return reasons.reason(code)


# --- private messages, group posts, reactions -----------------------------------------------------
@dataclass(frozen=True)
class Message:
    """A new private message or group post, as the post writer has it after writing."""

    post_id: int
    author_id: int
    recipients: frozenset[int]  # a private message's people (its author left out by the notifier)
    group_id: int | None
    excerpt: str
    now: datetime
    # Those its mentions already notified: one notification per person and message.
    mentioned: frozenset[int] = frozenset()


async def notify_private_messages(session: AsyncSession, messages: Sequence[Message]) -> None:
    """Each recipient of a private message hears of it (reason `participant`), unless they muted
    the group it was sent in or turned the kind off. A few queries for the whole batch."""
    wanted = {(m, u) for m in messages for u in m.recipients if u != m.author_id and u not in m.mentioned}
    if not wanted:
        return
    org = await org_of(session)
    people = {u for _, u in wanted}
    prefs = await load_preferences(session, people, org.time_zone)
    # Only a message sent in a group can be muted (through its group).
    mutes = await load_mutes(session, people) if any(m.group_id is not None for m, _ in wanted) else Mutes()
    notes = [
        Notification(
            user_id=u, kind=PRIVATE_MESSAGE, actor_id=m.author_id, post_id=m.post_id, data={"excerpt": m.excerpt},
            reason=reasons.reason(reasons.PARTICIPANT, group_id=m.group_id), created_at=m.now,
        )
        for m, u in sorted(wanted, key=lambda w: (w[0].post_id, w[1]))
        if u in prefs and reaches(prefs[u], PRIVATE_MESSAGE) and not mutes.muted(u, "group", m.group_id)
    ]
    await _write(session, notes, prefs, messages[0].now)


# Whether anyone in the org chose group posts at all: the post writer's fast path (PostgreSQL)
# asks once per batch that holds group posts. Its condition is the partial index's
# (ix_notification_settings_group_post), so the answer is one index probe.
GROUP_POSTS_CHOSEN_SQL = "SELECT EXISTS (SELECT 1 FROM notification_settings WHERE org_id = $1 AND channels ? 'group_post')"


def group_posts_chosen(dialect: str) -> ColumnElement[bool]:
    """Settings rows that name the group-post kind (on or off): the few to read for a group post."""
    if dialect == "postgresql":
        return NotificationSettings.channels.op("?")(literal_column(f"'{GROUP_POST}'"))
    return cast(NotificationSettings.channels, Text).like(f'%"{GROUP_POST}"%')


async def notify_group_posts(session: AsyncSession, posts: Sequence[Message], graph: OrgGraph | None = None) -> None:
    """Members of a group who turned group posts on hear of its new posts (reason `group_member`).

    Off on every channel by default, so one query finds the few people whose settings mention the
    kind at all (never every member's row); only when one of them wants it are the org's groups,
    names and mutes read.
    """
    posts = [m for m in posts if m.group_id is not None]
    if not posts:
        return
    org = await org_of(session)
    stmt = (
        select(NotificationSettings, Membership.role_id)
        .join(Membership, (Membership.org_id == NotificationSettings.org_id) & (Membership.user_id == NotificationSettings.user_id))
        .where(group_posts_chosen(session.get_bind().dialect.name))
    )
    candidates: dict[int, tuple[Preferences, int | None]] = {}
    for row, role_id in await session.execute(stmt):
        pref = Preferences.of(row, org.time_zone)
        if reaches(pref, GROUP_POST):
            candidates[row.user_id] = (pref, role_id)
    if not candidates:
        return
    if graph is None:
        graph = await load_graph(session)  # the org's groups: read only when someone wants their posts
    mutes = await load_mutes(session, candidates)
    group_ids = {m.group_id for m in posts}
    names = dict((await session.execute(select(Group.id, Group.name).where(Group.id.in_(group_ids)))).all())
    notes = [
        Notification(
            user_id=u, kind=GROUP_POST, actor_id=m.author_id, post_id=m.post_id,
            data={"excerpt": m.excerpt, "group_id": m.group_id, "group_name": names.get(m.group_id)},
            reason=reasons.reason(reasons.GROUP_MEMBER, group_id=m.group_id, group_name=names.get(m.group_id)), created_at=m.now,
        )
        for m in posts for u, (_, role_id) in sorted(candidates.items())
        if u != m.author_id and u not in m.mentioned and graph.in_group(m.group_id, u, role_id)  # type: ignore[arg-type]
        and not mutes.muted(u, "group", m.group_id)
    ]
    await _write(session, notes, {u: p for u, (p, _) in candidates.items()}, posts[0].now)


async def notify_reaction(
    session: AsyncSession, author_id: int, actor_id: int, post_id: int, comment_id: int | None, data: dict[str, Any], now: datetime
) -> tuple[Notification, bool] | None:
    """The author of a post or comment hears of a reaction to it (reason `participant`): one unread
    notification per item, which later reactions update (without new deliveries); none for one's
    own reaction, for a muted thread, nor when the same person reacts again within
    `limits.REACTION_RENOTIFY_SECONDS` of a notification already read. Returns the row and whether
    it is new (announced here) or updated (the caller tells of the update), or None."""
    if author_id == actor_id:
        return None
    org = await org_of(session)
    prefs = await load_preferences(session, [author_id], org.time_zone)
    if author_id not in prefs or not reaches(prefs[author_id], REACTION):
        return None
    if (await load_mutes(session, [author_id])).muted(author_id, "post", post_id):
        return None
    stmt = select(Notification).where(Notification.user_id == author_id, Notification.kind == REACTION, Notification.post_id == post_id)
    stmt = stmt.where(Notification.comment_id.is_(None) if comment_id is None else Notification.comment_id == comment_id)
    last = (await session.execute(stmt.order_by(Notification.id.desc()).limit(1))).scalar_one_or_none()
    if last is not None and last.read_at is None:
        last.actor_id, last.data, last.updated_at = actor_id, data, now
        await session.flush()
        return last, False
    recent = now - timedelta(seconds=limits.REACTION_RENOTIFY_SECONDS)
    if last is not None and last.actor_id == actor_id and (last.updated_at or last.created_at) >= recent:
        return None
    note = Notification(
        user_id=author_id, kind=REACTION, actor_id=actor_id, post_id=post_id, comment_id=comment_id, data=data,
        reason=reasons.reason(reasons.PARTICIPANT), created_at=now,
    )
    await _write(session, [note], prefs, now)
    return note, True


class _Noted(_Delivered, Protocol):
    """What `notification_view` reads: a `Notification`, or a row a record batch wrote in bulk."""

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


def notification_view(n: _Noted) -> dict[str, Any]:
    """A notification as the API and the live event show it (rows written in bulk may lack the
    newer attributes: they read as None)."""
    return {
        "id": n.id,
        "kind": n.kind,
        "actor_id": n.actor_id,
        "post_id": n.post_id,
        "comment_id": n.comment_id,
        "data": n.data or {},
        "reason": getattr(n, "reason", None),
        "record_id": getattr(n, "record_id", None),
        "created_at": n.created_at,
        "updated_at": getattr(n, "updated_at", None),
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
    """The member's settings row in the session's org, made with the defaults the first time."""
    row = (await session.execute(select(NotificationSettings).where(NotificationSettings.user_id == user_id))).scalar_one_or_none()
    if row is None:
        row = NotificationSettings(
            user_id=user_id, mention_emails=True, batch_window_seconds=limits.DEFAULT_MENTION_BATCH_SECONDS, channels={},
            digest=DIGEST_OFF, digest_hour=8, digest_weekday=0, record_merge_seconds=limits.DEFAULT_RECORD_MERGE_SECONDS,
        )
        session.add(row)
        await session.flush()
    return row


def settings_view(row: NotificationSettings, org_time_zone: str) -> dict[str, Any]:
    """The member's settings as the API shows them: every kind's every channel, on or off."""
    prefs = Preferences.of(row, org_time_zone)
    quiet = None
    if prefs.quiet is not None:
        quiet = {"start": _hhmm(prefs.quiet[0]), "end": _hhmm(prefs.quiet[1])}
    return {
        "mention_emails": row.mention_emails,
        "batch_window_seconds": row.batch_window_seconds,
        "channels": matrix(prefs),
        "snooze_until": row.snooze_until,
        "quiet_hours": quiet,
        "time_zone": row.time_zone,
        "effective_time_zone": zone(row.time_zone, org_time_zone).key,
        "digest": {"frequency": row.digest or DIGEST_OFF, "hour": row.digest_hour, "weekday": row.digest_weekday},
        "dormant_days": row.dormant_days,
        "record_merge_seconds": row.record_merge_seconds,
    }


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_hhmm(value: str) -> int:
    """Minutes after midnight of "HH:MM" (00:00 … 23:59); ValueError otherwise."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError("expected HH:MM")
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError("expected HH:MM between 00:00 and 23:59")
    return h * 60 + m


# The settings a PATCH may change; the route validates each value's form, `update_settings` the rest.
SETTINGS_FIELDS = frozenset({
    "mention_emails", "batch_window_seconds", "channels", "snooze_until", "quiet_hours", "time_zone",
    "digest", "dormant_days", "record_merge_seconds",
})


async def update_settings(session: AsyncSession, user_id: int, changes: Mapping[str, Any], now: datetime) -> NotificationSettings:
    """Apply the given settings (others unchanged): `channels` merges into the member's choices (the
    mention kind's email channel is the `mention_emails` column, so one-click unsubscribe and the
    matrix agree); `snooze_until` (aware datetime or None, at most `limits.MAX_SNOOZE_DAYS` ahead;
    a time already past clears it); `quiet_hours` as `(start, end)` minutes or None; `digest` a
    mapping of frequency/hour/weekday. A digest whose schedule changed is worked out again."""
    unknown = set(changes) - SETTINGS_FIELDS
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    row = await get_settings(session, user_id)
    if changes.get("channels") is not None:
        _merge_channels(row, check_channels(changes["channels"]))
    if changes.get("mention_emails") is not None:
        row.mention_emails = changes["mention_emails"]
    if changes.get("batch_window_seconds") is not None:
        row.batch_window_seconds = changes["batch_window_seconds"]
    if changes.get("record_merge_seconds") is not None:
        row.record_merge_seconds = changes["record_merge_seconds"]
    if "dormant_days" in changes and changes["dormant_days"] != row.dormant_days:
        row.dormant_days = changes["dormant_days"]
        row.dormant_since = now if row.dormant_days is not None else None  # records already quiet are not told
    if "snooze_until" in changes:
        until = changes["snooze_until"]
        if until is not None and until > now + timedelta(days=limits.MAX_SNOOZE_DAYS):
            raise LimitExceeded("snooze_too_long", f"snooze at most {limits.MAX_SNOOZE_DAYS} days ahead", field="snooze_until", limit=limits.MAX_SNOOZE_DAYS)
        row.snooze_until = until if until is not None and until > now else None
    if "quiet_hours" in changes:
        quiet = changes["quiet_hours"]
        row.quiet_start_minute, row.quiet_end_minute = quiet if quiet is not None else (None, None)
    schedule_changed = False
    if "time_zone" in changes and changes["time_zone"] != row.time_zone:
        row.time_zone = changes["time_zone"]
        schedule_changed = True
    turned_on = False
    digest = changes.get("digest") or {}
    for key, column in (("frequency", "digest"), ("hour", "digest_hour"), ("weekday", "digest_weekday")):
        if digest.get(key) is not None and digest[key] != getattr(row, column):
            turned_on = turned_on or (key == "frequency" and row.digest == DIGEST_OFF)
            setattr(row, column, digest[key])
            schedule_changed = True
    if schedule_changed and row.digest != DIGEST_OFF:
        from feeds_server.notify import digests  # the scheduler's own rule for a schedule that moved

        digests.reset_schedule(row, turned_on, now)
    await session.flush()
    return row


def _merge_channels(row: NotificationSettings, chosen: Mapping[str, Mapping[str, bool]]) -> None:
    channels = {k: dict(v) for k, v in (row.channels or {}).items() if isinstance(v, Mapping)}
    for kind, on in chosen.items():
        if kind == MENTION and EMAIL in on:
            row.mention_emails = on[EMAIL]
            on = {c: v for c, v in on.items() if c != EMAIL}
        if on:
            channels.setdefault(kind, {}).update(on)
    row.channels = channels  # a new object: the JSON column sees the change


async def unsubscribe(session: AsyncSession, user_id: int) -> None:
    """One-click unsubscribe (RFC 8058) from the emails of notifications: every kind's email channel
    off (the digest has its own setting and link)."""
    row = await get_settings(session, user_id)
    row.mention_emails = False
    _merge_channels(row, {kind: {EMAIL: False} for kind in BATCHED_EMAIL_KINDS if kind in DEFAULTS and EMAIL in DEFAULTS[kind]})
    await session.flush()
