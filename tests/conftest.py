"""Shared fixtures: a real database per test on SQLite and on PostgreSQL, the app, and an HTTP client.

PostgreSQL: one fresh database per test run (dropped at the end), tables emptied after each test.
SQLite: a migrated template file copied for each test. Under CI=true a missing PostgreSQL or Redis
fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from feeds_server.api.app import create_app
from feeds_server.config import Settings
from feeds_server.runtime.services import Services
from feeds_server.store.base import Base
from feeds_server.store.db import create_engine
from feeds_server.store.migrate import upgrade

PG_ADMIN_URL = os.environ.get("FEEDS_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("FEEDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, reason: str) -> None:
    """Skip locally, fail under CI: a missing service must never turn a CI run green by skipping."""
    message = f"{what} is not reachable: {reason}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


async def _pg_admin(sql: str) -> None:
    engine = create_async_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


# The server connects as an ordinary role that owns its tables, as in production: superusers and
# BYPASSRLS roles would skip row-level security (migration 0004).
PG_APP_ROLE = "feeds_app"
_CREATE_APP_ROLE = f"""DO $$ BEGIN
  CREATE ROLE {PG_APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$"""


def app_role_url(url: str) -> str:
    """The same database, as the application's role."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{PG_APP_ROLE}@{rest.split('@', 1)[-1]}"


@pytest.fixture(scope="session")
def pg_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run."""
    name = f"feeds_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_pg_admin(_CREATE_APP_ROLE))
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" OWNER {PG_APP_ROLE}'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "unavailable"
        unavailable("PostgreSQL", repr(exc))
    url = app_role_url(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    asyncio.run(_migrate(url))
    yield url
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


async def _migrate(url: str) -> None:
    engine = create_engine(replace(Settings(), database_url=url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgres":
        return request.getfixturevalue("pg_database_url")
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "feeds.db"
    shutil.copy(template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        public_url="http://testserver",
        allowed_origins=("http://testserver",),
        argon2_time_cost=1,
        argon2_memory_kib=64,
        files_dir=tmp_path / "files",
        mail_dir=tmp_path / "mail",
        db_pool_size=5,
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = Services.build(settings)
    try:
        yield services
    finally:
        if not settings.is_sqlite:
            await _truncate_all(services)
        await services.close()


async def _truncate_all(services: Services) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with services.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def app(services: Services):  # type: ignore[no-untyped-def]
    return create_app(services=services)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
