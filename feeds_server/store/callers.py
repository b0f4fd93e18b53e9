"""The caller of a request in one prepared statement outside any transaction (PostgreSQL only,
on the driver connection: store/driver.py).

The busiest endpoints (posting, reading the feed: `reads_only` in api/routing.py) first need the
token, its user, the org named in the path, the membership and its profile. Through the ORM that
lookup costs about a third of a millisecond of CPU, as much as the rest of the request; here it is
the same join as api/dispatch.py's `_CALLER` sent straight to the driver, and the row becomes
detached model instances. The caller of `find_caller` makes the same checks either way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapper

from feeds_server.store.driver import driver_connection, plain_instance
from feeds_server.store.models import AuthToken, Membership, Org, Profile, User
from feeds_server.store.scope import driver_sees_org

Caller = tuple[AuthToken, User, Org | None, Membership | None, Profile | None]
_MODELS = (AuthToken, User, Org, Membership, Profile)


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
        "WHERE a.token_hash = $1"
    )
    return sql, tuple(layout)


@lru_cache(maxsize=1)
def _org_id_column() -> int:
    """Where the org's id sits in the row."""
    _, layout = _statement()
    model, keys, start, _ = next(entry for entry in layout if entry[0] is Org)
    return start + keys.index("id")


async def find_caller(engine: AsyncEngine, token_hash: str, slug: str | None) -> Caller | None:
    """The token's row with its user, and the org `slug` with the user's membership and profile
    there (None where there is none), or None when no token has that hash."""
    sql, layout = _statement()
    async with driver_connection(engine) as conn:
        driver = conn.driver
        row = await driver.fetchrow(sql, token_hash, slug)  # type: ignore[union-attr]
        # Row-level security shows the membership only if the connection is scoped to the org
        # (store/scope.py). Connections mostly serve the same orgs, so ask again only on a change.
        org_id = row[_org_id_column()] if row is not None else None
        if org_id is not None and await driver_sees_org(conn, org_id):
            row = await driver.fetchrow(sql, token_hash, slug)  # type: ignore[union-attr]
    if row is None:
        return None
    found: list[Any] = []
    for model, keys, start, end in layout:
        values = row[start:end]
        # A missing outer-joined row comes back as NULLs, its primary key included.
        if values[keys.index("id")] is None:
            found.append(None)
            continue
        found.append(plain_instance(model, zip(keys, values)))
    return tuple(found)  # type: ignore[return-value]
