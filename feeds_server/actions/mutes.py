"""Mutes: a member silences a record, a group or a post's comment thread (design in
docs/notifications.md, "Choosing what reaches you").

A mute changes what notifies the member (actions/notifications.py reads them with `load_mutes`),
never what their feeds show. Only what the member can see can be muted, and a target they cannot
see answers exactly as one that does not exist, so muting cannot probe for ids. Unmuting and
listing touch only the member's own rows; a listed mute is labelled only while its target is
still one they see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from feeds_server import limits
from feeds_server.actions.groups import group_for_member
from feeds_server.actions.posts import Reader, visible_post
from feeds_server.actions.records import get_record
from feeds_server.errors import LimitExceeded, NotFound
from feeds_server.store.graph import load_graph
from feeds_server.store.models import Group, Mute, Post, PostAudience, Record
from feeds_server.store.scope import current_org

RECORD, GROUP, POST = "record", "group", "post"
KINDS = (RECORD, GROUP, POST)
LABEL_CHARS = 80


async def _check_visible(session: AsyncSession, reader: Reader, kind: str, target_id: int) -> None:
    """404 unless the target exists in this org and the reader can see it."""
    if kind == RECORD:
        await get_record(session, target_id)
    elif kind == GROUP:
        await group_for_member(session, target_id, reader.user_id, reader.role_id)
    elif kind == POST:
        await visible_post(session, reader, target_id)
    else:
        raise NotFound("mute_target_not_found", "no such thing to mute")


async def mute(session: AsyncSession, reader: Reader, kind: str, target_id: int, now: datetime) -> dict[str, Any]:
    """Mute a target the reader can see; muting it again changes nothing."""
    await _check_visible(session, reader, kind, target_id)
    existing = await session.execute(
        select(Mute.created_at).where(Mute.user_id == reader.user_id, Mute.target_kind == kind, Mute.target_id == target_id)
    )
    found = existing.scalar_one_or_none()
    if found is not None:
        return {"kind": kind, "id": target_id, "created_at": found}
    count = (await session.execute(select(func.count()).select_from(Mute).where(Mute.user_id == reader.user_id))).scalar_one()
    if count >= limits.MAX_MUTES_PER_MEMBER:
        raise LimitExceeded("too_many_mutes", f"at most {limits.MAX_MUTES_PER_MEMBER} mutes", limit=limits.MAX_MUTES_PER_MEMBER)
    # ON CONFLICT DO NOTHING: the same mute sent twice at once is one row, not an error.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Mute.__table__).values(
        org_id=current_org(session), user_id=reader.user_id, target_kind=kind, target_id=target_id, created_at=now
    ).on_conflict_do_nothing()
    await session.execute(stmt)
    return {"kind": kind, "id": target_id, "created_at": now}


async def unmute(session: AsyncSession, reader: Reader, kind: str, target_id: int) -> None:
    """Remove one of the reader's mutes: NotFound when they have none of it. Only the reader's own
    row is looked at, so no visibility check: a mute of something they no longer see (they left the
    group) can still go, and what they never muted answers alike whether it exists or not."""
    result = await session.execute(delete(Mute).where(Mute.user_id == reader.user_id, Mute.target_kind == kind, Mute.target_id == target_id))
    if not result.rowcount:
        raise NotFound("mute_not_found", "this is not muted")


async def list_mutes(session: AsyncSession, reader: Reader) -> list[dict[str, Any]]:
    """The member's mutes, newest first, each with a label to show (a record's or group's name, a
    post's first words). The label is None when the target is gone or no longer one the reader sees
    (they left the group, the post's audience changed): a mute never shows what its owner may not read."""
    rows = (await session.execute(
        select(Mute.target_kind, Mute.target_id, Mute.created_at).where(Mute.user_id == reader.user_id)
        .order_by(Mute.created_at.desc(), Mute.target_id)
    )).all()
    ids: dict[str, set[int]] = {}
    for kind, target_id, _ in rows:
        ids.setdefault(kind, set()).add(target_id)
    labels: dict[tuple[str, int], str] = {}
    if ids.get(GROUP) or ids.get(POST):
        graph = await load_graph(session)
        ids[GROUP] = {g for g in ids.get(GROUP, ()) if graph.in_group(g, reader.user_id, reader.role_id)}
        if ids.get(POST):
            channels = graph.reader_channels(reader.user_id, reader.role_id)
            seen = select(PostAudience.post_id).where(PostAudience.post_id.in_(ids[POST]), PostAudience.channel.in_(channels))
            ids[POST] = set((await session.execute(seen)).scalars())
    for kind, column, model in ((RECORD, Record.name, Record), (GROUP, Group.name, Group), (POST, Post.body, Post)):
        if ids.get(kind):
            for target_id, text in await session.execute(select(model.id, column).where(model.id.in_(ids[kind]))):  # type: ignore[attr-defined]
                labels[(kind, target_id)] = (text or "")[:LABEL_CHARS]
    return [{"kind": k, "id": t, "label": labels.get((k, t)), "created_at": at} for k, t, at in rows]
