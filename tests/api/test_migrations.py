"""F-OPS-2: the schema ships as migrations, and the migrations match the models on both databases."""

from __future__ import annotations

import importlib

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from feeds_server.store.base import Base

# SQLite's full-text table (migration 0012) and the shadow tables named after it are not models.
SQLITE_FTS_TABLE = importlib.import_module("feeds_server.store.migrations.versions.0012_search").SQLITE_FTS_TABLE


def _modelled(name: str | None, type_: str, _parents: object) -> bool:
    return not (type_ == "table" and name is not None and name.startswith(SQLITE_FTS_TABLE))


async def test_migrated_schema_matches_the_models(database_url):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": False, "include_name": _modelled}), Base.metadata))
    finally:
        await engine.dispose()
    assert diff == []


async def seed_user_and_org(conn) -> None:  # type: ignore[no-untyped-def]
    """User 1 and org 1, as a database of an earlier revision holds them, for an upgrade to work on."""
    from sqlalchemy import text

    await conn.execute(text(
        "INSERT INTO users (id, email, name, default_org_lost, created_at) VALUES (1, 'a@x.example', 'A', false, '2026-01-01 00:00:00+00')"))
    await conn.execute(text(
        "INSERT INTO orgs (id, name, slug, time_zone, edition, event_seq, rt_epoch, ip_allowlist, disabled_modules, created_at)"
        " VALUES (1, 'O', 'o', 'UTC', 'free', 0, 'e1', '[]', '[]', '2026-01-01 00:00:00+00')"))


async def _empty_database(backend: str, tmp_path) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    """A new, empty database on `backend`; returns its URL and a coroutine function that drops it."""
    import uuid

    from tests.conftest import PG_ADMIN_URL, _pg_admin, unavailable

    if backend == "sqlite":
        async def nothing() -> None:
            return None

        return f"sqlite+aiosqlite:///{tmp_path / 'upgrade.db'}", nothing
    name = f"feeds_upgrade_{uuid.uuid4().hex[:10]}"
    try:
        await _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001
        unavailable("PostgreSQL", repr(exc))

    async def drop() -> None:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", drop


async def test_upgrade_from_0001_keeps_follows_and_fills_their_activity(backend, tmp_path):
    """0002 adds `follows.last_activity_at` to a database that already holds follows: each copies its
    record's last activity, so dormant records of an upgraded install are right at once."""
    from sqlalchemy import text

    from feeds_server.store.migrate import upgrade

    url, drop = await _empty_database(backend, tmp_path)
    engine = create_async_engine(url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await seed_user_and_org(conn)
            await conn.execute(text(
                "INSERT INTO records (id, org_id, module, crm_id, name, fields, created_at, last_activity_at)"
                " VALUES (7, 1, 'Deals', 'D1', 'Deal', '{}', '2026-01-01 00:00:00+00', '2026-03-04 05:06:07+00')"))
            await conn.execute(text(
                "INSERT INTO follows (org_id, record_id, user_id, module, source, created_at)"
                " VALUES (1, 7, 1, 'Deals', 'hand', '2026-01-02 00:00:00+00')"))
        await upgrade(engine)
        async with engine.connect() as conn:
            stamp = (await conn.execute(text("SELECT last_activity_at FROM follows"))).scalar_one()
            card = (await conn.execute(text("SELECT key_fields FROM records"))).scalar_one()
        assert str(stamp).startswith("2026-03-04 05:06:07")
        assert card in ([], "[]")
    finally:
        await engine.dispose()
        await drop()
