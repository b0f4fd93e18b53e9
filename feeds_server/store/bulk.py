"""Multi-row inserts of plain rows, the cheapest way each database offers.

On PostgreSQL the rows travel as one array per column, `INSERT … SELECT FROM unnest(…)`: one
statement, one set of parameters, whatever the number of rows (an executemany converts and sends
every row's parameters one by one, which is most of the cost of a big batch). On SQLite, an
executemany. The rows skip the ORM, so each carries its `org_id`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, Table, bindparam, insert, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

_PG = postgresql.dialect()


async def insert_many(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (all with the same keys) into `table`."""
    if rows:
        await session.execute(*insert_rows(session.get_bind().dialect.name, table, rows))


async def insert_returning_ids(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` and return their new ids, in the order of `rows`.

    On PostgreSQL the ids are taken from the table's sequence first (one query), so the rows can go
    in as arrays; on SQLite, a multi-row INSERT … RETURNING.
    """
    if not rows:
        return []
    if session.get_bind().dialect.name != "postgresql":
        return list((await session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)).scalars())
    ids = sorted((await session.execute(_NEXT_IDS, {"table": table.name, "n": len(rows)})).scalars())
    await session.execute(*insert_rows("postgresql", table, [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]))
    return ids


_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")


def insert_rows(dialect_name: str, table: Table, rows: list[dict[str, Any]]) -> tuple[Executable, Any]:
    """The statement and parameters that insert `rows` (all with the same keys) into `table`."""
    if dialect_name != "postgresql":
        return insert(table), rows
    columns = tuple(rows[0])
    params: dict[str, list[Any]] = {}
    json_columns = _json_columns(table)
    for i, name in enumerate(columns):
        if name in json_columns:
            params[f"c{i}"] = [None if r[name] is None else _json(r[name]) for r in rows]
        else:
            params[f"c{i}"] = [r[name] for r in rows]
    return _unnest_insert(table, columns), params


@lru_cache(maxsize=256)
def _unnest_insert(table: Table, columns: tuple[str, ...]) -> Executable:
    arrays = ", ".join(f"CAST(:c{i} AS {_array_type(table, name)})" for i, name in enumerate(columns))
    names = ", ".join(f'"{name}"' for name in columns)
    return text(f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays})')


def _array_type(table: Table, name: str) -> str:
    column = table.c[name]
    if name in _json_columns(table):
        return "jsonb[]"
    return column.type.compile(dialect=_PG) + "[]"


@lru_cache(maxsize=128)
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(_impl(c.type), JSON))


def _impl(type_: Any) -> Any:
    impl = getattr(type_, "impl", type_)
    return impl() if isinstance(impl, type) else impl


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def update_many(session: AsyncSession, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Update the rows of `table` matched by the `keys` columns, each to its own values (all `rows`
    with the same keys). PostgreSQL: one `UPDATE … FROM unnest(…)`; SQLite: an executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    if session.get_bind().dialect.name != "postgresql":
        match = [table.c[k] == bindparam(f"k_{k}") for k in keys]
        stmt = update(table).where(*match).values({c: bindparam(f"v_{c}") for c in columns if c not in keys})
        await session.execute(stmt, [{f"{'k' if c in keys else 'v'}_{c}": v for c, v in row.items()} for row in rows])
        return
    _, params = insert_rows("postgresql", table, rows)
    await session.execute(_unnest_update(table, keys, columns), params)


@lru_cache(maxsize=64)
def _unnest_update(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Executable:
    arrays = ", ".join(f"CAST(:c{i} AS {_array_type(table, name)})" for i, name in enumerate(columns))
    names = ", ".join(f'"{name}"' for name in columns)
    sets = ", ".join(f'"{c}" = v."{c}"' for c in columns if c not in keys)
    match = " AND ".join(f'"{table.name}"."{k}" = v."{k}"' for k in keys)
    return text(f'UPDATE "{table.name}" SET {sets} FROM unnest({arrays}) AS v({names}) WHERE {match}')
