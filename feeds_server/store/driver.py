"""Statements sent straight to asyncpg, outside the ORM and outside any explicit transaction
(PostgreSQL only).

The busiest paths (the caller lookup of each request, a group commit of new posts) pay more for
the ORM's session, events and result objects than for the database's work, and even taking a
connection from SQLAlchemy's pool and giving it back costs more CPU than the query it runs. They
use a few connections of their own (`DRIVER_POOL_SIZE` per process, beside the engine's pool) and
send statements outside any explicit transaction, where one statement is one transaction: a
statement that writes several tables (with CTEs) commits them together, in one round trip.
Row-level security applies as everywhere: name the org first (store/scope.py `driver_sees_org`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

# Connections per process for the driver paths, on top of the engine's pool: a caller lookup or a
# batch holds one for a single round trip, so a few serve hundreds of requests in flight.
DRIVER_POOL_SIZE = 4


class DriverConnection:
    """An asyncpg connection of the driver pool, with what its session settings hold."""

    __slots__ = ("driver", "info")

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        # The row-level security scope the connection holds (store/scope.py).
        self.info: dict[str, Any] = {}


class DriverPool:
    """At most `size` connections, opened when first needed, reused as they are (no reset:
    nothing is left open between statements but the session settings tracked in `info`)."""

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._idle: list[DriverConnection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def acquire(self) -> DriverConnection:
        await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                # The server closed it while idle (a restart, a terminated backend): the next
                # request must not be the one to find out.
                if not conn.driver.is_closed():
                    return conn
                conn.driver.terminate()
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: DriverConnection, reusable: bool) -> None:
        if reusable and not self._closed and not conn.driver.is_closed():
            self._idle.append(conn)
        else:
            conn.driver.terminate()
        self._slots.release()

    def close(self) -> None:
        """Drop the idle connections; those in use are dropped when given back."""
        self._closed = True
        for conn in self._idle:
            conn.driver.terminate()
        self._idle.clear()

    async def _connect(self) -> DriverConnection:
        import asyncpg

        driver = await asyncpg.connect(self._dsn)
        # JSON columns as the engine reads and writes them (store/db.py): text in, orjson out.
        await driver.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary")
        await driver.set_type_codec("json", encoder=str.encode, decoder=orjson.loads, schema="pg_catalog", format="binary")
        return DriverConnection(driver)


def _jsonb_encode(text: str) -> bytes:
    return b"\x01" + text.encode()


def _jsonb_decode(data: bytes) -> Any:
    return orjson.loads(data[1:])


_POOLS: WeakKeyDictionary[Any, DriverPool] = WeakKeyDictionary()


def _pool(engine: AsyncEngine) -> DriverPool:
    sync_engine = engine.sync_engine
    pool = _POOLS.get(sync_engine)
    if pool is None:
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        pool = _POOLS[sync_engine] = DriverPool(dsn, DRIVER_POOL_SIZE)
        event.listen(sync_engine, "engine_disposed", lambda _engine: pool.close())
    return pool


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[DriverConnection]:
    """A connection of the engine's driver pool, for statements outside any explicit transaction."""
    pool = _pool(engine)
    conn = await pool.acquire()
    try:
        yield conn
    except BaseException as exc:
        # An error the server reported leaves the connection as it was; anything else (lost, or
        # cancelled in the middle of a statement) closes it rather than reuse it.
        pool.release(conn, _reported_by_server(exc))
        raise
    pool.release(conn, True)


def _reported_by_server(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(exc, asyncpg.PostgresError) or isinstance(exc.__cause__, asyncpg.PostgresError)


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
