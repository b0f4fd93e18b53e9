"""Statements sent straight to asyncpg, outside the ORM and outside any explicit transaction
(PostgreSQL only).

The busiest paths (the caller lookup of each request, a group commit of new posts) pay more for
the ORM's session, events and result objects than for the database's work. They borrow a pooled
connection and send statements outside any explicit transaction, where one statement is one
transaction: a statement that writes several tables (with CTEs) commits them together, in one
round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util.concurrency import greenlet_spawn

T = TypeVar("T")


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[PoolProxiedConnection]:
    """A connection of the engine's pool, used through `.driver_connection` (asyncpg), where a
    statement outside an explicit transaction commits on its own. Taken from the pool directly:
    an SQLAlchemy `Connection` in AUTOCOMMIT mode around it costs about twice the query's own CPU.
    Row-level security still applies: name the org first (store/scope.py `driver_sees_org`)."""
    raw = await engine.raw_connection()
    try:
        yield raw
    except BaseException as exc:
        # Lost, or cancelled in the middle of a statement: the pool replaces it rather than reuse it.
        if raw.driver_connection.is_closed() or not isinstance(exc, Exception):  # type: ignore[union-attr]
            await greenlet_spawn(raw.invalidate)
        raise
    finally:
        await greenlet_spawn(raw.close)  # back to the pool (a reset may need the driver)


def plain_instance(model: type[T], values: Iterable[tuple[str, Any]]) -> T:
    """A transient instance with its attributes in place, without the constructor's per-attribute
    change tracking: for rows read or written here, never added to a session."""
    instance = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    instance.__dict__.update(values)
    return instance  # type: ignore[no-any-return]


def integrity_error(exc: Exception, statement: str) -> Exception:
    """asyncpg's constraint violations as SQLAlchemy's `IntegrityError`, which the API answers
    with 409 (and an idempotent request retries as a replay) whichever path wrote the rows."""
    import asyncpg

    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(statement, None, exc)
    return exc
