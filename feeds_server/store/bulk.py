"""Multi-row inserts of plain rows, the cheapest way each database offers.

On PostgreSQL the rows travel as one array per column, `INSERT … SELECT FROM unnest(…)`: one
statement, one set of parameters, whatever the number of rows (an executemany converts and sends
every row's parameters one by one, which is most of the cost of a big batch). On SQLite, an
executemany. The rows skip the ORM, so each carries its `org_id`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, Integer, String, Table, bindparam, insert, text, update
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
    ids = await _next_ids(session, table, len(rows))
    values = _columns(rows)
    values["id"] = ids
    await session.execute(*_pg_insert(table, values))
    return ids


async def insert_columns(
    session: AsyncSession, table: Table, per_row: dict[str, list[Any]], same: dict[str, Any], *, returning_ids: bool = False
) -> list[int]:
    """Insert rows given as columns: `per_row` a list of values per column (all of one length),
    `same` one value for every row. Returns the new ids, in row order, when `returning_ids`.

    For big fan-outs, where building a dict per row costs more than the insert itself.
    """
    n = len(next(iter(per_row.values())))
    if not n:
        return []
    if session.get_bind().dialect.name != "postgresql":
        names = tuple(per_row)
        rows = [{**same, **dict(zip(names, values))} for values in zip(*per_row.values(), strict=True)]
        if returning_ids:
            return await insert_returning_ids(session, table, rows)
        await session.execute(insert(table), rows)
        return []
    values: dict[str, list[Any]] = {name: [value] * n for name, value in same.items()}
    values.update(per_row)
    ids: list[int] = []
    if returning_ids:
        ids = values["id"] = await _next_ids(session, table, n)
    await session.execute(*_pg_insert(table, values))
    return ids


async def reserve_ids(session: AsyncSession, table: Table, n: int) -> list[int]:
    """`n` new ids of `table` (PostgreSQL), increasing, for rows inserted later in the transaction."""
    return await _next_ids(session, table, n) if n else []


async def _next_ids(session: AsyncSession, table: Table, n: int) -> list[int]:
    """`n` new ids of `table`, increasing: one row holding an array (a row per id cost more to read
    than the ids cost to take)."""
    return sorted((await session.execute(_NEXT_IDS, {"table": table.name, "n": n})).scalar_one())


# The sequence is looked up once (a CTE, so it is not inlined into each `nextval` call: looked up per
# row, it cost five times the ids themselves).
_NEXT_IDS = text(
    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(:table, 'id')::regclass AS seq)"
    " SELECT array_agg(nextval(s.seq)) FROM s, generate_series(1, :n)"
)


def insert_rows(dialect_name: str, table: Table, rows: list[dict[str, Any]]) -> tuple[Executable, Any]:
    """The statement and parameters that insert `rows` (all with the same keys) into `table`.

    On PostgreSQL a column holding one value in every row (the org, the batch's time, a null) is
    sent once as a scalar rather than as an array: the driver encodes each array element in turn,
    which is a good part of the cost of a big batch.
    """
    if dialect_name != "postgresql":
        return insert(table), rows
    return _pg_insert(table, _columns(rows))


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in rows[0]}


def _pg_insert(table: Table, values: dict[str, list[Any]]) -> tuple[Executable, dict[str, Any]]:
    columns = tuple(values)
    json_columns = _columns_of(table, JSON)
    same = tuple(name for name in columns if _one_value(values[name], name in json_columns))
    varying = tuple(name for name in columns if name not in same)
    if not varying:  # one row, or identical rows: unnest still needs an array to count them
        varying, same = same[:1], same[1:]
    params: dict[str, Any] = {}
    for i, name in enumerate(same):
        value = values[name][0]
        params[f"s{i}"] = json_text(value) if name in json_columns and value is not None else value
    shared: list[str] = []
    for i, name in enumerate(varying):
        column = values[name]
        if name in json_columns or name in _columns_of(table, DateTime):
            docs, picks = _shared_values(column, json_text if name in json_columns else None)
            if docs is not None:
                params[f"c{i}"], params[f"d{i}"] = int_array(picks), docs
                shared.append(name)
                continue
        if name in _columns_of(table, String):
            params[f"c{i}"] = text_array(column)
        elif name in _columns_of(table, Integer):
            params[f"c{i}"] = int_array(column)
        else:
            params[f"c{i}"] = _column_array(column, name in json_columns)
    return _unnest_insert(table, same, varying, tuple(shared)), params


def _one_value(values: list[Any], is_json: bool) -> bool:
    """Every row holds the same value. JSON documents only when they are the same object (1 and
    True compare equal in Python but are different documents)."""
    first = values[0]
    if is_json:
        return all(v is first for v in values)
    return values.count(first) == len(values)


def _column_array(values: list[Any], is_json: bool) -> list[Any]:
    """JSON documents as text, each object encoded once (the rows of a batch often share one)."""
    if not is_json:
        return values
    encoded: dict[int, str | None] = {id(None): None}
    out = []
    for v in values:
        doc = encoded.get(id(v), _MISSING)
        if doc is _MISSING:
            doc = encoded[id(v)] = json_text(v)
        out.append(doc)
    return out


_MISSING: Any = object()


def _shared_values(values: list[Any], encode: Callable[[Any], Any] | None) -> tuple[list[Any] | None, list[int]]:
    """When rows share values (a fan-out row per follower of an item: its document, its record's
    time), each value once and, per row, its position (from 1); JSON documents encoded: PostgreSQL
    parses each document once, and the driver encodes a position for less than a timestamp. Shared
    means the same object. `None` when fewer than half the rows share theirs."""
    positions: dict[int, int] = {}
    distinct: list[Any] = []
    picks: list[int] = []
    for v in values:
        n = positions.get(id(v))
        if n is None:
            if v is None or len(distinct) * 2 >= len(values):
                return None, []
            distinct.append(encode(v) if encode else v)
            n = positions[id(v)] = len(distinct)
        picks.append(n)
    return distinct, picks


def int_array(values: list[int | None]) -> str:
    """Integers as one array literal, for the same reason as `text_array`."""
    if None in values:
        return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"
    return "{" + ",".join(map(str, values)) + "}"


# An element of an array literal that needs no quotes (PostgreSQL's `array_in`).
_PLAIN = re.compile(r'[^\s{},"\\]+')


def text_array(values: list[str | None]) -> str:
    """Strings as one array literal: the driver would encode each element in turn (checking it is
    not itself a sequence), several times the cost of joining them here."""
    quoted: dict[str | None, str] = {None: "NULL"}
    for v in set(values):
        if v is not None:
            quoted[v] = v if _PLAIN.fullmatch(v) and v.upper() != "NULL" else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "{" + ",".join([quoted[v] for v in values]) + "}"


@lru_cache(maxsize=256)
def _unnest_insert(table: Table, same: tuple[str, ...], varying: tuple[str, ...], shared: tuple[str, ...] = ()) -> Executable:
    """`shared` columns come as positions (`c<i>`) in an array of their distinct values (`d<i>`)."""
    scalars = "".join(f"CAST(:s{i} AS {_scalar_type(table, name)}), " for i, name in enumerate(same))
    arrays = ", ".join(_array_param(table, name, f"c{i}", name in shared) for i, name in enumerate(varying))
    picked = ", ".join(
        f"(CAST(:d{i} AS {_array_type(table, name)}))[u.c{i}]" if name in shared else f"u.c{i}" for i, name in enumerate(varying)
    )
    aliases = ", ".join(f"c{i}" for i in range(len(varying)))
    names = ", ".join(f'"{name}"' for name in same + varying)
    return text(f'INSERT INTO "{table.name}" ({names}) SELECT {scalars}{picked} FROM unnest({arrays}) AS u({aliases})')


def _array_param(table: Table, name: str, param: str, shared: bool = False) -> str:
    if shared:
        return f"CAST(CAST(:{param} AS TEXT) AS INTEGER[])"
    if name in _columns_of(table, String) or name in _columns_of(table, Integer):
        return f"CAST(CAST(:{param} AS TEXT) AS {_array_type(table, name)})"
    return f"CAST(:{param} AS {_array_type(table, name)})"


def _scalar_type(table: Table, name: str) -> str:
    return table.c[name].type.compile(dialect=_PG)  # `json` or `jsonb` as the column is


def _array_type(table: Table, name: str) -> str:
    return _scalar_type(table, name) + "[]"


@lru_cache(maxsize=512)
def _columns_of(table: Table, kind: type) -> frozenset[str]:
    """The table's columns whose type is (or wraps) `kind`: how their values are sent."""
    return frozenset(c.name for c in table.columns if isinstance(_impl(c.type), kind))


def _impl(type_: Any) -> Any:
    impl = getattr(type_, "impl", type_)
    return impl() if isinstance(impl, type) else impl


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def json_text(value: Any) -> str:
    return json_bytes(value).decode()


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
    json_columns, text_columns = _columns_of(table, JSON), _columns_of(table, String)
    params: dict[str, Any] = {}
    for i, name in enumerate(columns):
        column = [r[name] for r in rows]
        if name in text_columns:
            params[f"c{i}"] = text_array(column)
        elif name in _columns_of(table, Integer):
            params[f"c{i}"] = int_array(column)
        else:
            params[f"c{i}"] = _column_array(column, name in json_columns)
    await session.execute(_unnest_update(table, keys, columns), params)


@lru_cache(maxsize=64)
def _unnest_update(table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Executable:
    arrays = ", ".join(_array_param(table, name, f"c{i}") for i, name in enumerate(columns))
    names = ", ".join(f'"{name}"' for name in columns)
    sets = ", ".join(f'"{c}" = v."{c}"' for c in columns if c not in keys)
    match = " AND ".join(f'"{table.name}"."{k}" = v."{k}"' for k in keys)
    return text(f'UPDATE "{table.name}" SET {sets} FROM unnest({arrays}) AS v({names}) WHERE {match}')
