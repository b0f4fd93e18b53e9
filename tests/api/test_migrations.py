"""F-OPS-2: the schema ships as migrations, and the migrations match the models on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from feeds_server.store.base import Base


async def test_migrated_schema_matches_the_models(database_url):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": False}), Base.metadata))
    finally:
        await engine.dispose()
    assert diff == []
