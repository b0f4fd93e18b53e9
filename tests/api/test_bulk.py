"""Bulk inserts (store/bulk.py): a column with one value in every row goes as a scalar on
PostgreSQL; what is stored is the same whichever way each column travelled."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select, text

from feeds_server.store.bulk import insert_columns, insert_many, insert_returning_ids, update_many
from feeds_server.store.models import Notification
from feeds_server.store.scope import org_session

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = datetime(2026, 1, 2, tzinfo=timezone.utc)


async def _org(services) -> int:  # type: ignore[no-untyped-def]
    """Org 1 and the users the rows name (their references are checked, migration 0007)."""
    async with services.engine.begin() as conn:
        for user_id in (1, 2, 3, 4, 5, 9):
            await conn.execute(text(
                "INSERT INTO users (id, email, name, default_org_lost, created_at) VALUES (:id, :email, 'U', false, '2026-01-01 00:00:00+00')"
            ), {"id": user_id, "email": f"u{user_id}@x.example"})
        await conn.execute(text(
            "INSERT INTO orgs (id, name, slug, time_zone, edition, event_seq, rt_epoch, ip_allowlist, disabled_modules, created_at)"
            " VALUES (1, 'O', 'o', 'UTC', 'free', 0, 'e1', '[]', '[]', '2026-01-01 00:00:00+00')"))
    return 1


def _row(user_id: int, data: object, created_at: datetime = T0, actor_id: int | None = None) -> dict:
    return {"org_id": 1, "user_id": user_id, "kind": "mention", "actor_id": actor_id, "post_id": None, "comment_id": None,
            "data": data, "created_at": created_at, "read_at": None}


async def _stored(session) -> list[tuple]:  # type: ignore[no-untyped-def]
    rows = await session.execute(select(Notification.user_id, Notification.actor_id, Notification.data, Notification.created_at).order_by(Notification.id))
    return [tuple(r) for r in rows]


async def test_constant_and_varying_columns_round_trip(services):
    await _org(services)
    shared = {"a": 1}
    rows = [
        _row(1, shared), _row(2, shared), _row(3, {"a": True}, T1, actor_id=1),  # 1 and True are different documents
    ]
    async with org_session(services.sessions, 1) as s:
        await insert_many(s, Notification.__table__, rows)
        await insert_many(s, Notification.__table__, [_row(4, {"n": None}, T1)])  # one row: every column the same
        await insert_many(s, Notification.__table__, [_row(5, shared), _row(5, shared)])  # identical rows
        assert await _stored(s) == [
            (1, None, {"a": 1}, T0), (2, None, {"a": 1}, T0), (3, 1, {"a": True}, T1),
            (4, None, {"n": None}, T1), (5, None, {"a": 1}, T0), (5, None, {"a": 1}, T0),
        ]


async def test_columns_with_values_for_every_row_return_ids_in_order(services):
    await _org(services)
    async with org_session(services.sessions, 1) as s:
        first = await insert_returning_ids(s, Notification.__table__, [_row(9, {})])
        ids = await insert_columns(
            s, Notification.__table__,
            {"user_id": [3, 1, 2], "data": [{"x": 3}, {"x": 1}, {"x": 2}], "created_at": [T0, T1, T0]},
            {"org_id": 1, "kind": "mention", "actor_id": None, "post_id": None, "comment_id": None, "read_at": None},
            returning_ids=True,
        )
        assert ids == sorted(ids) and ids[0] > first[0]
        got = {r.id: (r.user_id, r.data, r.created_at) for r in (await s.execute(select(Notification))).scalars()}
        assert [got[i] for i in ids] == [(3, {"x": 3}, T0), (1, {"x": 1}, T1), (2, {"x": 2}, T0)]
        assert await insert_columns(s, Notification.__table__, {"user_id": []}, {}) == []


async def test_strings_of_every_shape_and_shared_documents_round_trip(services):
    """Text columns travel as one array literal and documents shared by rows once each (PostgreSQL):
    quotes, backslashes, braces, commas, spaces, the word NULL, the empty string and nulls come back as sent."""
    await _org(services)
    kinds = ['a "quoted" one', "back\\slash", "{braces},comma", " padded ", "NULL", "null", "", "ünï", "plain:1"]
    first, second = {"item": 1}, {"item": 2}
    docs = [first if i % 3 else second for i in range(len(kinds))]
    async with org_session(services.sessions, 1) as s:
        await insert_columns(
            s, Notification.__table__,
            {"user_id": [1 + i % 5 for i in range(len(kinds))], "kind": kinds, "data": docs},
            {"org_id": 1, "actor_id": None, "post_id": None, "comment_id": None, "created_at": T0, "read_at": None},
        )
        rows = (await s.execute(select(Notification.kind, Notification.data).order_by(Notification.id))).all()
        assert [tuple(r) for r in rows] == list(zip(kinds, docs, strict=True))
        await update_many(s, Notification.__table__, ("org_id", "id"), [
            {"org_id": 1, "id": n.id, "kind": n.kind[::-1]} for n in (await s.execute(select(Notification))).scalars()
        ])
        got = list((await s.execute(select(Notification.kind).order_by(Notification.id))).scalars())
        assert got == [k[::-1] for k in kinds]
