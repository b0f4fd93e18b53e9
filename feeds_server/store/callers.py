"""The caller of a request in one prepared statement outside any transaction (PostgreSQL only,
on the driver connection: store/driver.py), read together with the other requests' of its org.

The busiest endpoints (posting, reading the feed: `reads_only` in api/routing.py) first need the
token, its user, the org named in the path, the membership and its profile. Through the ORM that
lookup costs about a third of a millisecond of CPU, as much as the rest of the request; here it is
the same join as api/access.py's `_CALLER` sent straight to the driver, and the row becomes
detached model instances. The caller of `find_caller` makes the same checks either way.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapper

from feeds_server.store.driver import driver_connection, plain_instance
from feeds_server.store.models import AuthToken, Membership, Org, Profile, User
from feeds_server.store.scope import driver_sees_org

Caller = tuple[AuthToken, User, Org | None, Membership | None, Profile | None]
_MODELS = (AuthToken, User, Org, Membership, Profile)


# Lookups read together in one statement at most (see `find_caller`).
MAX_CALLERS_PER_READ = 256


@lru_cache(maxsize=1)
def _statement() -> tuple[str, tuple[tuple[type, tuple[str, ...], int, int], ...]]:
    """The SQL, and for each model its attribute names and the slice of the row that holds them."""
    aliases = ("a", "u", "o", "m", "p")
    columns: list[str] = []
    layout = []
    for model, alias in zip(_MODELS, aliases):
        mapper: Mapper[Any] = model.__mapper__
        table: Table = model.__table__  # type: ignore[assignment]
        keys = tuple(prop.key for prop in mapper.column_attrs)
        names = [mapper.column_attrs[k].columns[0].name for k in keys]
        assert all(n in table.c for n in names)
        layout.append((model, keys, len(columns), len(columns) + len(keys)))
        columns += [f'{alias}."{n}"' for n in names]
    sql = (
        f"SELECT {', '.join(columns)} FROM auth_tokens a JOIN users u ON u.id = a.user_id "
        "LEFT JOIN orgs o ON o.slug = $2 "
        "LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = u.id "
        "LEFT JOIN profiles p ON p.id = m.profile_id "
        "WHERE a.token_hash = ANY($1::varchar[])"
    )
    return sql, tuple(layout)


@lru_cache(maxsize=None)
def _column(model: type, key: str) -> int:
    """Where a model's attribute sits in the row."""
    _, layout = _statement()
    _, keys, start, _ = next(entry for entry in layout if entry[0] is model)
    return start + keys.index(key)


async def find_caller(engine: AsyncEngine, token_hash: str, slug: str | None) -> Caller | None:
    """The token's row with its user, and the org `slug` with the user's membership and profile
    there (None where there is none), or None when no token has that hash.

    Lookups for the same org that arrive while one is being read are read together next, in one
    statement (as posts are written together, actions/post_writer.py): under load a request costs
    a share of a round trip instead of one. Each is still read after its request arrived, so a
    token revoked before is seen revoked."""
    lookups = _LOOKUPS.get(engine)
    if lookups is None:
        lookups = _LOOKUPS[engine] = _Lookups(engine)
    row = await lookups.find(token_hash, slug)
    return None if row is None else _caller(row)


class _Lookups:
    """One process's pending caller lookups, a queue and a reading task per org slug."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._queues: dict[str | None, list[tuple[str, asyncio.Future[Any]]]] = {}
        self._tasks: dict[str | None, asyncio.Task[None]] = {}

    async def find(self, token_hash: str, slug: str | None) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(slug, []).append((token_hash, done))
        if slug not in self._tasks:
            self._tasks[slug] = asyncio.create_task(self._drain(slug), name=f"callers-{slug}")
        return await done

    async def _drain(self, slug: str | None) -> None:
        queue = self._queues[slug]
        batch: list[tuple[str, asyncio.Future[Any]]] = []
        try:
            while queue:
                batch = queue[:MAX_CALLERS_PER_READ]
                del queue[: len(batch)]
                try:
                    rows = await _read(self.engine, sorted({h for h, _ in batch}), slug)
                except Exception as exc:  # each request answers with the error
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for token_hash, done in batch:
                    if not done.done():  # its request may have gone away
                        done.set_result(rows.get(token_hash))
        except BaseException as exc:  # cancelled (shutdown): nobody is left waiting forever
            for _, done in [*batch, *queue]:
                if not done.done():
                    done.set_exception(exc)
            queue.clear()
            raise
        finally:
            del self._tasks[slug]
            self._queues.pop(slug, None)


_LOOKUPS: WeakKeyDictionary[AsyncEngine, _Lookups] = WeakKeyDictionary()


async def _read(engine: AsyncEngine, token_hashes: list[str], slug: str | None) -> dict[str, Any]:
    """The rows of these tokens (by token hash) with the org `slug`, in one statement."""
    sql, _ = _statement()
    async with driver_connection(engine) as conn:
        rows = await conn.driver.fetch(sql, token_hashes, slug)
        # Row-level security shows the membership only if the connection is scoped to the org
        # (store/scope.py). Connections mostly serve the same orgs, so ask again only on a change.
        org_id = next((r[_column(Org, "id")] for r in rows if r[_column(Org, "id")] is not None), None)
        if org_id is not None and await driver_sees_org(conn, org_id):
            rows = await conn.driver.fetch(sql, token_hashes, slug)
    return {row[_column(AuthToken, "token_hash")]: row for row in rows}


def _caller(row: Any) -> Caller:
    _, layout = _statement()
    found: list[Any] = []
    for model, keys, start, end in layout:
        values = row[start:end]
        # A missing outer-joined row comes back as NULLs, its primary key included.
        if values[keys.index("id")] is None:
            found.append(None)
            continue
        found.append(plain_instance(model, zip(keys, values)))
    return tuple(found)  # type: ignore[return-value]
