"""Row-level security on PostgreSQL (migration 0004): with the org of the transaction set, even an
unfiltered query sees only that org's rows and cannot write another org's; with nothing set it sees
nothing. A second line of defence behind the org-scoped session (store/scope.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from feeds_server.store.base import Base
from feeds_server.store.models import Role
from tests import factory
from tests.api.test_isolation_matrix import _populated_org

rls = importlib.import_module("feeds_server.store.migrations.versions.0004_row_level_security")
VERSIONS = Path(rls.__file__).parent
# Tables added after 0004 name themselves in their migration's ORG_TABLES_ADDED.
ADDED = [
    table
    for path in sorted(VERSIONS.glob("0*.py"))
    for table in getattr(importlib.import_module(f"feeds_server.store.migrations.versions.{path.stem}"), "ORG_TABLES_ADDED", ())
]
ORG_TABLES = sorted(t.name for t in Base.metadata.sorted_tables if "org_id" in t.c)
SET = "SELECT set_config('feeds.org_id', :org, true), set_config('feeds.all_orgs', :all, true)"


def test_every_table_with_an_org_id_has_the_policy() -> None:
    assert sorted([*rls.TABLES, *ADDED]) == ORG_TABLES


@pytest.fixture
def backend() -> str:
    return "postgres"


async def _two_orgs(client, settings, services):  # type: ignore[no-untyped-def]
    _, _, org_a, _ = await _populated_org(client, settings, services)
    _, _, org_b, _ = await _populated_org(client, settings, services)
    return org_a["id"], org_b["id"]


async def _counts(conn, where: str = "") -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {t: (await conn.execute(text(f'SELECT count(*) FROM "{t}" {where}'))).scalar_one() for t in ORG_TABLES}


async def test_the_application_role_is_subject_to_row_level_security(services) -> None:
    async with services.engine.connect() as conn:
        row = (await conn.execute(text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"))).one()
        forced = (await conn.execute(text(
            "SELECT count(*) FROM pg_class WHERE relname = ANY(:t) AND relrowsecurity AND relforcerowsecurity"), {"t": ORG_TABLES})).scalar_one()
    assert tuple(row) == (False, False)
    assert forced == len(ORG_TABLES)


async def test_an_unfiltered_select_sees_only_the_org_of_the_transaction(client, settings, services) -> None:
    org_a, org_b = await _two_orgs(client, settings, services)
    async with services.engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text(SET), {"org": "", "all": "on"})
            own = await _counts(conn, f"WHERE org_id = {org_a}")
            total = await _counts(conn)
        async with conn.begin():
            await conn.execute(text(SET), {"org": str(org_a), "all": ""})
            seen = await _counts(conn)
            foreign = await _counts(conn, f"WHERE org_id <> {org_a}")
    assert seen == own
    assert set(foreign.values()) == {0}
    populated = [t for t in ORG_TABLES if own[t] and total[t] > own[t]]
    assert len(populated) >= 15, populated  # both orgs have rows there, and only A's are seen


async def test_without_any_setting_nothing_is_visible(client, settings, services) -> None:
    await _two_orgs(client, settings, services)
    fresh = create_async_engine(settings.database_url, poolclass=NullPool)
    try:
        async with fresh.connect() as conn:
            assert set((await _counts(conn)).values()) == {0}
    finally:
        await fresh.dispose()


async def test_writing_another_orgs_rows_is_refused(client, settings, services) -> None:
    org_a, org_b = await _two_orgs(client, settings, services)
    async with services.engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text(SET), {"org": str(org_a), "all": ""})
            changed = await conn.execute(text("UPDATE roles SET name = 'taken' WHERE org_id = :b"), {"b": org_b})
            assert changed.rowcount == 0
            deleted = await conn.execute(text("DELETE FROM posts WHERE org_id = :b"), {"b": org_b})
            assert deleted.rowcount == 0
        for statement in (
            insert(Role.__table__).values(org_id=org_b, name="planted", parent_id=None),
            text("UPDATE roles SET org_id = :b WHERE org_id = :a").bindparams(a=org_a, b=org_b),
        ):
            with pytest.raises(DBAPIError, match="row-level security"):
                async with conn.begin():
                    await conn.execute(text(SET), {"org": str(org_a), "all": ""})
                    await conn.execute(statement)


async def test_a_member_of_two_orgs_reads_both_in_turn(client, settings, services) -> None:
    """The caller lookup outside a transaction re-scopes a pooled connection whenever the org changes."""
    owner = await factory.sign_up(client, factory.unique("Owner"))
    orgs = [await factory.create_org(owner) for _ in range(2)]
    posted = {}
    for org in orgs:
        r = await owner.post(f"/api/v1/orgs/{org['slug']}/posts", json={"body": org["slug"]})
        posted[org["slug"]] = r.json()["post"]["id"]
    for _ in range(10):
        for org in orgs:
            r = await owner.get(f"/api/v1/orgs/{org['slug']}/feed")
            assert r.status_code == 200, r.text
            assert [i["id"] for i in r.json()["items"]] == [posted[org["slug"]]]
