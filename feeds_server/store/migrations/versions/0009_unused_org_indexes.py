"""Indexes that no query uses dropped from the tables a record batch writes.

`ix_records_org_id` and `ix_record_events_seen_org_id`: every query of those tables (an org's
deletion, whose foreign keys cascade, included) filters by the org and more, served by the unique
key or primary key that begins with `org_id`. `ix_events_org_created`: nothing reads events by time
(pruning reads `event_channels`). A batch of 500 events wrote ~1,800 entries into them.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# table -> (index, its columns)
INDEXES = {
    'records': ('ix_records_org_id', ['org_id']),
    'record_events_seen': ('ix_record_events_seen_org_id', ['org_id']),
    'events': ('ix_events_org_created', ['org_id', 'created_at']),
}


def upgrade() -> None:
    for table, (name, _) in INDEXES.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(name)


def downgrade() -> None:
    for table, (name, columns) in INDEXES.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_index(name, columns, unique=False)
