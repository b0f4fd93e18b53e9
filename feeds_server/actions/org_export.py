"""Exporting an org's data to an archive (F-OPS-3; the format: store/archive.py).

The whole export reads one snapshot of the database (one REPEATABLE READ transaction on
PostgreSQL, one WAL read transaction on SQLite) without blocking the server's writes, and pages
through each table by key, so neither the rows nor the files are ever all in memory.

Exported: the org's settings, its people (every account the data refers to, with their emails,
members or not any more), roles, profiles, territories and their members, memberships,
notification settings (every choice, and how far each person's digest got), groups and their
sources, records, auto-follow rules, follows (with their rule and fields), posts with their
audience, mentions and attachments (and the files), comments, when posts and comments were last
edited and their earlier texts (hidden ones marked so), reactions, saved items, pins,
notifications, mutes, and which dormant records each follower was told of. Not exported:
integrations and webhooks (their secrets stay with this org), invitations, the event history, the
audit log, the outboxes (emails and pushes), push subscriptions (a browser subscribes to one
server's key), who is connected, and the files' thumbnails (the importing server makes them again).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server.actions import audit
from feeds_server.domain.audience import SOURCE_USER
from feeds_server.domain.messages import replace_mentions
from feeds_server.runtime.services import Services
from feeds_server.store.archive import ArchiveWriter, ManifestWriter
from feeds_server.store.base import utcnow
from feeds_server.store.db import create_snapshot_engine, session_factory
from feeds_server.store.files import LocalFileStore
from feeds_server.store.models import (
    Attachment,
    AutoFollowRule,
    Comment,
    DormancyNotice,
    Follow,
    Group,
    GroupSource,
    ItemVersion,
    Membership,
    Mention,
    Mute,
    Notification,
    NotificationSettings,
    Org,
    Pin,
    Post,
    PostAudience,
    Profile,
    Reaction,
    Record,
    Role,
    SavedItem,
    Territory,
    TerritoryMember,
    User,
)
from feeds_server.store.scope import org_session

BATCH = 500

RECORD_FIELDS = ("id", "module", "crm_id", "name", "owner_id", "creator_id", "territory_id", "fields", "key_fields", "last_post_id",
                 "created_at", "last_activity_at", "deleted_at")
POST_FIELDS = ("id", "kind", "author_id", "body", "group_id", "recipient_id", "module", "data", "comment_count", "created_at", "edited_at")
COMMENT_FIELDS = ("id", "post_id", "author_id", "body", "data", "created_at", "edited_at")
VERSION_FIELDS = ("id", "post_id", "comment_id", "body", "written_at", "replaced_at", "replaced_by_user_id", "hidden_at", "hidden_by_user_id")
REACTION_FIELDS = ("id", "post_id", "comment_id", "user_id", "emoji", "created_at")
NOTIFICATION_FIELDS = ("id", "user_id", "kind", "actor_id", "post_id", "comment_id", "data", "reason", "record_id", "created_at", "updated_at", "read_at")
RULE_FIELDS = ("id", "creator_id", "name", "description", "module", "criteria", "followers", "fields", "version", "created_at", "updated_at")
# Every choice of a member's notification settings, the digest's progress included; not when the
# next digest falls due, which the importing server plans in its own org's zone.
SETTINGS_SKIPPED = ("org_id", "digest_due_at")


def _cols(model: Any, names: tuple[str, ...]) -> list[Any]:
    """ORM attributes, so the org scope applies, read as plain rows that the session does not keep."""
    return [getattr(model, n) for n in names]


async def _pages(session: AsyncSession, model: Any, names: tuple[str, ...]) -> AsyncIterator[list[dict[str, Any]]]:
    last = 0
    while rows := (await session.execute(select(*_cols(model, names)).where(model.id > last).order_by(model.id).limit(BATCH))).all():
        last = rows[-1].id
        yield [row._asdict() for row in rows]


async def export_org(services: Services, org_id: int, path: Path) -> dict[str, int]:
    """Write the org's archive to `path`; returns the number of rows of each table."""
    engine = create_snapshot_engine(services.settings)
    archive = ArchiveWriter(path)
    try:
        async with org_session(session_factory(engine), org_id) as session:
            org = (await session.execute(select(Org).where(Org.id == org_id))).scalar_one()
            missing = await _files(session, archive, LocalFileStore(services.settings.files_dir))
            manifest = archive.manifest()
            manifest.header(
                exported_at=utcnow(),
                org={"id": org.id, "name": org.name, "slug": org.slug, "time_zone": org.time_zone, "edition": org.edition,
                     "disabled_modules": list(org.disabled_modules or []), "ip_allowlist": list(org.ip_allowlist or []),
                     "edit_window_seconds": org.edit_window_seconds},
                missing_files=missing,
            )
            await _rows(session, manifest)
            manifest.end()
    finally:
        archive.close()
        await engine.dispose()
    async with org_session(services.sessions, org_id) as session:
        audit.record(session, "org.exported", None, ("org", org_id), {"via": "cli", "file": path.name, "counts": manifest.counts})
    return manifest.counts


async def _files(session: AsyncSession, archive: ArchiveWriter, store: LocalFileStore) -> list[int]:
    """Every attachment's bytes; returns the ids of those whose file is gone from storage."""
    missing: list[int] = []
    async for page in _pages(session, Attachment, ("id", "storage_key")):
        for row in page:
            if not store.exists(row["storage_key"]):
                missing.append(row["id"])
                continue
            await archive.add_file(row["id"], store.read(row["storage_key"]))
    return missing


async def _rows(session: AsyncSession, out: ManifestWriter) -> None:
    await _people(session, out)
    for role in (await session.execute(select(Role.id, Role.name, Role.parent_id).order_by(Role.id))).all():
        out.row("role", role._asdict())
    for profile in (await session.execute(select(Profile.id, Profile.name, Profile.permissions).order_by(Profile.id))).all():
        out.row("profile", profile._asdict())
    for territory in (await session.execute(select(Territory.id, Territory.name, Territory.parent_id).order_by(Territory.id))).all():
        out.row("territory", territory._asdict())
    stmt = select(TerritoryMember.territory_id, TerritoryMember.user_id).order_by(TerritoryMember.territory_id, TerritoryMember.user_id)
    for tm in (await session.execute(stmt)).all():
        out.row("territory_member", tm._asdict())
    stmt = select(Membership.user_id, Membership.role_id, Membership.profile_id, Membership.is_super_admin, Membership.joined_at).order_by(Membership.user_id)
    for m in (await session.execute(stmt)).all():
        out.row("membership", m._asdict())
    columns = [c for c in NotificationSettings.__table__.columns if c.key not in SETTINGS_SKIPPED]
    stmt = select(*(getattr(NotificationSettings, c.key) for c in columns))
    for ns in (await session.execute(stmt.order_by(NotificationSettings.user_id))).all():
        out.row("notification_settings", ns._asdict())
    await _groups(session, out)
    async for page in _pages(session, Record, RECORD_FIELDS):
        for row in page:
            out.row("record", row)
    # Rules before follows: a follow names the rule that made it.
    async for page in _pages(session, AutoFollowRule, RULE_FIELDS):
        for row in page:
            out.row("rule", row)
    await _follows(session, out)
    await _posts(session, out)
    await _comments(session, out)
    async for page in _pages(session, ItemVersion, VERSION_FIELDS):
        for row in page:
            out.row("item_version", row)
    async for page in _pages(session, Reaction, REACTION_FIELDS):
        for row in page:
            out.row("reaction", row)
    await _saved_items(session, out)
    await _pins(session, out)
    async for page in _pages(session, Notification, NOTIFICATION_FIELDS):
        for row in page:
            out.row("notification", row)
    await _mutes(session, out)
    await _dormancy_notices(session, out)


async def _people(session: AsyncSession, out: ManifestWriter) -> None:
    """Every account the org's data names: its members, and former members still named somewhere."""
    members = set((await session.execute(select(Membership.user_id))).scalars())
    named = set(members)
    for column, where in (
        (Post.author_id, None), (Post.recipient_id, None), (Comment.author_id, None), (Mention.target_id, Mention.kind == "user"),
        (Notification.user_id, None), (Notification.actor_id, None), (Follow.user_id, None), (Record.owner_id, None),
        (Record.creator_id, None), (AutoFollowRule.creator_id, None), (GroupSource.ref_id, GroupSource.kind == SOURCE_USER),
        (TerritoryMember.user_id, None), (Group.created_by_user_id, None), (NotificationSettings.user_id, None),
        (ItemVersion.replaced_by_user_id, None), (ItemVersion.hidden_by_user_id, None), (Reaction.user_id, None),
        (SavedItem.user_id, None), (Pin.pinned_by_user_id, None), (Mute.user_id, None), (DormancyNotice.user_id, None),
    ):
        stmt = select(column).distinct()
        named |= set((await session.execute(stmt if where is None else stmt.where(where))).scalars())
    for followers in (await session.execute(select(AutoFollowRule.followers))).scalars():
        named |= set((followers or {}).get("users") or [])
    # An earlier text may mention someone the current one (and so the mentions table) no longer does.
    async for page in _pages(session, ItemVersion, ("id", "body")):
        for row in page:
            named |= _mentioned_users(row["body"])
    named.discard(None)
    ordered = sorted(named)
    for i in range(0, len(ordered), BATCH):
        rows = await session.execute(select(User.id, User.email, User.name).where(User.id.in_(ordered[i : i + BATCH])).order_by(User.id))
        for user_id, email, name in rows:
            out.row("user", {"id": user_id, "email": email, "name": name, "member": user_id in members})


def _mentioned_users(text: str) -> set[int]:
    users: set[int] = set()

    def note(kind: str, target: int) -> str:
        if kind == "user":
            users.add(target)
        return ""

    replace_mentions(text, note)
    return users


async def _groups(session: AsyncSession, out: ManifestWriter) -> None:
    sources: dict[int, list[list[Any]]] = {}
    for group_id, kind, ref_id in await session.execute(select(GroupSource.group_id, GroupSource.kind, GroupSource.ref_id).order_by(GroupSource.group_id)):
        sources.setdefault(group_id, []).append([kind, ref_id])
    stmt = select(Group.id, Group.name, Group.description, Group.created_by_user_id, Group.created_at).order_by(Group.id)
    for group in (await session.execute(stmt)).all():
        out.row("group", {**group._asdict(), "sources": sources.get(group.id, [])})


async def _follows(session: AsyncSession, out: ManifestWriter) -> None:
    cols = (Follow.record_id, Follow.user_id, Follow.module, Follow.source, Follow.rule_id, Follow.fields, Follow.last_activity_at, Follow.created_at)
    last = (0, 0)
    while rows := (
        await session.execute(
            select(*cols).where(tuple_(Follow.record_id, Follow.user_id) > tuple_(*last)).order_by(Follow.record_id, Follow.user_id).limit(BATCH)
        )
    ).all():
        last = (rows[-1].record_id, rows[-1].user_id)
        for row in rows:
            out.row("follow", row._asdict())


async def _posts(session: AsyncSession, out: ManifestWriter) -> None:
    async for page in _pages(session, Post, POST_FIELDS):
        ids = [p["id"] for p in page]
        audience: dict[int, list[str]] = {}
        for post_id, channel in await session.execute(select(PostAudience.post_id, PostAudience.channel).where(PostAudience.post_id.in_(ids))):
            audience.setdefault(post_id, []).append(channel)
        mentions: dict[int, list[list[Any]]] = {}
        stmt = select(Mention.post_id, Mention.kind, Mention.target_id).where(Mention.post_id.in_(ids), Mention.comment_id.is_(None))
        for post_id, kind, target_id in await session.execute(stmt.order_by(Mention.id)):
            mentions.setdefault(post_id, []).append([kind, target_id])
        files: dict[int, list[dict[str, Any]]] = {}
        stmt = select(Attachment.id, Attachment.post_id, Attachment.filename, Attachment.content_type, Attachment.size, Attachment.sha256, Attachment.created_at)
        for a in (await session.execute(stmt.where(Attachment.post_id.in_(ids)).order_by(Attachment.id))).all():
            files.setdefault(a.post_id, []).append({k: v for k, v in a._asdict().items() if k != "post_id"})
        for post in page:
            pid = post["id"]
            out.row("post", {**post, "audience": sorted(audience.get(pid, [])), "mentions": mentions.get(pid, []), "attachments": files.get(pid, [])})


async def _comments(session: AsyncSession, out: ManifestWriter) -> None:
    async for page in _pages(session, Comment, COMMENT_FIELDS):
        mentions: dict[int, list[list[Any]]] = {}
        stmt = select(Mention.comment_id, Mention.kind, Mention.target_id).where(Mention.comment_id.in_([c["id"] for c in page]))
        for comment_id, kind, target_id in await session.execute(stmt.order_by(Mention.id)):
            mentions.setdefault(comment_id, []).append([kind, target_id])
        for comment in page:
            out.row("comment", {**comment, "mentions": mentions.get(comment["id"], [])})


async def _saved_items(session: AsyncSession, out: ManifestWriter) -> None:
    cols = (SavedItem.user_id, SavedItem.post_id, SavedItem.created_at)
    last = (0, 0)
    while rows := (
        await session.execute(
            select(*cols).where(tuple_(SavedItem.user_id, SavedItem.post_id) > tuple_(*last)).order_by(SavedItem.user_id, SavedItem.post_id).limit(BATCH)
        )
    ).all():
        last = (rows[-1].user_id, rows[-1].post_id)
        for row in rows:
            out.row("saved_item", row._asdict())


async def _pins(session: AsyncSession, out: ManifestWriter) -> None:
    """Newest first: an import into an org feed with fewer free places keeps the newest pins.
    At most 5 per place (the org feed and each group), so read in one query, as groups are."""
    stmt = select(Pin.post_id, Pin.group_id, Pin.pinned_by_user_id, Pin.created_at).order_by(Pin.created_at.desc(), Pin.post_id)
    for pin in (await session.execute(stmt)).all():
        out.row("pin", pin._asdict())


async def _mutes(session: AsyncSession, out: ManifestWriter) -> None:
    cols = (Mute.user_id, Mute.target_kind, Mute.target_id, Mute.created_at)
    order = (Mute.user_id, Mute.target_kind, Mute.target_id)
    last: tuple[int, str, int] = (0, "", 0)
    while rows := (await session.execute(select(*cols).where(tuple_(*order) > tuple_(*last)).order_by(*order).limit(BATCH))).all():
        last = (rows[-1].user_id, rows[-1].target_kind, rows[-1].target_id)
        for row in rows:
            out.row("mute", row._asdict())


async def _dormancy_notices(session: AsyncSession, out: ManifestWriter) -> None:
    """Without them, the importing server would tell every follower of a dormant record again."""
    cols = (DormancyNotice.record_id, DormancyNotice.user_id, DormancyNotice.last_activity_at, DormancyNotice.created_at)
    order = (DormancyNotice.record_id, DormancyNotice.user_id, DormancyNotice.last_activity_at)
    page = select(*cols).order_by(*order).limit(BATCH)
    rows = (await session.execute(page)).all()
    while rows:
        for row in rows:
            out.row("dormancy_notice", row._asdict())
        last = (rows[-1].record_id, rows[-1].user_id, rows[-1].last_activity_at)
        rows = (await session.execute(page.where(tuple_(*order) > tuple_(*last)))).all()
