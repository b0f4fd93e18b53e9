"""Engine and session factory for SQLite (default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from feeds_server.config import Settings
from feeds_server.store import sqlite_functions  # noqa: F401 - SQL functions the SQLite triggers call, on every connection


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns hold API-shaped documents (datetimes as RFC 3339 text), encoded with orjson.
_JSON: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def create_engine(settings: Settings) -> AsyncEngine:
    """One engine per process. SQLite gets WAL, foreign keys and a busy timeout."""
    url = settings.database_url
    if settings.is_sqlite:
        _ensure_sqlite_dir(url)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **_JSON)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    # A fixed pool: under a burst, requests queue for a connection instead of opening and closing
    # extra ones (a new PostgreSQL connection costs more than the query it would run).
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=30,
        pool_pre_ping=False,
        pool_recycle=1800,
        **_JSON,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling is turned off so `begin` below decides how a transaction starts.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN: two writers then queue on busy_timeout instead of failing
    # with "database is locked" when a read transaction tries to upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_snapshot_engine(settings: Settings) -> AsyncEngine:
    """An engine for long reads that must see one moment of the data (an org export).

    PostgreSQL: REPEATABLE READ. SQLite: a plain (deferred) BEGIN, which in WAL mode reads one
    snapshot without taking the write lock, so the server keeps writing while the export runs.
    """
    if not settings.is_sqlite:
        return create_async_engine(settings.database_url, pool_size=1, max_overflow=0, isolation_level="REPEATABLE READ", **_JSON)
    engine = create_async_engine(settings.database_url, connect_args={"timeout": 30}, **_JSON)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    event.listen(engine.sync_engine, "begin", _sqlite_begin_deferred)
    return engine


def _sqlite_begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")
