"""Event payloads stored as `json` (the text as sent), compressed with lz4 where the server has it.

An event's payload is written once and read back whole (live publishing, recovery, erasure's
rewrite); no query looks inside it. As `jsonb` PostgreSQL parsed every payload into its binary form
on the way in, and a record batch's payloads are large (the post views of its items and, per
follower, their notifications: ~1.4 MB for 500 events), which made inserting them the costliest
statement of the batch; the default compression of values over 2 kB (pglz) cost as much again.
`json` only checks the syntax, and lz4 compresses several times faster than pglz. PostgreSQL built
without lz4 keeps its default compression.

The type change rewrites the table (an exclusive lock for the time it takes).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_LZ4 = """
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$
"""


def upgrade() -> None:
    if op.get_context().dialect.name != 'postgresql':
        return  # SQLite stores JSON as text already
    op.execute('ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json')
    op.execute(_LZ4)


def downgrade() -> None:
    if op.get_context().dialect.name != 'postgresql':
        return
    op.execute('ALTER TABLE events ALTER COLUMN payload SET COMPRESSION default')
    op.execute('ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb')
