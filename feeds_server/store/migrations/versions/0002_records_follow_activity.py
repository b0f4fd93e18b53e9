"""Records: follows carry the record's last activity (dormant records and "followed by me" as index
scans), records keep their business-card fields in order, rules carry a version.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import feeds_server.store.base
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('auto_follow_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.create_index('ix_rules_creator', ['org_id', 'creator_id', 'module'], unique=False)

    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_activity_at', feeds_server.store.base.UTCDateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE follows SET last_activity_at = (SELECT records.last_activity_at FROM records"
        " WHERE records.id = follows.record_id AND records.org_id = follows.org_id)"
    )
    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.alter_column('last_activity_at', existing_type=feeds_server.store.base.UTCDateTime(timezone=True), nullable=False)
        batch_op.drop_index(batch_op.f('ix_follows_user'))
        batch_op.create_index('ix_follows_dormant', ['org_id', 'user_id', 'last_activity_at', 'record_id'], unique=False)
        batch_op.create_index('ix_follows_dormant_module', ['org_id', 'user_id', 'module', 'last_activity_at', 'record_id'], unique=False)
        batch_op.create_index('ix_follows_user_module', ['org_id', 'user_id', 'module', 'record_id'], unique=False)

    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False, server_default='[]'))
        batch_op.drop_index(batch_op.f('ix_records_dormant'))
        batch_op.drop_index(batch_op.f('ix_records_owner'))
        batch_op.create_index('ix_records_module_activity', ['org_id', 'module', 'last_activity_at'], unique=False)

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_integration', ['org_id', 'integration_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_integration')

    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index('ix_records_module_activity')
        batch_op.create_index(batch_op.f('ix_records_owner'), ['org_id', 'owner_id', 'last_activity_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_dormant'), ['org_id', 'last_activity_at', 'id'], unique=False)
        batch_op.drop_column('key_fields')

    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.drop_index('ix_follows_user_module')
        batch_op.drop_index('ix_follows_dormant_module')
        batch_op.drop_index('ix_follows_dormant')
        batch_op.create_index(batch_op.f('ix_follows_user'), ['org_id', 'user_id', 'module', 'record_id'], unique=False)
        batch_op.drop_column('last_activity_at')

    with op.batch_alter_table('auto_follow_rules', schema=None) as batch_op:
        batch_op.drop_index('ix_rules_creator')
        batch_op.drop_column('version')

