"""Audience rows, notifications, events and event channels have no foreign keys (migration 0005);
deleting an org, a user, a post or a comment still removes (or unsigns) the rows that named it, on
both databases, whatever the transaction's org scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

T = "'2026-01-01 00:00:00+00'"
PARENTS = [
    f"INSERT INTO users (id, email, name, default_org_lost, created_at) VALUES (1, 'a@x.example', 'A', false, {T}), (2, 'b@x.example', 'B', false, {T})",
    "INSERT INTO orgs (id, name, slug, time_zone, edition, event_seq, rt_epoch, ip_allowlist, disabled_modules, created_at)"
    f" VALUES (1, 'O', 'o', 'UTC', 'free', 2, 'e1', '[]', '[]', {T}), (2, 'P', 'p', 'UTC', 'free', 0, 'e1', '[]', '[]', {T})",
]
ORG_ROWS = [
    "INSERT INTO posts (id, org_id, kind, author_id, body, data, comment_count, created_at)"
    f" VALUES (10, :org, 'status', 1, 'x', '{{}}', 1, {T}), (11, :org, 'status', 1, 'y', '{{}}', 0, {T})",
    f"INSERT INTO comments (id, org_id, post_id, author_id, body, data, created_at) VALUES (20, :org, 10, 2, 'c', '{{}}', {T})",
    f"INSERT INTO post_audience (org_id, post_id, channel, created_at) VALUES (:org, 10, 'u:1', {T}), (:org, 10, 'u:2', {T}), (:org, 11, 'org', {T})",
    "INSERT INTO notifications (id, org_id, user_id, kind, actor_id, post_id, comment_id, data, created_at) VALUES"
    f" (30, :org, 1, 'mention', 2, 10, 20, '{{}}', {T}), (31, :org, 2, 'mention', 1, 10, NULL, '{{}}', {T}),"
    f" (32, :org, 1, 'mention', 2, 11, NULL, '{{}}', {T})",
    f"INSERT INTO events (org_id, seq, type, actor_user_id, payload, channels, created_at) VALUES (:org, 1, 'post.created', 1, '{{}}', '[\"u:1\"]', {T})",
    f"INSERT INTO event_channels (org_id, channel, seq, created_at) VALUES (:org, 'u:1', 1, {T})",
]


async def _run(services: Any, org: int | None, *statements: str) -> list[Any]:
    """Statements in one transaction scoped to `org` (PostgreSQL row-level security), or to no org."""
    async with services.engine.begin() as conn:
        if not services.settings.is_sqlite:
            await conn.execute(text("SELECT set_config('feeds.org_id', :org, true)"), {"org": str(org or "")})
        return [(await conn.execute(text(s), {"org": org})) for s in statements]


async def _setup(services: Any) -> None:
    async with services.engine.begin() as conn:
        for s in PARENTS:
            await conn.execute(text(s))
    await _run(services, 1, *ORG_ROWS)


async def _rows(services: Any, org: int, sql: str) -> list[tuple[Any, ...]]:
    async with services.engine.begin() as conn:
        if not services.settings.is_sqlite:
            await conn.execute(text("SELECT set_config('feeds.org_id', :org, true)"), {"org": str(org)})
        return [tuple(r) for r in await conn.execute(text(sql))]


async def test_a_deleted_post_takes_its_audience_and_notifications(services):
    await _setup(services)
    await _run(services, 1, "DELETE FROM posts WHERE id = 10")
    assert await _rows(services, 1, "SELECT post_id, channel FROM post_audience") == [(11, "org")]
    assert await _rows(services, 1, "SELECT id FROM notifications") == [(32,)]


async def test_a_deleted_comment_takes_its_notifications(services):
    await _setup(services)
    await _run(services, 1, "DELETE FROM comments WHERE id = 20")
    assert await _rows(services, 1, "SELECT id FROM notifications ORDER BY id") == [(31,), (32,)]


async def test_a_deleted_user_takes_their_notifications_and_is_unsigned_from_others(services):
    await _setup(services)
    await _run(services, None, "DELETE FROM users WHERE id = 2")  # an account-level delete, no org in scope
    assert await _rows(services, 1, "SELECT id, user_id, actor_id FROM notifications ORDER BY id") == [(30, 1, None), (32, 1, None)]


async def test_a_deleted_org_takes_every_row_and_leaves_the_others(services):
    await _setup(services)
    await _run(services, 2, *(s.replace("(10", "(110").replace("(11,", "(111,").replace("(20", "(120").replace("(3", "(13") for s in ORG_ROWS[:1]))
    await _run(services, 1, "DELETE FROM orgs WHERE id = 1")
    for table in ("post_audience", "notifications", "events", "event_channels"):
        assert await _rows(services, 1, f"SELECT count(*) FROM {table}") == [(0,)], table
    assert await _rows(services, 2, "SELECT id FROM posts ORDER BY id") == [(110,), (111,)]


async def test_nothing_deleted_deletes_nothing(services):
    await _setup(services)
    await _run(services, 1, "DELETE FROM posts WHERE id = 999", "DELETE FROM users WHERE id = 999")
    assert await _rows(services, 1, "SELECT count(*) FROM notifications") == [(3,)]
    assert await _rows(services, 1, "SELECT count(*) FROM post_audience") == [(3,)]


async def test_upgrading_keeps_email_jobs_linked_to_their_notifications(backend, tmp_path):
    """On SQLite, 0005 rebuilds `notifications`; dropping the old table would null the links of
    `email_jobs` to it (ON DELETE SET NULL), so the migration puts them back."""
    from dataclasses import replace

    from feeds_server.config import Settings
    from feeds_server.store.db import create_engine
    from feeds_server.store.migrate import upgrade
    from tests.api.test_migrations import _empty_database

    url, drop = await _empty_database(backend, tmp_path)
    engine = create_engine(replace(Settings(), database_url=url))  # foreign keys enforced on SQLite too
    try:
        await upgrade(engine, "0004")
        async with engine.begin() as conn:
            if backend == "postgres":
                await conn.execute(text("SELECT set_config('feeds.all_orgs', 'on', true)"))
            for s in PARENTS + ORG_ROWS[:2] + [ORG_ROWS[3]]:
                await conn.execute(text(s), {"org": 1})
            await conn.execute(text(
                "INSERT INTO email_jobs (id, org_id, kind, user_id, to_email, notification_id, payload, status, attempts, created_at, next_attempt_at)"
                f" VALUES (40, 1, 'mention', 1, 'a@x.example', 31, '{{}}', 'pending', 0, {T}, {T})"))
        await upgrade(engine)
        async with engine.begin() as conn:
            if backend == "postgres":
                await conn.execute(text("SELECT set_config('feeds.all_orgs', 'on', true)"))
            assert (await conn.execute(text("SELECT notification_id FROM email_jobs"))).scalar_one() == 31
            assert (await conn.execute(text("SELECT count(*) FROM notifications"))).scalar_one() == 3
    finally:
        await engine.dispose()
        await drop()


FOLLOWS = [
    "INSERT INTO records (id, org_id, module, crm_id, name, fields, key_fields, created_at, last_activity_at)"
    f" VALUES (50, :org, 'Deals', 'D1', 'Deal', '{{}}', '[]', {T}, {T}), (51, :org, 'Deals', 'D2', 'Deal', '{{}}', '[]', {T}, {T})",
    "INSERT INTO follows (org_id, record_id, user_id, module, source, last_activity_at, created_at) VALUES"
    f" (:org, 50, 1, 'Deals', 'owner', {T}, {T}), (:org, 50, 2, 'Deals', 'hand', {T}, {T}), (:org, 51, 2, 'Deals', 'rule', {T}, {T})",
]


async def test_follows_go_with_their_record_user_or_org(services):
    """Follows have no foreign keys either (migration 0006)."""
    await _setup(services)
    await _run(services, 1, *FOLLOWS)
    await _run(services, 1, "DELETE FROM records WHERE id = 51")
    assert await _rows(services, 1, "SELECT record_id, user_id FROM follows ORDER BY record_id, user_id") == [(50, 1), (50, 2)]
    await _run(services, None, "DELETE FROM users WHERE id = 2")
    assert await _rows(services, 1, "SELECT record_id, user_id FROM follows") == [(50, 1)]
    await _run(services, 1, "DELETE FROM orgs WHERE id = 1")
    assert await _rows(services, 1, "SELECT count(*) FROM follows") == [(0,)]


async def test_a_row_naming_a_missing_user_is_refused(services):
    """Migration 0007: the users notifications and follows name are checked once per statement (on
    SQLite per row), as their foreign keys did."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    await _setup(services)
    await _run(services, 1, *FOLLOWS)
    refused = [
        f"INSERT INTO notifications (org_id, user_id, kind, post_id, data, created_at) VALUES (:org, 1, 'mention', 10, '{{}}', {T}), (:org, 99, 'mention', 10, '{{}}', {T})",
        f"INSERT INTO notifications (org_id, user_id, kind, actor_id, data, created_at) VALUES (:org, 1, 'mention', 98, '{{}}', {T})",
        f"INSERT INTO follows (org_id, record_id, user_id, module, source, last_activity_at, created_at) VALUES (:org, 51, 1, 'Deals', 'hand', {T}, {T}), (:org, 51, 95, 'Deals', 'hand', {T}, {T})",
    ]
    for statement in refused:
        with pytest.raises(IntegrityError):
            await _run(services, 1, statement)
    await _run(services, 1, f"INSERT INTO notifications (org_id, user_id, kind, actor_id, post_id, comment_id, data, created_at) VALUES (:org, 2, 'mention', 1, 11, 20, '{{}}', {T}), (:org, 1, 'mention', NULL, 11, NULL, '{{}}', {T})")
    assert await _rows(services, 1, "SELECT count(*) FROM notifications") == [(5,)]
    assert await _rows(services, 1, "SELECT count(*) FROM follows") == [(3,)]
