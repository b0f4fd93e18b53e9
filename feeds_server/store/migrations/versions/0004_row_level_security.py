"""Row-level security on every org-owned table (PostgreSQL only; SQLite has none).

A row is visible, and may be written, only when its org is the one the transaction named with
`set_config('feeds.org_id', …, true)`, or when the transaction deliberately opted in to all orgs
with `feeds.all_orgs = on` (store/scope.py sets both). A connection that set neither sees no org
rows at all. FORCE applies the policies to the tables' owner too, since the application usually
owns its tables; only superusers and BYPASSRLS roles skip them (docs/operations.md).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# The org-owned tables as of this revision: a later table with an org_id adds itself in its own
# migration with the same two statements (tests/abuse/test_row_level_security.py checks none is missed).
TABLES = (
    'audit_log', 'auto_follow_rules', 'channel_history', 'event_channels', 'events', 'groups',
    'idempotency_keys', 'integrations', 'notification_settings', 'profiles', 'record_events_seen',
    'roles', 'territories', 'group_sources', 'integration_webhooks', 'invitations', 'memberships',
    'posts', 'records', 'territory_members', 'webhook_deliveries', 'attachments', 'comments',
    'follows', 'post_audience', 'mentions', 'notifications', 'email_jobs',
)

POLICY = (
    "org_id = nullif(current_setting('feeds.org_id', true), '')::bigint "
    "OR current_setting('feeds.all_orgs', true) = 'on'"
)


def upgrade() -> None:
    if op.get_context().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        op.execute(f'CREATE POLICY org_scope ON "{table}" USING ({POLICY}) WITH CHECK ({POLICY})')


def downgrade() -> None:
    if op.get_context().dialect.name != 'postgresql':
        return
    for table in TABLES:
        op.execute(f'DROP POLICY IF EXISTS org_scope ON "{table}"')
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
